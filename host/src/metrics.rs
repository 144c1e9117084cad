//! Run metrics: counters the workers bump once per batch, rendered as
//! Prometheus text on `--metrics-addr`, and the periodic progress line.
//!
//! The HTTP endpoint is a few lines over tokio's `TcpListener` rather than
//! a web framework: it answers one `GET /metrics` per connection and
//! nothing else, which does not justify a dependency tree.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::engine::Counters;

/// Upper bounds, in seconds, of the `partita_batch_seconds` buckets.
pub const BATCH_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every metric of a run. Shared by the workers, the stages' group
/// watchers, the HTTP endpoint and the progress log.
#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    stages: BTreeMap<String, Arc<StageMetrics>>,
    partitions: BTreeMap<(String, i32), Arc<PartitionMetrics>>,
    tables: BTreeMap<String, Arc<TableMetrics>>,
}

/// Per table topic: what its reader applied and skipped.
#[derive(Debug, Default)]
pub struct TableMetrics {
    /// Records applied to the table (upserts and deletes).
    pub applied: AtomicU64,
    /// Records skipped because their key or value could not be read.
    pub invalid: AtomicU64,
    /// Keys in the table.
    pub keys: AtomicU64,
    /// Set once the table has caught up with the end its topic had at start.
    pub caught_up: AtomicBool,
}

/// Per-stage metrics.
pub struct StageMetrics {
    inputs: Vec<String>,
    version: Mutex<String>,
    batch_buckets: [AtomicU64; BATCH_BUCKETS.len()],
    batch_count: AtomicU64,
    batch_nanos: AtomicU64,
    /// Outputs produced again after the client gave up on them.
    pub produce_retries: AtomicU64,
    /// Offset commits the broker did not accept.
    pub commit_failures: AtomicU64,
    /// Exactly-once: transactions committed.
    pub transactions: AtomicU64,
    /// Exactly-once: transactions aborted (their batches processed again).
    pub transaction_aborts: AtomicU64,
    /// `on-timer` calls that failed.
    pub timer_failures: AtomicU64,
    /// Hot reload: versions swapped in (rollbacks included).
    reloads: AtomicU64,
    /// Hot reload: versions refused or rolled back, by reason.
    reload_failures: Mutex<BTreeMap<&'static str, u64>>,
    /// Times the stage's consumer left and rejoined its group because
    /// partitions with lag had no owner.
    pub rejoins: AtomicU64,
    /// The group's lag and health as last probed; `None` before the first
    /// probe or while the cluster cannot be probed.
    group: Mutex<Option<GroupStatus>>,
}

/// A stage's consumer group as last probed (`pipeline::health`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStatus {
    /// Every partition of the stage's inputs.
    pub rows: Vec<LagRow>,
    /// Partitions with lag that no live member of a settled group owns.
    pub unowned: usize,
}

/// One input partition's lag as the group sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagRow {
    /// The input topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// End offset minus the group's committed offset.
    pub lag: i64,
    /// Whether this host owns the partition.
    pub owned: bool,
    /// Owned, with lag, and not advancing for `stalled_after`.
    pub stalled: bool,
}

