//! A running instance: calls into the guest under limits, commits state on
//! success, and on failure restarts the guest and retries record by record.
//!
//! The fast path is one call per batch: the guest's result buffer is
//! validated once and the [`Outcome`] hands out views into it, with no
//! allocation per record. Only a failed batch takes the slow path, where
//! each record is sent on its own ([`BatchWriter::single`]) on a fresh
//! instance, so that one poison record does not fail its neighbours.
//!
//! Each retried record gets the whole deadline, so a batch in which every
//! record runs past the deadline costs one deadline per record; a batch
//! that is merely too slow as a whole succeeds record by record.

use std::sync::Arc;

use partita_wire::{
    Batch, BatchWriter, Outputs, RecordIter, RecordRef, RecordResult, ResultIter, Results,
};
use wasmtime::Store;

use super::counters::Counters;
use super::imports::{BatchStateFull, Origin, StateFailure, StoreData, WriteTooLarge};
use super::{InstanceError, InstanceSetup, Limits, ProcessError, Processor};
use crate::bindings::Stage;
use crate::state::{ChangeSet, MemoryState, StateStore};
use crate::tables::Tables;

/// A running processor instance for one stage and partition.
pub struct Instance {
    run: GuestSlot,
    /// Result buffer of the last whole-batch call.
    results: Vec<u8>,
    /// Where each result in `results` ends, kept by its validation.
    result_ends: Vec<usize>,
    /// Per-record results of the last batch retried record by record.
    singles: Vec<Single>,
    /// State changes committed by the last batch.
    changes: ChangeSet,
}

/// The guest and everything needed to call it or start it again. Kept apart
/// from the buffers an [`Outcome`] borrows, so that a result buffer can be
/// validated once and then lent out while the guest is still used.
struct GuestSlot {
    processor: Processor,
    stage: Arc<str>,
    partition: i32,
    config: Vec<(String, String)>,
    limits: Limits,
    ticks: u64,
    store: Store<StoreData>,
    /// `None` after a restart failed: the store still holds the state, but
    /// there is no guest to call until a restart succeeds.
    guest: Option<Stage>,
    /// Why the last restart failed, while `guest` is `None`.
    broken: Option<ProcessError>,
    outputs: Vec<String>,
    /// Output buffer of the last timer call.
    timer: Vec<u8>,
    /// The partition's counters, kept across restarts and swaps.
    counters: Arc<Counters>,
}

/// What a batch run record by record has handed over so far: the records
/// that would take it past a batch cap fail.
#[derive(Debug, Clone, Copy, Default)]
struct BatchTotals {
    outputs: usize,
    output_bytes: usize,
    state_bytes: usize,
}

/// The result of one record run on its own.
enum Single {
    Ok(Vec<u8>),
    Failed(ProcessError),
}

/// A started guest: its store, bindings and declared outputs.
type Started = (Store<StoreData>, Stage, Vec<String>);

impl Instance {
    /// Creates the store, instantiates the component and calls `init`.
    pub(super) fn start(
        processor: Processor,
        setup: InstanceSetup,
    ) -> Result<Instance, InstanceError> {
        let InstanceSetup {
            stage,
            partition,
            config,
            state,
            tables,
            limits,
            counters,
        } = setup;
        let stage: Arc<str> = stage.into();
        let ticks = processor.inner.engine.ticks(limits.deadline);
        let data = store_data(
            &processor, &stage, partition, state, tables, limits, &counters,
        );
        let (store, guest, outputs) =
            start_guest(&processor, data, &config, ticks, limits).map_err(|(e, _)| e)?;
        Ok(Instance {
            run: GuestSlot {
                processor,
                stage,
                partition,
                config,
                limits,
                ticks,
                store,
                guest: Some(guest),
                broken: None,
                outputs,
                timer: Vec::new(),
                counters,
            },
            results: Vec::new(),
            result_ends: Vec::new(),
            singles: Vec::new(),
            changes: ChangeSet::new(),
        })
    }

    /// The output names the processor declared at `init`.
    pub fn outputs(&self) -> &[String] {
        &self.run.outputs
    }

    /// The processor version this instance runs.
    pub fn version(&self) -> &str {
        self.run.processor.version()
    }

