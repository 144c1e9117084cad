//! The live version of one stage's processor, shared by the stage's
//! workers and the reload coordinator.
//!
//! The coordinator publishes a new version (a generation number and the
//! loaded [`Processor`]); each worker checks the generation with one atomic
//! load at every batch boundary and, when it moved, swaps its instance to
//! the new code and acknowledges. Once every partition the process holds
//! has acknowledged, the swap is logged with the time from the file change
//! to live on all partitions and the longest pause of a partition.
//!
//! With `rollback` set, the records of a new version's first batches are
//! counted here; when its rejected or failed share is too high, the
//! previous version is published again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Release};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::Rollback;
use crate::engine::Processor;
use crate::metrics::StageMetrics;

/// Why a version was refused or dropped, as the `reason` label of
/// `partita_reload_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The file could not be read.
    Read,
    /// Not a WebAssembly component (truncated, garbage, a core module).
    NotAComponent,
    /// A component of another world.
    WrongWorld,
    /// Instantiation failed.
    Instantiate,
    /// Its `init` failed with the stage's config.
    Init,
    /// It declares an output the stage maps no topic to.
    Outputs,
    /// It rejected too many of its first records and was rolled back.
    Rollback,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Read => "read",
            Refusal::NotAComponent => "not_a_component",
            Refusal::WrongWorld => "wrong_world",
            Refusal::Instantiate => "instantiate",
            Refusal::Init => "init",
            Refusal::Outputs => "outputs",
            Refusal::Rollback => "rollback",
        }
    }
}

/// The live processor of one stage.
pub struct LiveProcessor {
    stage: String,
    rollback: Option<Rollback>,
    metrics: Arc<StageMetrics>,
    /// The generation of `state.current`, readable without the lock.
    generation: AtomicU64,
    /// The generation on probation (rollback watch), 0 when none.
    probation: AtomicU64,
    state: Mutex<State>,
}

struct State {
    generation: u64,
    current: Processor,
    /// The version before `current`, the one a rollback returns to.
    previous: Option<Processor>,
    /// When the change that led to `current` was seen.
    changed_at: Instant,
    /// Partitions whose workers run, with how many hooks registered each
    /// (a worker that restarts its runner registers the new one before it
    /// drops the old one).
    workers: BTreeMap<i32, u32>,
    /// Partitions not yet on `current`.
    pending: BTreeSet<i32>,
    /// Longest pause of a partition for the current swap.
    longest_pause: Duration,
    /// True once the current swap was logged as complete.
    complete: bool,
    /// Records and bad records of the version on probation.
    judged: (u64, u64),
    /// A version rolled back, which the watcher must not swap in again
    /// until its file changes.
    rolled_back: Option<String>,
}

/// What a worker should run after [`LiveProcessor::register`] or at a
/// batch boundary.
pub struct Target {
    /// The generation.
    pub generation: u64,
    /// The processor.
    pub processor: Processor,
}