impl StageMetrics {
    /// Records the duration of one batch.
    pub fn observe_batch(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BATCH_BUCKETS.iter().position(|&b| secs <= b) {
            self.batch_buckets[i].fetch_add(1, Relaxed);
        }
        self.batch_count.fetch_add(1, Relaxed);
        self.batch_nanos
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    /// Sets the processor version the stage runs.
    pub fn set_version(&self, version: &str) {
        *lock(&self.version) = version.to_string();
    }

    /// The processor version the stage runs.
    pub fn version(&self) -> String {
        lock(&self.version).clone()
    }

    /// Counts a version swapped in by a hot reload.
    pub fn count_reload(&self) {
        self.reloads.fetch_add(1, Relaxed);
    }

    /// Sets the group's lag and health from a probe.
    pub fn set_group_status(&self, status: GroupStatus) {
        *lock(&self.group) = Some(status);
    }

    /// Forgets the group's status (the group cannot be probed): lag is
    /// unknown rather than stale.
    pub fn clear_group_status(&self) {
        *lock(&self.group) = None;
    }

    /// The group's lag and health as last probed.
    pub fn group_status(&self) -> Option<GroupStatus> {
        lock(&self.group).clone()
    }

    /// Counts a version a hot reload refused or rolled back, by `reason`.
    pub fn count_reload_failure(&self, reason: &'static str) {
        *lock(&self.reload_failures).entry(reason).or_default() += 1;
    }

    /// Versions refused or rolled back for `reason` so far.
    pub fn reload_failures(&self, reason: &str) -> u64 {
        lock(&self.reload_failures)
            .get(reason)
            .copied()
            .unwrap_or(0)
    }
}

/// Per-(stage, partition) counters, bumped once per batch.
pub struct PartitionMetrics {
    /// Records read and processed.
    pub records_in: AtomicU64,
    /// Output records acknowledged by the broker.
    pub records_out: AtomicU64,
    /// Records the processor rejected.
    pub rejected: AtomicU64,
    /// Records that trapped or exceeded a limit on their own.
    pub failed: AtomicU64,
    /// Records acknowledged on a dead-letter topic.
    pub dlq: AtomicU64,
    /// Records dropped by `on_error = "skip"`.
    pub skipped: AtomicU64,
    /// Changelog records read to restore the partition's state.
    pub state_restored: AtomicU64,
    /// Keys in the partition's state store (as of its last flush).
    state_keys: AtomicI64,
    assigned: AtomicBool,
    /// Per input topic (the stage's input order): the next offset to
    /// process, -1 when unknown.
    positions: Vec<AtomicI64>,
    /// The counters the partition's processor keeps (its `metrics` import).
    pub counters: Arc<Counters>,
}

impl PartitionMetrics {
    fn new(inputs: usize) -> Self {
        PartitionMetrics {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dlq: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            state_restored: AtomicU64::new(0),
            state_keys: AtomicI64::new(-1),
            assigned: AtomicBool::new(false),
            positions: (0..inputs).map(|_| AtomicI64::new(-1)).collect(),
            counters: Arc::new(Counters::new()),
        }
    }

    /// Sets the number of keys in the partition's state store.
    pub fn set_state_keys(&self, keys: usize) {
        self.state_keys
            .store(i64::try_from(keys).unwrap_or(i64::MAX), Relaxed);
    }

    /// Marks the partition assigned to this process (a worker holds it)
    /// or not; a released partition's positions are forgotten.
    pub fn set_assigned(&self, assigned: bool) {
        self.assigned.store(assigned, Relaxed);
        if !assigned {
            for p in &self.positions {
                p.store(-1, Relaxed);
            }
        }
    }

    /// Whether a worker of this process holds the partition.
    pub fn assigned(&self) -> bool {
        self.assigned.load(Relaxed)
    }

    /// Sets the next offset to process of input `topic` (by input index).
    pub fn set_position(&self, topic: usize, next: i64) {
        if let Some(p) = self.positions.get(topic) {
            p.store(next, Relaxed);
        }
    }

    /// The next offset to process of input `topic` (by input index), once
    /// the worker has read from it.
    pub fn position(&self, topic: usize) -> Option<i64> {
        self.positions
            .get(topic)
            .map(|p| p.load(Relaxed))
            .filter(|&p| p >= 0)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Totals of one stage at one moment, for the progress line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageTotals {
    /// Records in.
    pub records_in: u64,
    /// Records out.
    pub records_out: u64,
    /// Records sent to the dead-letter topic.
    pub dlq: u64,
    /// The group's lag over every partition of the stage's inputs (end
    /// minus committed offset); `None` until the group has been probed.
    pub lag: Option<i64>,
    /// Partitions (by number, across the inputs) this process holds.
    pub owned: usize,
    /// Partitions of the stage's inputs (by number), once probed.
    pub partitions: usize,
    /// Partitions with lag that no live member owns.
    pub unowned: usize,
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Registers stage `name` reading `inputs`; returns its metrics.
    pub fn stage(&self, name: &str, inputs: &[String]) -> Arc<StageMetrics> {
        let mut r = lock(&self.registry);
        r.stages
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(StageMetrics {
                    inputs: inputs.to_vec(),
                    version: Mutex::new(String::new()),
                    batch_buckets: Default::default(),
                    batch_count: AtomicU64::new(0),
                    batch_nanos: AtomicU64::new(0),
                    produce_retries: AtomicU64::new(0),
                    commit_failures: AtomicU64::new(0),
                    transactions: AtomicU64::new(0),
                    transaction_aborts: AtomicU64::new(0),
                    timer_failures: AtomicU64::new(0),
                    reloads: AtomicU64::new(0),
                    reload_failures: Mutex::new(BTreeMap::new()),
                    rejoins: AtomicU64::new(0),
                    group: Mutex::new(None),
                })
            })
            .clone()
    }

