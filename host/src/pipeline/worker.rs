//! The worker of one assigned (stage, partition), run in turns by a thread
//! of its stage's pool (`pool.rs`).
//!
//! It reads the partition's queue(s) in offset order, closes batches,
//! runs them through the processor, hands outputs and dead letters to the
//! producer, and commits offsets once a batch and all batches before it
//! are acknowledged. Up to [`MAX_IN_FLIGHT`] batches may wait for their
//! acknowledgements while the next ones are processed. When asked to stop
//! (revoke, shutdown) it finishes the batch in hand, waits for every
//! acknowledgement, commits, and ends. A turn ([`Worker::turn`]) never
//! waits: it says when the worker wants its next one, and the records,
//! acknowledgements and stops that arrive before wake its pool thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::Offset;

use super::batch::BatchBuilder;
use super::ledger::{Ledger, Sent, StopAt};
use super::shadow::{Plan, RecordResult};
use super::timers::{TimerSink, Timers};
use super::{StageFailure, StageShared};
use crate::kafka::produce::{Acks, Waker};
use crate::kafka::transactions::TXN_CALL_TIMEOUT;
use crate::metrics::PartitionMetrics;

/// Batches whose outputs may be in flight at once, per worker.
pub(crate) const MAX_IN_FLIGHT: usize = 8;
/// Longest wait for records or acknowledgements; the stop flags are
/// checked at least this often.
const IDLE: Duration = Duration::from_millis(100);

/// What one turn of a worker came to.
pub(crate) enum Turn {
    /// It did some work: it wants another turn at once.
    Busy,
    /// Nothing to do before this instant, unless woken earlier.
    Idle(Instant),
    /// It stopped, committed and closed its state.
    Done,
    /// It stopped on a failure that ends the run.
    Failed(StageFailure),
}

/// Everything one worker needs.
pub(crate) struct WorkerSetup<C: ConsumerContext + 'static> {
    /// The stage.
    pub shared: Arc<StageShared>,
    /// The partition.
    pub partition: i32,
    /// The partition's queue for each assigned input (by input index).
    pub queues: Vec<(u32, PartitionQueue<C>)>,
    /// The stage's consumer, for commits.
    pub consumer: Arc<BaseConsumer<C>>,
    /// Set to stop the worker at the next batch boundary.
    pub stop: Arc<AtomicBool>,
}

/// A started worker; see the module docs.
pub(crate) struct Worker<C: ConsumerContext + 'static> {
    shared: Arc<StageShared>,
    partition: i32,
    queues: Vec<(u32, PartitionQueue<C>)>,
    consumer: Arc<BaseConsumer<C>>,
    stop: Arc<AtomicBool>,
    /// The processor, its routes, swap hook and changelog writer.
    processing: Processing,
    batch: BatchBuilder,
    ledger: Ledger,
    metrics: Arc<PartitionMetrics>,
    /// Which queue the next fill starts with (fairness between inputs).
    next_queue: usize,
    last_commit_at: Instant,
    /// A failure that ends the run (a record the broker refuses for good).
    fatal: Option<StageFailure>,
    /// The `on_error = "stop"` record that stopped this worker.
    halted: Option<StopAt>,
    /// When to call the processor's `on-timer`, and the stream time.
    timers: Timers,
    /// At-least-once or exactly-once.
    guarantee: Guarantee,
    /// Stopping: the batches in flight are being acknowledged before the
    /// last commit.
    finishing: bool,
    /// When the wait for acknowledgements at the end was last logged.
    waiting_logged: Instant,
    /// What records arriving and batches acknowledged wake: the worker's
    /// thread, and its flag there.
    waker: Waker,
    /// Set by `waker`: something new since the last turn.
    woken: Arc<AtomicBool>,
}

mod at_least_once;
mod exactly_once;
mod guarantee;
mod processing;
mod sink;

use guarantee::{Guarantee, Next, Scope};
use processing::Processing;
use sink::{Counts, Sink};