    /// The processor this instance runs.
    pub fn processor(&self) -> &Processor {
        &self.run.processor
    }

    /// The partition's state, as committed so far.
    pub fn state(&mut self) -> &mut dyn StateStore {
        &mut *self.run.store.data_mut().state
    }

    /// Runs one batch. Never fails as a whole: a batch that traps or exceeds
    /// a limit is retried record by record on a fresh instance, and the
    /// records that still fail are reported as [`RecordOutcome::Failed`].
    pub fn process<'a>(&'a mut self, batch: &'a BatchWriter) -> Outcome<'a> {
        // Disjoint borrows: the result buffer is lent to the outcome while
        // the runner may still be used to retry.
        let Instance {
            run,
            results,
            result_ends,
            singles,
            changes,
        } = self;
        changes.clear();
        singles.clear();
        let n = batch.len();
        let records =
            Batch::parse(batch.as_bytes()).expect("BatchWriter encodes a valid batch header");
        let mut calls = 0;
        let mut whole = None;
        if n > 0 && run.guest.is_none() {
            run.restart();
        }
        if n > 0 && run.guest.is_some() {
            calls += 1;
            let first = match run.call_process(batch.as_bytes(), 0) {
                Ok(buf) => {
                    *results = buf;
                    let results: &'a [u8] = results;
                    match Results::parse_indexed(results, n, run.n_outputs(), result_ends) {
                        Ok(parsed) => check_outputs(&parsed, BatchTotals::default(), &run.limits)
                            .and_then(|()| run.commit(changes).map(|()| parsed)),
                        Err(e) => Err(ProcessError::Malformed(format!("results: {e}"))),
                    }
                }
                Err(e) => Err(e),
            };
            match first {
                Ok(parsed) => whole = Some(parsed),
                Err(e) => {
                    tracing::warn!(
                        stage = &*run.stage,
                        partition = run.partition,
                        version = run.processor.version(),
                        records = n,
                        "batch failed ({e}); retrying record by record on a fresh instance"
                    );
                    changes.clear();
                    run.restart();
                }
            }
        }
        if n > 0 && whole.is_none() {
            let mut totals = BatchTotals::default();
            for i in 0..n {
                let single = match &run.broken {
                    Some(e) => Single::Failed(e.clone()),
                    None => {
                        calls += 1;
                        match run.call_single(&batch.single(i), changes, &mut totals) {
                            Ok(buf) => Single::Ok(buf),
                            Err(e) => {
                                run.restart();
                                Single::Failed(e)
                            }
                        }
                    }
                };
                singles.push(single);
            }
        }
        let run: &'a GuestSlot = run;
        let n_outputs = run.n_outputs();
        let body = match whole {
            Some(parsed) => Body::Whole(parsed),
            None if n == 0 => Body::Empty,
            // The slow path: each buffer was validated by `call_single`.
            None => Body::Singles(
                singles
                    .iter()
                    .map(|s| match s {
                        Single::Ok(buf) => SingleRef::Ok(
                            Results::parse(buf, 1, n_outputs).expect("validated when returned"),
                        ),
                        Single::Failed(e) => SingleRef::Failed(e),
                    })
                    .collect(),
            ),
        };
        Outcome {
            records,
            body,
            changes,
            outputs: &run.outputs,
            calls,
        }
    }

    /// The state changes committed by the last [`Instance::process`] or
    /// [`Instance::on_timer`] call (for a changelog; after a timer, once its
    /// outputs are no longer borrowed).
    pub fn last_changes(&self) -> &ChangeSet {
        &self.changes
    }

