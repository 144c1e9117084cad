//! The progress line logged every few seconds: per stage, records in, out
//! and to dead letters per second, the group's lag and what this host owns.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use super::{Metrics, StageTotals};

/// The progress line from two snapshots of [`Metrics::totals`] taken
/// `elapsed` apart.
pub fn progress_line(
    before: &[(String, StageTotals)],
    now: &[(String, StageTotals)],
    elapsed: Duration,
) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = |a: u64, b: u64| (b.saturating_sub(a) as f64 / secs).round() as u64;
    let parts: Vec<String> = now
        .iter()
        .map(|(stage, t)| {
            let b = before
                .iter()
                .find(|(s, _)| s == stage)
                .map(|(_, b)| b.clone())
                .unwrap_or_default();
            let mut line = format!(
                "{stage} in {}/s out {}/s dlq {}/s",
                rate(b.records_in, t.records_in),
                rate(b.records_out, t.records_out),
                rate(b.dlq, t.dlq),
            );
            let lag = t.lag.map_or_else(|| "?".to_string(), |l| l.to_string());
            let _ = match (t.owned, t.partitions) {
                (0, 0) => write!(line, " lag {lag}, owns no partitions"),
                (0, n) => write!(line, " lag {lag}, owns none of {n} partitions"),
                (o, 0) => write!(line, " lag {lag} (owns {o} partitions)"),
                (o, n) => write!(line, " lag {lag} (owns {o} of {n} partitions)"),
            };
            if t.unowned > 0 {
                let _ = write!(line, "; {} partitions with lag have no owner", t.unowned);
            }
            line
        })
        .collect();
    format!("progress: {}", parts.join(" | "))
}

/// Logs [`progress_line`] every `every` until the task is dropped.
pub async fn log_progress(metrics: Arc<Metrics>, every: Duration) {
    let mut before = metrics.totals();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = metrics.totals();
        tracing::info!("{}", progress_line(&before, &now, every));
        before = now;
    }
}