/// What a worker's guarantee sees of it (its fields borrowed apart from the
/// guarantee itself).
macro_rules! scope {
    ($w:expr) => {
        Scope {
            shared: &$w.shared,
            partition: $w.partition,
            consumer: &$w.consumer,
            ledger: &$w.ledger,
        }
    };
}

/// Starts the worker of `setup`: registers its transactional producer
/// (exactly-once) and opens its state (restored from the changelog). It
/// runs once [`Worker::attach`]ed to a thread.
pub(crate) fn start<C: ConsumerContext + 'static>(
    setup: WorkerSetup<C>,
) -> Result<Worker<C>, StageFailure> {
    let WorkerSetup {
        shared,
        partition,
        queues,
        consumer,
        stop,
    } = setup;
    // Exactly-once: fence the partition's previous owner (its open
    // transaction aborted) before the state is restored from the changelog.
    let guarantee = Guarantee::start(&shared, partition)?;
    let processing = Processing::start(&shared, partition).map_err(|e| StageFailure::Start {
        what: "cannot start the partition's processor",
        source: e.into(),
    })?;
    let shared_timer_interval = shared.config.timer_interval;
    let metrics = shared.all_metrics.partition(&shared.config.name, partition);
    metrics.set_assigned(true);
    let inputs = shared.config.inputs.len();
    let w = Worker {
        batch: BatchBuilder::new(&shared.config.inputs, shared.config.batch),
        shared,
        partition,
        queues,
        consumer,
        stop,
        processing,
        ledger: Ledger::new(inputs),
        metrics,
        next_queue: 0,
        last_commit_at: Instant::now(),
        fatal: None,
        halted: None,
        timers: Timers::new(shared_timer_interval),
        guarantee,
        finishing: false,
        waiting_logged: Instant::now(),
        waker: thread::current().into(),
        woken: Arc::new(AtomicBool::new(true)),
    };
    tracing::debug!(stage = %w.shared.config.name, partition, "worker started");
    Ok(w)
}