    /// The counters of (`stage`, `partition`), created on first use. The
    /// stage must have been registered with [`Metrics::stage`].
    pub fn partition(&self, stage: &str, partition: i32) -> Arc<PartitionMetrics> {
        let mut r = lock(&self.registry);
        let inputs = r.stages.get(stage).map_or(0, |s| s.inputs.len());
        r.partitions
            .entry((stage.to_string(), partition))
            .or_insert_with(|| Arc::new(PartitionMetrics::new(inputs)))
            .clone()
    }

    /// The metrics of the reference table read from `topic`, created on
    /// first use.
    pub fn table(&self, topic: &str) -> Arc<TableMetrics> {
        lock(&self.registry)
            .tables
            .entry(topic.to_string())
            .or_default()
            .clone()
    }

    /// The partitions of `stage` that a worker of this process holds.
    pub fn owned_partitions(&self, stage: &str) -> BTreeSet<i32> {
        lock(&self.registry)
            .partitions
            .iter()
            .filter(|((s, _), p)| s == stage && p.assigned())
            .map(|((_, partition), _)| *partition)
            .collect()
    }

    /// Totals per stage, in stage-name order.
    pub fn totals(&self) -> Vec<(String, StageTotals)> {
        let r = lock(&self.registry);
        let mut out: BTreeMap<String, StageTotals> = r
            .stages
            .iter()
            .map(|(name, s)| {
                let mut t = StageTotals::default();
                if let Some(g) = lock(&s.group).as_ref() {
                    t.lag = Some(g.rows.iter().map(|row| row.lag).sum());
                    let numbers: BTreeSet<i32> = g.rows.iter().map(|row| row.partition).collect();
                    t.partitions = numbers.len();
                    t.unowned = g.unowned;
                }
                (name.clone(), t)
            })
            .collect();
        for ((stage, _), p) in &r.partitions {
            let t = out.entry(stage.clone()).or_default();
            t.records_in += p.records_in.load(Relaxed);
            t.records_out += p.records_out.load(Relaxed);
            t.dlq += p.dlq.load(Relaxed);
            t.owned += usize::from(p.assigned());
        }
        out.into_iter().collect()
    }