    /// Calls `on-timer`; on failure the instance is replaced by a fresh one.
    /// The timer's state changes are in [`Instance::last_changes`].
    pub fn on_timer(
        &mut self,
        stream_time: i64,
        wall_time: i64,
    ) -> Result<Outputs<'_>, ProcessError> {
        self.changes.clear();
        self.run.on_timer(stream_time, wall_time, &mut self.changes)
    }

    /// Takes the partition's state out of the instance, leaving an empty
    /// in-memory one: to close or reopen the store (its file) while the
    /// instance is dropped or replaced.
    pub fn take_state(&mut self) -> Box<dyn StateStore> {
        std::mem::replace(
            &mut self.run.store.data_mut().state,
            Box::new(MemoryState::new()),
        )
    }

    /// Ends the instance and gives its state back (for a hot swap).
    pub fn into_state(self) -> Box<dyn StateStore> {
        self.run.store.into_data().into_parts().0
    }

    /// Swaps in `processor` (a new version of the code) at a batch boundary,
    /// keeping this instance's state, configuration and limits: the new code
    /// is instantiated and its `init` called first, and only if that works
    /// does it replace the running one. On error nothing changes.
    pub fn replace_processor(&mut self, processor: &Processor) -> Result<(), InstanceError> {
        self.run.replace_processor(processor)
    }
}