impl<C: ConsumerContext + 'static> Worker<C> {
    fn stopping(&self) -> bool {
        self.stop.load(Relaxed)
            || self.shared.control.stopping()
            || self.halted.is_some()
            || self.fatal.is_some()
    }

    /// The stage's name.
    pub(crate) fn stage(&self) -> &str {
        &self.shared.config.name
    }

    /// The partition.
    pub(crate) fn partition(&self) -> i32 {
        self.partition
    }

    /// The run's stop and failure.
    pub(crate) fn control(&self) -> &super::RunControl {
        &self.shared.control
    }

    /// Makes the calling thread the one that records arriving on the
    /// partition's queues wake (acknowledgements wake the thread that
    /// processed their batch).
    pub(crate) fn attach(&mut self) {
        self.waker = Waker::new(thread::current(), self.woken.clone());
        for (_, q) in &mut self.queues {
            let waker = self.waker.clone();
            q.set_nonempty_callback(move || waker.wake());
        }
    }

    /// True when the worker was woken since this was last asked (records
    /// arrived, a batch was acknowledged), or is asked to stop.
    pub(crate) fn take_woken(&self) -> bool {
        self.woken.swap(false, Relaxed) || self.stop.load(Relaxed)
    }

    /// Asks the worker to stop at its next batch boundary.
    pub(crate) fn ask_to_stop(&self) {
        self.stop.store(true, Relaxed);
    }

    /// One turn: reads what has arrived, runs the batch once it is due
    /// (full, or past its deadline) or calls `on-timer` while idle, serves
    /// acknowledgements and commits when the interval has passed. Asked to
    /// stop, it finishes the batch in hand, then waits (turn after turn)
    /// for the acknowledgements, commits and closes its state.
    pub(crate) fn turn(&mut self) -> Turn {
        if !self.finishing && self.stopping() {
            // A batch in hand (stop requested while filling) is finished.
            if !self.batch.is_empty() && self.fatal.is_none() && self.halted.is_none() {
                self.process();
            }
            self.finishing = true;
            self.waiting_logged = Instant::now();
        }
        if self.finishing {
            return self.finish();
        }
        self.settle();
        if self.ledger.len() >= MAX_IN_FLIGHT && self.fatal.is_none() {
            // Acknowledgements wake the thread.
            return Turn::Idle(Instant::now() + IDLE);
        }
        if self.batch.is_empty() {
            self.swap_if_due();
        }
        let got = self.read();
        let now = Instant::now();
        let deadline = self.batch.deadline();
        if !self.batch.is_empty()
            && (self.batch.is_full() || deadline.is_some_and(|d| now >= d) || self.stopping())
        {
            self.process();
            self.settle();
            return Turn::Busy;
        }
        if self.batch.is_empty() && self.timers.due(now) {
            self.idle_timer();
            self.settle();
            return Turn::Busy;
        }
        if got {
            return Turn::Busy;
        }
        let mut wake = now + deadline.map_or(IDLE, |d| d.saturating_duration_since(now).min(IDLE));
        if self.batch.is_empty() {
            wake = wake.min(now + self.timers.until_due(now));
        }
        Turn::Idle(wake)
    }

    /// A turn while stopping: once every batch in flight is acknowledged
    /// (after a record was lost for good, only the records still in
    /// flight; a failing exactly-once worker waits for nothing, its open
    /// transaction is aborted), commits and closes the state.
    fn finish(&mut self) -> Turn {
        self.settle();
        let failing = self.fatal.is_some();
        let drained = self.ledger.is_empty()
            || (failing && self.ledger.pending_records() == 0)
            || (failing && !self.guarantee.keeps_acknowledged_on_failure());
        if !drained {
            if self.waiting_logged.elapsed() >= Duration::from_secs(5) {
                tracing::info!(
                    "stage \"{}\", partition {}: waiting for {} records to be acknowledged before committing",
                    self.shared.config.name,
                    self.partition,
                    self.ledger.pending_records()
                );
                self.waiting_logged = Instant::now();
            }
            return Turn::Idle(Instant::now() + IDLE);
        }
        self.commit(CommitMode::Sync);
        if self.fatal.is_none() {
            self.processing
                .checkpoint(&self.metrics, self.ledger.changelog_acknowledged());
            self.processing
                .close(&self.shared.config.name, self.partition);
        }
        self.metrics.set_assigned(false);
        tracing::debug!(stage = %self.shared.config.name, partition = self.partition, "worker stopped");
        if let Some(fatal) = self.fatal.take() {
            return Turn::Failed(fatal);
        }
        if let Some(stop) = self.stopped_at() {
            return Turn::Failed(StageFailure::StoppedAt {
                topic: stop.topic.clone(),
                partition: stop.partition,
                offset: stop.offset,
                reason: stop.reason.clone(),
            });
        }
        Turn::Done
    }

    /// The stop record, once its batch settled (its offsets committed).
    fn stopped_at(&self) -> Option<&StopAt> {
        self.halted.as_ref().filter(|_| self.ledger.is_empty())
    }

    /// Reads what the partition's queues hold, without waiting, until the
    /// batch is full; true when a record was read.
    fn read(&mut self) -> bool {
        let mut got = false;
        let n = self.queues.len();
        for k in 0..n {
            let q = (self.next_queue + k) % n;
            let (input, queue) = &self.queues[q];
            while !self.batch.is_full() {
                match queue.poll(Duration::ZERO) {
                    None => break,
                    Some(Ok(m)) => {
                        self.batch.push_message(*input, &m);
                        got = true;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(
                            "stage \"{}\", partition {}: consuming {}: {e}",
                            self.shared.config.name,
                            self.partition,
                            self.shared.config.inputs[*input as usize]
                        );
                        break;
                    }
                }
            }
        }
        self.next_queue = (self.next_queue + 1) % n.max(1);
        got
    }

    /// Calls `on-timer` while no record arrives; its outputs are a batch of
    /// their own in the ledger (no offsets to commit, but in order).
    fn idle_timer(&mut self) {
        if let Err(e) = self.guarantee.begin(&self.batch) {
            self.fatal.get_or_insert(e);
            return;
        }
        let acks = Acks::new(self.waker.clone());
        let routes = self.processing.routes.clone();
        let sink = TimerSink {
            producer: self.guarantee.producer(&self.shared.producer),
            acks: &acks,
            routes: &routes,
        };
        let mut fired = self.timers.fire(
            &mut *self.processing.runner,
            &sink,
            &self.shared.config.name,
            self.partition,
        );
        if let Err(e) = self.processing.send_changes(sink.producer, &acks) {
            fired.fatal.get_or_insert(e);
        }
        acks.close();
        if fired.failed {
            self.shared.metrics.timer_failures.fetch_add(1, Relaxed);
        }
        if fired.outputs > 0 || !acks.is_done() {
            self.ledger.push(Sent {
                acks,
                next: vec![-1; self.shared.config.inputs.len()],
                outputs: fired.outputs,
                dlq: 0,
                stop: None,
            });
        }
        if let Some(f) = fired.fatal {
            self.batch_failed(f);
        }
    }

    /// Between batches: swaps to a newly published processor version.
    fn swap_if_due(&mut self) {
        self.processing.swap_if_due(&self.shared.config);
    }

    /// Runs the batch in hand and hands its outputs to the producer.
    fn process(&mut self) {
        if let Err(e) = self.guarantee.begin(&self.batch) {
            self.fatal.get_or_insert(e);
            return;
        }
        let started = Instant::now();
        let acks = Acks::new(self.waker.clone());
        let stage = &self.shared.config;
        let routes = self.processing.routes.clone();
        let mut sink = Sink {
            producer: self.guarantee.producer(&self.shared.producer),
            acks: &acks,
            routes: &routes,
            on_error: &stage.on_error,
            stage: &stage.name,
            dlq_topic: &self.shared.dlq_topics,
            version: self.processing.runner.version().to_string(),
            version_header: stage.reload.version_header,
            batch: &self.batch,
            next: vec![-1; stage.inputs.len()],
            index: 0,
            counts: Counts::default(),
            stop: None,
            fatal: None,
            metrics: &self.shared.metrics,
        };
        let plan = self.processing.shadow_plan();
        // The live results, kept only while the stage has a candidate.
        let mut live = match plan {
            Plan::Offer { .. } => Some((
                Vec::with_capacity(self.batch.writer().len()),
                self.processing.runner.outputs().to_vec(),
            )),
            _ => None,
        };
        self.processing
            .runner
            .run(self.batch.writer(), &mut |record, outcome| {
                if let Some((results, names)) = &mut live {
                    results.push(RecordResult::of(&record, &outcome, names));
                }
                sink.record(record, outcome)
            });
        let live = live.map(|(results, _)| results).unwrap_or_default();
        self.processing
            .shadow_offer(plan, self.partition, self.batch.writer(), live);
        if let Err(e) = self.processing.send_changes(sink.producer, &acks) {
            sink.fatal.get_or_insert(e);
        }
        if sink.stop.is_none() && sink.fatal.is_none() {
            // The batch end's timer call: its outputs belong to the batch.
            let timer_sink = TimerSink {
                producer: sink.producer,
                acks: &acks,
                routes: sink.routes,
            };
            let fired = self.timers.after_batch(
                sink.counts.latest,
                &mut *self.processing.runner,
                &timer_sink,
                &stage.name,
                self.partition,
            );
            sink.counts.outputs += fired.outputs;
            if fired.failed {
                self.shared.metrics.timer_failures.fetch_add(1, Relaxed);
            }
            sink.fatal = fired.fatal;
            // The timer call's own state changes.
            if let Err(e) = self.processing.send_changes(sink.producer, &acks) {
                sink.fatal.get_or_insert(e);
            }
        }
        acks.close();
        let Sink {
            next,
            counts,
            stop,
            fatal,
            ..
        } = sink;
        self.shared.metrics.observe_batch(started.elapsed());
        let m = &self.metrics;
        m.records_in.fetch_add(counts.records, Relaxed);
        m.rejected.fetch_add(counts.rejected, Relaxed);
        m.failed.fetch_add(counts.failed, Relaxed);
        m.skipped.fetch_add(counts.skipped, Relaxed);
        self.processing
            .after_batch(counts.records, counts.rejected + counts.failed);
        self.ledger.push(Sent {
            acks,
            next,
            outputs: counts.outputs,
            dlq: counts.dlq,
            stop: stop.clone(),
        });
        self.batch.clear();
        if let Some(f) = fatal {
            self.batch_failed(f);
        }
        if let Some(s) = stop {
            tracing::error!(
                "stage \"{}\": {}/{} offset {}: {} (on_error = \"stop\"): stopping the run",
                self.shared.config.name,
                s.topic,
                s.partition,
                s.offset,
                s.reason
            );
            self.halted = Some(s);
        }
    }

    /// Produces again what the client gave up on (or, under exactly-once,
    /// aborts), settles finished batches, and commits when the interval
    /// has passed.
    fn settle(&mut self) {
        let failing = self.ledger.iter().any(|s| s.acks.has_failures());
        if failing {
            let next = self.guarantee.deliveries_failed(&scope!(self));
            self.follow(next);
        }
        let settled = self.ledger.settle();
        self.processing
            .checkpoint(&self.metrics, self.ledger.changelog_acknowledged());
        if settled.batches > 0 {
            self.metrics.records_out.fetch_add(settled.outputs, Relaxed);
            self.metrics.dlq.fetch_add(settled.dlq, Relaxed);
            for (i, next) in self.ledger.committable().iter().enumerate() {
                if *next >= 0 {
                    self.metrics.set_position(i, *next);
                }
            }
            if !failing {
                self.guarantee.settled();
            }
        }
        if self.last_commit_at.elapsed() >= self.shared.commit_interval {
            self.commit(CommitMode::Async);
        }
    }

    /// Does what the guarantee answered: fail, or go back to the last
    /// commit.
    fn follow(&mut self, next: Result<Next, StageFailure>) {
        match next {
            Ok(Next::Continue) => {}
            Ok(Next::Rewind(base)) => self.rewind(&base),
            Err(e) => {
                self.fatal.get_or_insert(e);
            }
        }
    }

    /// A batch (or timer call) could not queue a record.
    fn batch_failed(&mut self, why: StageFailure) {
        if self.fatal.is_some() {
            self.fatal.get_or_insert(why);
            return;
        }
        let next = self.guarantee.batch_failed(&scope!(self), why);
        self.follow(next);
    }

    /// After an aborted transaction: the batches in flight are dropped,
    /// each input is read again from `base`, and the processor starts again
    /// with its state as of the last commit.
    fn rewind(&mut self, base: &[i64]) {
        let partition = self.partition;
        self.ledger = Ledger::new(self.shared.config.inputs.len());
        self.batch.clear();
        for (topic, offset) in self.shared.config.inputs.iter().zip(base) {
            if *offset < 0 {
                continue;
            }
            if let Err(e) =
                self.consumer
                    .seek(topic, partition, Offset::Offset(*offset), TXN_CALL_TIMEOUT)
            {
                self.fatal.get_or_insert_with(|| StageFailure::Consumer {
                    what: format!("cannot go back to offset {offset} of {topic} after an abort"),
                    source: Some(e),
                });
                return;
            }
        }
        // The old runner lets go of the state store first, unclean: the
        // new one empties it and restores it from the committed changelog.
        // The aborted batches' changelog records will never be
        // acknowledged: the new writer starts afresh with the new store.
        self.processing.release_state();
        match Processing::start(&self.shared, partition) {
            Ok(p) => self.processing = p,
            Err(e) => {
                self.fatal.get_or_insert_with(|| StageFailure::Start {
                    what: "cannot start the processor again after an abort",
                    source: e.into(),
                });
            }
        }
    }

    /// Commits what is done, as the guarantee does it.
    fn commit(&mut self, mode: CommitMode) {
        self.last_commit_at = Instant::now();
        let next = self
            .guarantee
            .commit(&scope!(self), mode, self.fatal.is_some());
        self.follow(next);
    }
}