    /// The metrics as Prometheus text, format version 0.0.4.
    pub fn render(&self) -> String {
        let r = lock(&self.registry);
        let mut out = String::with_capacity(4096);
        type Get = fn(&PartitionMetrics) -> u64;
        let counters: [(&str, &str, Get); 6] = [
            (
                "partita_records_in_total",
                "Records read and processed.",
                |p| p.records_in.load(Relaxed),
            ),
            (
                "partita_records_out_total",
                "Output records acknowledged by the broker.",
                |p| p.records_out.load(Relaxed),
            ),
            (
                "partita_records_rejected_total",
                "Records the processor rejected.",
                |p| p.rejected.load(Relaxed),
            ),
            (
                "partita_records_failed_total",
                "Records that trapped or exceeded a limit on their own.",
                |p| p.failed.load(Relaxed),
            ),
            (
                "partita_dlq_total",
                "Records acknowledged on a dead-letter topic.",
                |p| p.dlq.load(Relaxed),
            ),
            (
                "partita_records_skipped_total",
                "Records dropped by on_error = skip.",
                |p| p.skipped.load(Relaxed),
            ),
        ];
        for (name, help, get) in counters {
            header(&mut out, name, help, "counter");
            for ((stage, partition), p) in &r.partitions {
                let _ = writeln!(
                    out,
                    "{name}{{stage=\"{}\",partition=\"{partition}\"}} {}",
                    escape(stage),
                    get(p)
                );
            }
        }

        let name = "partita_state_restored_records_total";
        header(
            &mut out,
            name,
            "Changelog records read to restore a partition's state.",
            "counter",
        );
        for ((stage, partition), p) in &r.partitions {
            let n = p.state_restored.load(Relaxed);
            let _ = writeln!(
                out,
                "{name}{{stage=\"{}\",partition=\"{partition}\"}} {n}",
                escape(stage)
            );
        }
        let name = "partita_processor_counter_total";
        header(
            &mut out,
            name,
            "Counters the processor keeps through its metrics import.",
            "counter",
        );
        for ((stage, partition), p) in &r.partitions {
            for ((counter, label), n) in p.counters.snapshot() {
                let _ = writeln!(
                    out,
                    "{name}{{stage=\"{}\",partition=\"{partition}\",name=\"{}\",label=\"{}\"}} {n}",
                    escape(stage),
                    escape(&counter),
                    escape(&label)
                );
            }
        }
        let name = "partita_state_keys";
        header(
            &mut out,
            name,
            "Keys in a partition's state store (as of its last flush).",
            "gauge",
        );
        for ((stage, partition), p) in &r.partitions {
            let n = p.state_keys.load(Relaxed);
            if n >= 0 {
                let _ = writeln!(
                    out,
                    "{name}{{stage=\"{}\",partition=\"{partition}\"}} {n}",
                    escape(stage)
                );
            }
        }

        render_group(&mut out, &r.stages);

        let name = "partita_batch_seconds";
        header(
            &mut out,
            name,
            "Time to run one batch through the processor and hand its outputs over.",
            "histogram",
        );
        for (stage, s) in &r.stages {
            let stage = escape(stage);
            let mut cumulative = 0;
            for (bound, n) in BATCH_BUCKETS.iter().zip(&s.batch_buckets) {
                cumulative += n.load(Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{stage=\"{stage}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = s.batch_count.load(Relaxed);
            let sum = s.batch_nanos.load(Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "{name}_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "{name}_sum{{stage=\"{stage}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{stage=\"{stage}\"}} {count}");
        }

        type StageGet = fn(&StageMetrics) -> u64;
        let stage_counters: [(&str, &str, StageGet); 5] = [
            (
                "partita_produce_retries_total",
                "Outputs produced again after the client gave up on them.",
                |s| s.produce_retries.load(Relaxed),
            ),
            (
                "partita_commit_failures_total",
                "Offset commits the broker did not accept.",
                |s| s.commit_failures.load(Relaxed),
            ),
            (
                "partita_transactions_total",
                "Exactly-once: transactions committed.",
                |s| s.transactions.load(Relaxed),
            ),
            (
                "partita_transaction_aborts_total",
                "Exactly-once: transactions aborted, their batches processed again.",
                |s| s.transaction_aborts.load(Relaxed),
            ),
            (
                "partita_reloads_total",
                "Processor versions swapped in by a hot reload (rollbacks included).",
                |s| s.reloads.load(Relaxed),
            ),
        ];
        for (name, help, get) in stage_counters {
            header(&mut out, name, help, "counter");
            for (stage, s) in &r.stages {
                let _ = writeln!(out, "{name}{{stage=\"{}\"}} {}", escape(stage), get(s));
            }
        }

        let name = "partita_reload_failures_total";
        header(
            &mut out,
            name,
            "Processor versions a hot reload refused (the old one kept running) or rolled back, by reason.",
            "counter",
        );
        for (stage, s) in &r.stages {
            for (reason, n) in lock(&s.reload_failures).iter() {
                let _ = writeln!(
                    out,
                    "{name}{{stage=\"{}\",reason=\"{reason}\"}} {n}",
                    escape(stage)
                );
            }
        }

        let name = "partita_processor_info";
        header(
            &mut out,
            name,
            "The processor version each stage runs.",
            "gauge",
        );
        for (stage, s) in &r.stages {
            let version = lock(&s.version);
            if !version.is_empty() {
                let _ = writeln!(
                    out,
                    "{name}{{stage=\"{}\",version=\"{}\"}} 1",
                    escape(stage),
                    escape(&version)
                );
            }
        }

        let name = "partita_timer_failures_total";
        header(
            &mut out,
            name,
            "on-timer calls that trapped, exceeded a limit or returned malformed outputs.",
            "counter",
        );
        for (stage, s) in &r.stages {
            let n = s.timer_failures.load(Relaxed);
            let _ = writeln!(out, "{name}{{stage=\"{}\"}} {n}", escape(stage));
        }

        type TableGet = fn(&TableMetrics) -> u64;
        let table_metrics: [(&str, &str, &str, TableGet); 4] = [
            (
                "partita_table_records_total",
                "Records of a reference table topic applied to the table.",
                "counter",
                |t| t.applied.load(Relaxed),
            ),
            (
                "partita_table_invalid_records_total",
                "Records of a reference table topic skipped: no key, or a key or value that its format cannot read.",
                "counter",
                |t| t.invalid.load(Relaxed),
            ),
            (
                "partita_table_keys",
                "Keys in a reference table.",
                "gauge",
                |t| t.keys.load(Relaxed),
            ),
            (
                "partita_table_caught_up",
                "1 once a reference table has read its topic up to the end it had at start.",
                "gauge",
                |t| u64::from(t.caught_up.load(Relaxed)),
            ),
        ];
        for (name, help, kind, get) in table_metrics {
            if r.tables.is_empty() {
                break;
            }
            header(&mut out, name, help, kind);
            for (topic, t) in &r.tables {
                let _ = writeln!(out, "{name}{{topic=\"{}\"}} {}", escape(topic), get(t));
            }
        }
        out
    }
}

/// The group metrics of every stage: lag per input partition (owned here
/// or not), stalled partitions, unowned partitions and rejoins.
fn render_group(out: &mut String, stages: &BTreeMap<String, Arc<StageMetrics>>) {
    let statuses: Vec<(String, Option<GroupStatus>)> = stages
        .iter()
        .map(|(name, s)| (escape(name), s.group_status()))
        .collect();
    let name = "partita_consumer_lag";
    header(
        out,
        name,
        "The group's lag on an input partition: end offset minus the group's committed offset; owned says whether this host holds it.",
        "gauge",
    );
    for (stage, g) in &statuses {
        for row in g.iter().flat_map(|g| &g.rows) {
            let _ = writeln!(
                out,
                "{name}{{stage=\"{stage}\",topic=\"{}\",partition=\"{}\",owned=\"{}\"}} {}",
                escape(&row.topic),
                row.partition,
                row.owned,
                row.lag
            );
        }
    }
    let name = "partita_partition_stalled";
    header(
        out,
        name,
        "1 when an input partition owned here has lag and has not advanced for stalled_after_ms.",
        "gauge",
    );
    for (stage, g) in &statuses {
        for row in g.iter().flat_map(|g| &g.rows).filter(|r| r.owned) {
            let _ = writeln!(
                out,
                "{name}{{stage=\"{stage}\",topic=\"{}\",partition=\"{}\"}} {}",
                escape(&row.topic),
                row.partition,
                u8::from(row.stalled)
            );
        }
    }
    let name = "partita_group_unowned_partitions";
    header(
        out,
        name,
        "Input partitions with lag that no live member of the stage's settled group owns.",
        "gauge",
    );
    for (stage, g) in &statuses {
        if let Some(g) = g {
            let _ = writeln!(out, "{name}{{stage=\"{stage}\"}} {}", g.unowned);
        }
    }
    let name = "partita_group_rejoins_total";
    header(
        out,
        name,
        "Times the stage's consumer left and rejoined its group because partitions with lag had no owner.",
        "counter",
    );
    for (stage, s) in stages {
        let n = s.rejoins.load(Relaxed);
        let _ = writeln!(out, "{name}{{stage=\"{}\"}} {n}", escape(stage));
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

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

/// Binds `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Answers `GET /metrics` on `listener` with [`Metrics::render`] until the
/// task is dropped; any other path gets 404.
pub async fn serve(metrics: Arc<Metrics>, listener: TcpListener) {
    loop {
        let (mut socket, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let mut chunk = [0u8; 1024];
            let head_done = loop {
                match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk)).await {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break false,
                    Ok(Ok(n)) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            break true;
                        }
                        if buf.len() > 16 * 1024 {
                            break false;
                        }
                    }
                }
            };
            if !head_done {
                tracing::debug!("metrics endpoint: incomplete request from {peer}");
                return;
            }
            let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line);
            let mut words = line.split_whitespace();
            let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let (status, body) = match (method, path.split('?').next().unwrap_or("")) {
                ("GET", "/metrics") => ("200 OK", metrics.render()),
                ("GET", _) => (
                    "404 Not Found",
                    "not found: metrics are at /metrics\n".to_string(),
                ),
                _ => (
                    "405 Method Not Allowed",
                    "only GET is supported\n".to_string(),
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = socket.write_all(response.as_bytes()).await {
                tracing::debug!("metrics endpoint: cannot answer {peer}: {e}");
            }
            let _ = socket.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn counters_render_per_stage_and_partition() {
        let m = Metrics::new();
        let s = m.stage("pass", &inputs(&["in"]));
        s.set_version("abc123");
        let p0 = m.partition("pass", 0);
        let p3 = m.partition("pass", 3);
        p0.records_in.fetch_add(10, Relaxed);
        p0.records_out.fetch_add(9, Relaxed);
        p0.rejected.fetch_add(1, Relaxed);
        p0.dlq.fetch_add(1, Relaxed);
        p3.records_in.fetch_add(5, Relaxed);
        p3.failed.fetch_add(2, Relaxed);
        p3.skipped.fetch_add(2, Relaxed);
        s.commit_failures.fetch_add(1, Relaxed);
        s.transactions.fetch_add(4, Relaxed);
        s.transaction_aborts.fetch_add(1, Relaxed);
        let text = m.render();
        for line in [
            "# TYPE partita_records_in_total counter",
            "partita_records_in_total{stage=\"pass\",partition=\"0\"} 10",
            "partita_records_in_total{stage=\"pass\",partition=\"3\"} 5",
            "partita_records_out_total{stage=\"pass\",partition=\"0\"} 9",
            "partita_records_rejected_total{stage=\"pass\",partition=\"0\"} 1",
            "partita_records_failed_total{stage=\"pass\",partition=\"3\"} 2",
            "partita_dlq_total{stage=\"pass\",partition=\"0\"} 1",
            "partita_records_skipped_total{stage=\"pass\",partition=\"3\"} 2",
            "partita_commit_failures_total{stage=\"pass\"} 1",
            "partita_transactions_total{stage=\"pass\"} 4",
            "partita_transaction_aborts_total{stage=\"pass\"} 1",
            "partita_produce_retries_total{stage=\"pass\"} 0",
            "partita_processor_info{stage=\"pass\",version=\"abc123\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn batch_histogram_is_cumulative_with_sum_and_count() {
        let m = Metrics::new();
        let s = m.stage("a", &[]);
        s.observe_batch(Duration::from_micros(300));
        s.observe_batch(Duration::from_millis(3));
        s.observe_batch(Duration::from_secs(20));
        let text = m.render();
        for line in [
            "# TYPE partita_batch_seconds histogram",
            "partita_batch_seconds_bucket{stage=\"a\",le=\"0.0005\"} 1",
            "partita_batch_seconds_bucket{stage=\"a\",le=\"0.001\"} 1",
            "partita_batch_seconds_bucket{stage=\"a\",le=\"0.005\"} 2",
            "partita_batch_seconds_bucket{stage=\"a\",le=\"10\"} 2",
            "partita_batch_seconds_bucket{stage=\"a\",le=\"+Inf\"} 3",
            "partita_batch_seconds_sum{stage=\"a\"} 20.0033",
            "partita_batch_seconds_count{stage=\"a\"} 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn lag_is_the_groups_on_every_partition_marked_owned_or_not() {
        let m = Metrics::new();
        let s = m.stage("join", &inputs(&["a", "b"]));
        m.partition("join", 1).set_assigned(true);
        m.partition("join", 0);
        assert_eq!(m.owned_partitions("join"), BTreeSet::from([1]));
        assert_eq!(m.totals()[0].1.lag, None, "not probed yet");
        let text = m.render();
        assert!(!text.contains("partita_consumer_lag{"), "{text}");
        let row = |topic: &str, partition, lag, owned, stalled| LagRow {
            topic: topic.into(),
            partition,
            lag,
            owned,
            stalled,
        };
        s.set_group_status(GroupStatus {
            rows: vec![
                row("a", 0, 60, false, false),
                row("a", 1, 5, true, true),
                row("b", 0, 0, false, false),
                row("b", 1, 10, true, false),
            ],
            unowned: 1,
        });
        let totals = &m.totals()[0].1;
        assert_eq!(totals.lag, Some(75));
        assert_eq!((totals.owned, totals.partitions, totals.unowned), (1, 2, 1));
        s.rejoins.fetch_add(2, Relaxed);
        let text = m.render();
        for line in [
            "partita_consumer_lag{stage=\"join\",topic=\"a\",partition=\"0\",owned=\"false\"} 60",
            "partita_consumer_lag{stage=\"join\",topic=\"a\",partition=\"1\",owned=\"true\"} 5",
            "partita_consumer_lag{stage=\"join\",topic=\"b\",partition=\"1\",owned=\"true\"} 10",
            "partita_partition_stalled{stage=\"join\",topic=\"a\",partition=\"1\"} 1",
            "partita_partition_stalled{stage=\"join\",topic=\"b\",partition=\"1\"} 0",
            "partita_group_unowned_partitions{stage=\"join\"} 1",
            "partita_group_rejoins_total{stage=\"join\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("partita_partition_stalled{stage=\"join\",topic=\"a\",partition=\"0\"}"),
            "stalled is only for partitions owned here"
        );
        s.clear_group_status();
        assert_eq!(m.totals()[0].1.lag, None, "unknown, not stale");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn progress_line_gives_rates_lag_and_what_this_host_owns() {
        let t = |i, o, d, lag, owned, partitions, unowned| StageTotals {
            records_in: i,
            records_out: o,
            dlq: d,
            lag,
            owned,
            partitions,
            unowned,
        };
        let before = vec![
            ("a".to_string(), t(100, 100, 0, Some(5), 2, 4, 0)),
            ("b".to_string(), t(0, 0, 0, None, 0, 0, 0)),
        ];
        let now = vec![
            ("a".to_string(), t(1100, 1000, 100, Some(7), 2, 4, 0)),
            ("b".to_string(), t(500, 50, 0, None, 1, 0, 0)),
        ];
        assert_eq!(
            progress_line(&before, &now, Duration::from_secs(2)),
            "progress: a in 500/s out 450/s dlq 50/s lag 7 (owns 2 of 4 partitions) \
             | b in 250/s out 25/s dlq 0/s lag ? (owns 1 partitions)"
        );
        let idle = vec![("a".to_string(), t(100, 100, 0, Some(52_000), 0, 4, 4))];
        assert_eq!(
            progress_line(&idle, &idle, Duration::from_secs(5)),
            "progress: a in 0/s out 0/s dlq 0/s lag 52000, owns none of 4 partitions; \
             4 partitions with lag have no owner",
            "a host owning nothing says so, never lag 0"
        );
    }

    #[tokio::test]
    async fn the_endpoint_serves_metrics_and_404_elsewhere() {
        let m = Metrics::new();
        m.stage("s", &inputs(&["t"]));
        m.partition("s", 2).records_in.fetch_add(7, Relaxed);
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve(m.clone(), listener));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("partita_records_in_total{stage=\"s\",partition=\"2\"} 7\n"),
            "{ok}"
        );
        let body = ok.split("\r\n\r\n").nth(1).unwrap();
        let length: usize = ok
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        assert_eq!(length, body.len());
        let missing = get("/other").await;
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        server.abort();
    }
}