impl LiveProcessor {
    /// Starts with `processor`, checked at start-up, as generation 1.
    pub fn new(
        stage: &str,
        processor: Processor,
        rollback: Option<Rollback>,
        metrics: Arc<StageMetrics>,
    ) -> Arc<LiveProcessor> {
        metrics.set_version(processor.version());
        Arc::new(LiveProcessor {
            stage: stage.to_string(),
            rollback,
            metrics,
            generation: AtomicU64::new(1),
            probation: AtomicU64::new(0),
            state: Mutex::new(State {
                generation: 1,
                current: processor,
                previous: None,
                changed_at: Instant::now(),
                workers: BTreeMap::new(),
                pending: BTreeSet::new(),
                longest_pause: Duration::ZERO,
                complete: true,
                judged: (0, 0),
                rolled_back: None,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stage's name.
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// The live generation (one atomic load: the check at each batch
    /// boundary).
    pub fn generation(&self) -> u64 {
        self.generation.load(Acquire)
    }

    /// The live processor.
    pub fn current(&self) -> Processor {
        self.lock().current.clone()
    }

    /// The live processor and its generation.
    pub fn target(&self) -> Target {
        let s = self.lock();
        Target {
            generation: s.generation,
            processor: s.current.clone(),
        }
    }

    /// The content hash of a version rolled back since the last publish, if
    /// any: the watcher does not swap it in again for the same content.
    pub fn rolled_back(&self) -> Option<String> {
        self.lock().rolled_back.clone()
    }

    /// Counts a version the coordinator refused.
    pub fn count_refusal(&self, reason: Refusal) {
        self.metrics.count_reload_failure(reason.as_str());
    }

    /// Publishes `processor` as the new live version; workers swap at their
    /// next batch boundary. `changed_at` is when the change was seen (the
    /// file event or the signal), for the log line. Returns the generation.
    pub fn publish(&self, processor: Processor, changed_at: Instant) -> u64 {
        let mut s = self.lock();
        let old = s.current.clone();
        s.rolled_back = None;
        self.install(&mut s, processor, changed_at, true);
        tracing::info!(
            "stage \"{}\": swapping processor {} -> {} on partitions {:?}",
            self.stage,
            old.version(),
            s.current.version(),
            s.pending
        );
        s.previous = Some(old);
        s.generation
    }

    fn install(&self, s: &mut State, processor: Processor, changed_at: Instant, judge: bool) {
        s.generation += 1;
        s.current = processor;
        s.changed_at = changed_at;
        s.pending = s.workers.keys().copied().collect();
        s.longest_pause = Duration::ZERO;
        s.complete = false;
        s.judged = (0, 0);
        let probation = if judge && self.rollback.is_some() {
            s.generation
        } else {
            0
        };
        self.probation.store(probation, Release);
        self.metrics.set_version(s.current.version());
        self.metrics.count_reload();
        self.generation.store(s.generation, Release);
        self.maybe_complete(s);
    }

    /// A worker for `partition` started, running `version`. Returns the
    /// generation it is on: the live one when `version` is live, else one
    /// behind so that its first batch boundary swaps.
    pub fn register(&self, partition: i32, version: &str) -> u64 {
        let mut s = self.lock();
        *s.workers.entry(partition).or_default() += 1;
        if s.current.version() == version {
            s.generation
        } else {
            s.pending.insert(partition);
            s.generation - 1
        }
    }

    /// The partitions this process serves that do not run the live
    /// version yet.
    pub fn pending(&self) -> Vec<i32> {
        self.lock().pending.iter().copied().collect()
    }

    /// The worker of `partition` stopped.
    pub fn deregister(&self, partition: i32) {
        let mut s = self.lock();
        if let Some(n) = s.workers.get_mut(&partition) {
            *n -= 1;
            if *n > 0 {
                return;
            }
        }
        s.workers.remove(&partition);
        s.pending.remove(&partition);
        self.maybe_complete(&mut s);
    }

    /// The worker of `partition` runs generation `generation` now, after a
    /// pause of `pause` (zero when it had nothing to swap).
    pub fn acknowledge(&self, partition: i32, generation: u64, pause: Duration) {
        let mut s = self.lock();
        if generation != s.generation {
            return;
        }
        s.longest_pause = s.longest_pause.max(pause);
        s.pending.remove(&partition);
        self.maybe_complete(&mut s);
    }

    fn maybe_complete(&self, s: &mut State) {
        if s.complete || !s.pending.is_empty() {
            return;
        }
        s.complete = true;
        if s.generation == 1 {
            return;
        }
        let previous = s.previous.as_ref().map_or("-", |p| p.version());
        tracing::info!(
            "stage \"{}\": processor {} -> {} live on all {} partitions {:.1} ms after the change \
             (longest pause of a partition {:.2} ms)",
            self.stage,
            previous,
            s.current.version(),
            s.workers.len(),
            s.changed_at.elapsed().as_secs_f64() * 1e3,
            s.longest_pause.as_secs_f64() * 1e3,
        );
    }

    /// Counts a batch of `records` run by generation `generation`, `bad`
    /// of them rejected or failed; rolls back when the version on
    /// probation went over its allowed share. Cheap when nothing is on
    /// probation.
    pub fn judge(&self, generation: u64, records: u64, bad: u64) {
        if self.probation.load(Acquire) != generation || records == 0 {
            return;
        }
        let Some(rule) = self.rollback else { return };
        let mut s = self.lock();
        if s.generation != generation {
            return;
        }
        let first = rule.first_records;
        // Only the first `first_records` count: a batch that crosses the
        // limit counts its bad records in proportion.
        let room = first.saturating_sub(s.judged.0);
        let counted = records.min(room);
        let bad = if counted == records {
            bad
        } else {
            bad.saturating_mul(counted) / records
        };
        s.judged.0 += counted;
        s.judged.1 += bad;
        let (seen, rejected) = s.judged;
        if rule.exceeded(rejected) {
            self.roll_back(&mut s, seen, rejected);
        } else if seen >= first {
            self.probation.store(0, Release);
            tracing::info!(
                "stage \"{}\": processor {} passed its probation ({rejected} of its first {seen} \
                 records rejected or failed)",
                self.stage,
                s.current.version()
            );
        }
    }

    fn roll_back(&self, s: &mut State, seen: u64, rejected: u64) {
        let Some(previous) = s.previous.take() else {
            self.probation.store(0, Release);
            return;
        };
        let bad = s.current.clone();
        let share = self.rollback.map_or(0.0, |r| r.max_reject_share);
        tracing::warn!(
            "stage \"{}\": processor {} rejected or failed {rejected} of its first {seen} records \
             (more than {:.0}% of {}): rolling back to {}",
            self.stage,
            bad.version(),
            share * 100.0,
            self.rollback.map_or(0, |r| r.first_records),
            previous.version()
        );
        self.metrics
            .count_reload_failure(Refusal::Rollback.as_str());
        self.install(s, previous, Instant::now(), false);
        s.rolled_back = Some(bad.content_hash().to_string());
        s.previous = Some(bad);
    }
}
