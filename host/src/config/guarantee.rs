//! The `guarantee` key of the pipeline file: `"at-least-once"` (the
//! default) or `"exactly-once"`, set either at the top level of the file or
//! in `[kafka]`, not both.

use super::KafkaConfig;
use super::problems::Problems;
use super::reader::{Span, TableReader};

/// librdkafka's default `transaction.timeout.ms`.
const DEFAULT_TRANSACTION_TIMEOUT_MS: u128 = 60_000;

/// What a run promises about records processed again after a failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Guarantee {
    /// Outputs are acknowledged, then offsets committed: after a crash the
    /// uncommitted tail is processed again and its outputs may repeat.
    #[default]
    AtLeastOnce,
    /// Outputs, dead letters, changelog records and input offsets of a
    /// batch commit in one Kafka transaction per (stage, partition);
    /// consumers read `read_committed`.
    ExactlyOnce,
}

impl Guarantee {
    /// The value as the pipeline file writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::ExactlyOnce => "exactly-once",
        }
    }
}

/// Reads `guarantee` from the table `r` reads; `None` when absent or
/// invalid (a problem is recorded), else the value and its span.
pub(super) fn read(r: &mut TableReader<'_, '_>, p: &mut Problems<'_>) -> Option<(Guarantee, Span)> {
    let (value, span) = r.string("guarantee", p)?;
    match value.as_str() {
        "at-least-once" => Some((Guarantee::AtLeastOnce, span)),
        "exactly-once" => Some((Guarantee::ExactlyOnce, span)),
        other => {
            let msg = format!(
                "unknown guarantee \"{other}\" (expected \"at-least-once\" or \"exactly-once\")"
            );
            p.add(Some(span), r.key_place("guarantee"), msg);
            None
        }
    }
}

/// Records the problem of a `guarantee` set at the top level (at
/// `top_span`) when `[kafka]` sets it too.
pub(super) fn set_twice(top_span: Span, p: &mut Problems<'_>) {
    p.add(
        Some(top_span),
        "guarantee",
        "also set in [kafka]: set it in one place",
    );
}

/// Under exactly-once, records a problem (at `at`, the `commit_interval_ms`
/// value or else the `guarantee` value) when the commit interval is not
/// shorter than the producer's `transaction.timeout.ms`: the broker would
/// abort each transaction before the worker commits it.
pub(super) fn check_commit_interval(kafka: &KafkaConfig, at: Option<Span>, p: &mut Problems<'_>) {
    if kafka.guarantee != Guarantee::ExactlyOnce {
        return;
    }
    // Producer properties override the shared ones, the last one winning.
    let set = kafka
        .properties
        .iter()
        .chain(&kafka.producer)
        .rfind(|(k, _)| k == "transaction.timeout.ms");
    let timeout = match set {
        Some((_, v)) => match v.trim().parse::<u128>() {
            Ok(ms) => ms,
            // librdkafka refuses it when the producer is created.
            Err(_) => return,
        },
        None => DEFAULT_TRANSACTION_TIMEOUT_MS,
    };
    let interval = kafka.commit_interval.as_millis();
    if interval >= timeout {
        let origin = if set.is_some() {
            "transaction.timeout.ms"
        } else {
            "transaction.timeout.ms, librdkafka's default"
        };
        p.add(
            at,
            "kafka: commit_interval_ms",
            format!(
                "{interval} ms is not shorter than the producer's transaction timeout \
                 ({timeout} ms, {origin}): under exactly-once the broker would abort \
                 each transaction before it is committed"
            ),
        );
    }
}