impl GuestSlot {
    fn on_timer(
        &mut self,
        stream_time: i64,
        wall_time: i64,
        changes: &mut ChangeSet,
    ) -> Result<Outputs<'_>, ProcessError> {
        if self.guest.is_none() {
            self.restart();
        }
        self.before_call(0);
        let Some(guest) = &self.guest else {
            return Err(self.broken_error());
        };
        let result = guest.partita_processor_processor().call_on_timer(
            &mut self.store,
            stream_time,
            wall_time,
        );
        let checked = match result {
            Ok(buf) => {
                self.timer = buf;
                match Outputs::parse(&self.timer, self.n_outputs()) {
                    Ok(o) => check_record(o.len(), o.largest(), o.bytes(), &self.limits)
                        .and_then(|()| self.commit(changes)),
                    Err(e) => Err(ProcessError::Malformed(format!("timer outputs: {e}"))),
                }
            }
            Err(e) => Err(self.classify(e)),
        };
        match checked {
            Ok(()) => Ok(Outputs::parse(&self.timer, self.n_outputs()).expect("validated above")),
            Err(e) => {
                changes.clear();
                self.restart();
                Err(e)
            }
        }
    }

    fn replace_processor(&mut self, processor: &Processor) -> Result<(), InstanceError> {
        let state = std::mem::replace(
            &mut self.store.data_mut().state,
            Box::new(MemoryState::new()),
        );
        let tables = self.tables();
        let data = store_data(
            processor,
            &self.stage,
            self.partition,
            state,
            tables,
            self.limits,
            &self.counters,
        );
        let ticks = processor.inner.engine.ticks(self.limits.deadline);
        match start_guest(processor, data, &self.config, ticks, self.limits) {
            Ok((store, guest, outputs)) => {
                self.processor = processor.clone();
                self.ticks = ticks;
                self.install(store, guest, outputs);
                Ok(())
            }
            Err((e, failed)) => {
                // Put the state back into the running instance.
                self.store.data_mut().state = failed.into_data().into_parts().0;
                Err(e)
            }
        }
    }

    fn n_outputs(&self) -> u32 {
        u32::try_from(self.outputs.len()).unwrap_or(u32::MAX)
    }

    fn tables(&self) -> Arc<dyn Tables> {
        self.store.data().tables()
    }

    fn broken_error(&self) -> ProcessError {
        self.broken
            .clone()
            .unwrap_or_else(|| ProcessError::Restart("no instance".into()))
    }

    /// Resets what a call may leave behind and arms the deadline; the
    /// call's batch has written `state_bytes` of state before it.
    fn before_call(&mut self, state_bytes: usize) {
        let data = self.store.data_mut();
        data.clear_pending();
        data.batch_state_bytes = state_bytes;
        data.counts.clear();
        data.limiter.take_refused();
        data.stderr.clear();
        self.store.set_epoch_deadline(self.ticks);
    }

    /// One `process` call on the current guest, its batch having written
    /// `state_bytes` before it; the caller validates the buffer and commits.
    fn call_process(&mut self, input: &[u8], state_bytes: usize) -> Result<Vec<u8>, ProcessError> {
        self.before_call(state_bytes);
        let Some(guest) = &self.guest else {
            return Err(self.broken_error());
        };
        match guest
            .partita_processor_processor()
            .call_process(&mut self.store, input)
        {
            Ok(buf) => Ok(buf),
            Err(e) => Err(self.classify(e)),
        }
    }

    /// One `process` call for a single record, validated against the caps
    /// with its batch's `totals` so far, committed, and added to them.
    fn call_single(
        &mut self,
        input: &[u8],
        changes: &mut ChangeSet,
        totals: &mut BatchTotals,
    ) -> Result<Vec<u8>, ProcessError> {
        let buf = self.call_process(input, totals.state_bytes)?;
        let (outputs, output_bytes) = match Results::parse(&buf, 1, self.n_outputs()) {
            Ok(parsed) => {
                check_outputs(&parsed, *totals, &self.limits)?;
                (parsed.outputs(), parsed.output_bytes())
            }
            Err(e) => return Err(ProcessError::Malformed(format!("results: {e}"))),
        };
        let state_bytes = self.store.data().pending_bytes;
        self.commit(changes)?;
        totals.outputs += outputs;
        totals.output_bytes += output_bytes;
        totals.state_bytes += state_bytes;
        Ok(buf)
    }

    /// Applies the call's pending writes to the state store and adds them to
    /// the batch's `changes`.
    fn commit(&mut self, changes: &mut ChangeSet) -> Result<(), ProcessError> {
        let data = self.store.data_mut();
        data.counters.apply(&mut data.counts);
        if data.pending.is_empty() {
            return Ok(());
        }
        data.keep_last_writes();
        data.state
            .commit(&data.pending)
            .map_err(|e| ProcessError::State(format!("{e:#}")))?;
        if changes.is_empty() {
            // The call's buffers become the batch's, and the batch's
            // (emptied) serve the next call.
            std::mem::swap(changes, &mut data.pending);
            data.clear_pending();
        } else {
            changes.append(&data.pending);
        }
        Ok(())
    }

    /// Names the cause of a failed call.
    fn classify(&mut self, e: wasmtime::Error) -> ProcessError {
        let refused = self.store.data_mut().limiter.take_refused();
        self.store.data_mut().clear_pending();
        self.store.data_mut().counts.clear();
        if let Some(f) = e.downcast_ref::<StateFailure>() {
            return ProcessError::State(f.0.clone());
        }
        if let Some(w) = e.downcast_ref::<WriteTooLarge>() {
            return ProcessError::TooLarge {
                what: "a state write",
                bytes: w.bytes,
                limit: w.limit,
            };
        }
        if let Some(b) = e.downcast_ref::<BatchStateFull>() {
            return ProcessError::BatchLimit {
                what: "bytes of state writes",
                total: b.total,
                setting: "max_batch_state_bytes",
                limit: b.limit,
            };
        }
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => ProcessError::Deadline(self.limits.deadline),
            _ if refused => ProcessError::Memory(self.limits.memory_bytes),
            trap => {
                tracing::debug!(
                    stage = &*self.stage,
                    partition = self.partition,
                    "guest failure: {e:?}"
                );
                ProcessError::Trap(describe(&e, trap, self.store.data()))
            }
        }
    }

    /// Replaces the store and guest by fresh ones (same state, config and
    /// limits). If that fails, the instance is marked broken and keeps the
    /// state in the failed store; the next batch tries again.
    fn restart(&mut self) {
        let placeholder = store_data(
            &self.processor,
            &self.stage,
            self.partition,
            Box::new(MemoryState::new()),
            self.tables(),
            self.limits,
            &self.counters,
        );
        let old = std::mem::replace(
            &mut self.store,
            Store::new(&self.processor.inner.engine.inner.wasm, placeholder),
        );
        let (state, tables) = old.into_data().into_parts();
        let data = store_data(
            &self.processor,
            &self.stage,
            self.partition,
            state,
            tables,
            self.limits,
            &self.counters,
        );
        match start_guest(&self.processor, data, &self.config, self.ticks, self.limits) {
            Ok((store, guest, outputs)) => self.install(store, guest, outputs),
            Err((e, failed)) => {
                tracing::error!(
                    stage = &*self.stage,
                    partition = self.partition,
                    version = self.processor.version(),
                    "cannot restart the processor: {e}"
                );
                self.store = failed;
                self.guest = None;
                self.broken = Some(ProcessError::Restart(e.to_string()));
            }
        }
    }

    fn install(&mut self, store: Store<StoreData>, guest: Stage, outputs: Vec<String>) {
        if outputs != self.outputs {
            tracing::info!(
                stage = &*self.stage,
                partition = self.partition,
                ?outputs,
                "processor outputs changed"
            );
        }
        self.store = store;
        self.guest = Some(guest);
        self.broken = None;
        self.outputs = outputs;
    }
}

