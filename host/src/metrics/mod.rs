//! Run metrics: the registry of counters the workers bump once per batch
//! (here), rendered as Prometheus text ([`render`]), served on
//! `--metrics-addr` ([`server`]), and summed into the periodic progress
//! line ([`progress`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::engine::Counters;
use crate::pipeline::shadow::ShadowTotals;

mod progress;
mod render;
mod server;
mod status;

pub use progress::{log_progress, progress_line};
pub use server::{bind, serve};

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
    /// The comparison of the stage's candidate with its live processor,
    /// for a stage that can have a candidate.
    shadow: Mutex<Option<Arc<ShadowTotals>>>,
    /// The versions the stage ran, latest last, with when each started
    /// (at most [`HISTORY`]).
    versions: Mutex<VecDeque<(i64, String)>>,
    /// The latest dead letters, latest last (at most [`HISTORY`]).
    dead_letters: Mutex<VecDeque<DeadLetter>>,
}

/// How many versions and dead letters a stage remembers for the console.
pub const HISTORY: usize = 20;

/// A record sent to a dead-letter topic, as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// When, in ms since the Unix epoch.
    pub at_ms: i64,
    /// The input topic, partition and offset.
    pub topic: String,
    /// The input partition.
    pub partition: i32,
    /// The input offset.
    pub offset: i64,
    /// The error kind (`partita.error.kind`).
    pub kind: &'static str,
    /// The reason (`partita.error.reason`).
    pub reason: String,
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

    /// Sets the processor version the stage runs (remembered in its
    /// history when it changes).
    pub fn set_version(&self, version: &str) {
        *lock(&self.version) = version.to_string();
        let mut versions = lock(&self.versions);
        if versions.back().is_none_or(|(_, v)| v != version) {
            if versions.len() == HISTORY {
                versions.pop_front();
            }
            versions.push_back((crate::deploy::now_ms(), version.to_string()));
        }
    }

    /// The versions the stage ran, with when each started (ms since the
    /// Unix epoch), latest last.
    pub fn versions(&self) -> Vec<(i64, String)> {
        lock(&self.versions).iter().cloned().collect()
    }

    /// Remembers a record sent to the dead-letter topic.
    pub fn note_dead_letter(
        &self,
        (topic, partition, offset): (&str, i32, i64),
        kind: &'static str,
        reason: &str,
    ) {
        let mut recent = lock(&self.dead_letters);
        if recent.len() == HISTORY {
            recent.pop_front();
        }
        recent.push_back(DeadLetter {
            at_ms: crate::deploy::now_ms(),
            topic: topic.to_string(),
            partition,
            offset,
            kind,
            reason: reason.to_string(),
        });
    }

    /// The latest dead letters, latest last.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.dead_letters).iter().cloned().collect()
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

    /// Exports the comparison of the stage's candidate.
    pub fn set_shadow(&self, totals: Arc<ShadowTotals>) {
        *lock(&self.shadow) = Some(totals);
    }

    /// The comparison of the stage's candidate, if it can have one.
    pub fn shadow(&self) -> Option<Arc<ShadowTotals>> {
        lock(&self.shadow).clone()
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

/// Totals of one stage at one moment, for the progress line and for
/// embedders asking a running pipeline how it is doing.
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
    /// The processor version the stage runs (the live one, after a hot
    /// reload).
    pub version: String,
    /// Records the processor rejected.
    pub rejected: u64,
    /// Records that failed (a trap, a limit) on their own.
    pub failed: u64,
    /// Keys in the state stores of the partitions this process holds (as of
    /// their last flush).
    pub state_keys: u64,
    /// Versions swapped in by hot reloads and deployments.
    pub reloads: u64,
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
                    shadow: Mutex::new(None),
                    versions: Mutex::new(VecDeque::new()),
                    dead_letters: Mutex::new(VecDeque::new()),
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
                let mut t = StageTotals {
                    version: s.version(),
                    reloads: s.reloads.load(Relaxed),
                    ..StageTotals::default()
                };
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
            t.rejected += p.rejected.load(Relaxed);
            t.failed += p.failed.load(Relaxed);
            t.owned += usize::from(p.assigned());
            if p.assigned() {
                t.state_keys += u64::try_from(p.state_keys.load(Relaxed)).unwrap_or(0);
            }
        }
        out.into_iter().collect()
    }
}

#[cfg(test)]
mod tests;