/// Store data for one instance of `processor`.
fn store_data(
    processor: &Processor,
    stage: &Arc<str>,
    partition: i32,
    state: Box<dyn StateStore>,
    tables: Arc<dyn Tables>,
    limits: Limits,
    counters: &Arc<Counters>,
) -> StoreData {
    let origin = Origin {
        stage: stage.clone(),
        partition,
        version: processor.version().into(),
    };
    StoreData::new(state, tables, limits, origin, counters.clone())
}

/// Instantiates `processor` in a new store around `data` and calls `init`.
/// On failure the store comes back too, so that the state is not lost.
#[allow(
    clippy::ptr_arg,
    reason = "the generated `call_init` takes the config as `&Vec`"
)]
fn start_guest(
    processor: &Processor,
    data: StoreData,
    config: &Vec<(String, String)>,
    ticks: u64,
    limits: Limits,
) -> Result<Started, (InstanceError, Store<StoreData>)> {
    let version = processor.version().to_string();
    let mut store = Store::new(&processor.inner.engine.inner.wasm, data);
    store.limiter(|d| &mut d.limiter);
    store.epoch_deadline_trap();
    store.set_epoch_deadline(ticks);
    let cause = |store: &mut Store<StoreData>, e: wasmtime::Error| {
        let refused = store.data_mut().limiter.take_refused();
        match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => ProcessError::Deadline(limits.deadline).to_string(),
            _ if refused => ProcessError::Memory(limits.memory_bytes).to_string(),
            trap => describe(&e, trap, store.data()),
        }
    };
    let guest = match processor.inner.pre.instantiate(&mut store) {
        Ok(g) => g,
        Err(e) => {
            let reason = cause(&mut store, e);
            return Err((InstanceError::Instantiate { version, reason }, store));
        }
    };
    let init = guest
        .partita_processor_processor()
        .call_init(&mut store, config);
    store.data_mut().clear_pending();
    store.data_mut().counts.clear();
    match init {
        Ok(Ok(outputs)) => Ok((store, guest, outputs)),
        Ok(Err(reason)) => Err((InstanceError::Init { version, reason }, store)),
        Err(e) => {
            let reason = cause(&mut store, e);
            Err((InstanceError::Init { version, reason }, store))
        }
    }
}

/// Fails when a record of `results` goes past a cap of one record, or
/// when they would take their batch (having handed over `before`) past a
/// cap of one batch.
fn check_outputs(
    results: &Results<'_>,
    before: BatchTotals,
    limits: &Limits,
) -> Result<(), ProcessError> {
    check_record(
        results.most_outputs(),
        results.largest_output(),
        results.most_output_bytes(),
        limits,
    )?;
    batch_within(
        before.outputs + results.outputs(),
        limits.max_batch_outputs,
        "outputs",
        "max_batch_outputs",
    )?;
    batch_within(
        before.output_bytes.saturating_add(results.output_bytes()),
        limits.max_batch_output_bytes,
        "bytes of outputs",
        "max_batch_output_bytes",
    )
}

/// Fails with [`ProcessError::BatchLimit`] when a batch's `total` of `what`
/// is over `limit` (the value of `setting`).
fn batch_within(
    total: usize,
    limit: usize,
    what: &'static str,
    setting: &'static str,
) -> Result<(), ProcessError> {
    if total > limit {
        return Err(ProcessError::BatchLimit {
            what,
            total,
            setting,
            limit,
        });
    }
    Ok(())
}

/// Fails when one record's (or one timer call's) outputs are too many, one
/// of them too large, or all of them together too large.
fn check_record(
    count: usize,
    largest: usize,
    bytes: usize,
    limits: &Limits,
) -> Result<(), ProcessError> {
    if count > limits.max_record_outputs {
        return Err(ProcessError::TooManyOutputs {
            count,
            limit: limits.max_record_outputs,
        });
    }
    if largest > limits.max_record_bytes {
        return Err(ProcessError::TooLarge {
            what: "an output",
            bytes: largest,
            limit: limits.max_record_bytes,
        });
    }
    if bytes > limits.max_record_output_bytes {
        return Err(ProcessError::OutputsTooLarge {
            bytes,
            limit: limits.max_record_output_bytes,
        });
    }
    Ok(())
}

/// A one-line description of a guest failure, with the last words the
/// guest wrote to stderr (a panic message, for example).
fn describe(e: &wasmtime::Error, trap: Option<&wasmtime::Trap>, data: &StoreData) -> String {
    let what = match trap {
        Some(t) => t.to_string(),
        None => e
            .chain()
            .last()
            .map_or_else(|| e.to_string(), |c| c.to_string()),
    };
    match data.stderr.message() {
        Some(said) => format!("{what}; the processor wrote: {said}"),
        None => what,
    }
}

/// What became of each record of a batch.
pub struct Outcome<'a> {
    records: Batch<'a>,
    body: Body<'a>,
    changes: &'a ChangeSet,
    outputs: &'a [String],
    calls: usize,
}

enum Body<'a> {
    Empty,
    Whole(Results<'a>),
    Singles(Vec<SingleRef<'a>>),
}

enum SingleRef<'a> {
    Ok(Results<'a>),
    Failed(&'a ProcessError),
}

impl<'a> Outcome<'a> {
    /// Every input record with what became of it, in input order.
    pub fn iter(&self) -> impl Iterator<Item = (RecordRef<'a>, RecordOutcome<'_>)> + '_ {
        let rest = match &self.body {
            Body::Empty => Rest::Empty,
            Body::Whole(r) => Rest::Whole(r.iter()),
            Body::Singles(s) => Rest::Singles(s.iter()),
        };
        OutcomeIter {
            records: self.records.records(),
            rest,
        }
    }

    /// Number of records in the batch.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the batch was empty.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The output names that the outputs' indices refer to (those the
    /// processor declared at `init`).
    pub fn output_names(&self) -> &'a [String] {
        self.outputs
    }

    /// The state changes committed by this batch (for a changelog).
    pub fn changes(&self) -> &ChangeSet {
        self.changes
    }

    /// How many calls into the guest the batch took (1 unless it was retried
    /// record by record).
    pub fn calls(&self) -> usize {
        self.calls
    }
}

enum Rest<'o, 'a> {
    Empty,
    Whole(ResultIter<'a>),
    Singles(std::slice::Iter<'o, SingleRef<'a>>),
}

struct OutcomeIter<'o, 'a> {
    records: RecordIter<'o, 'a>,
    rest: Rest<'o, 'a>,
}

impl<'o, 'a: 'o> Iterator for OutcomeIter<'o, 'a> {
    type Item = (RecordRef<'a>, RecordOutcome<'o>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let outcome = match &mut self.rest {
            Rest::Empty => return None,
            Rest::Whole(results) => from_result(results.next()?),
            Rest::Singles(singles) => match singles.next()? {
                SingleRef::Ok(r) => from_result(r.iter().next()?),
                SingleRef::Failed(e) => RecordOutcome::Failed(e),
            },
        };
        let record = self
            .records
            .next()?
            .expect("BatchWriter encodes valid records");
        Some((record, outcome))
    }
}

#[inline]
fn from_result(r: RecordResult<'_>) -> RecordOutcome<'_> {
    match r {
        RecordResult::Ok(o) => RecordOutcome::Ok(o),
        RecordResult::Rejected(reason) => RecordOutcome::Rejected(reason),
    }
}

/// What became of one record.
#[derive(Debug, Clone, Copy)]
pub enum RecordOutcome<'a> {
    /// Accepted, with these outputs (fields marked keep refer to the input).
    Ok(Outputs<'a>),
    /// The processor rejected it, with this reason.
    Rejected(&'a str),
    /// Processing it trapped or exceeded a limit, even on its own.
    Failed(&'a ProcessError),
}
