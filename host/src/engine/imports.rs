//! The data of one instance's store and the host functions the processor
//! imports: `state` (over the call's pending writes, then the store),
//! `tables`, `log` and `metrics` (over the call's pending counts), plus an
//! empty WASI context for language runtimes.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::Limits;
use super::counters::{CounterKey, Counters};
use super::limits::Limiter;
use super::stderr::StderrTail;
use crate::bindings::Stage;
use crate::bindings::partita::processor::{log, metrics, state, tables, types};
use crate::state::key::to_key;
use crate::state::{ChangeSet, Overlay, StateStore};
use crate::tables::Tables;

/// A state store failure raised as a trap out of a state import, so that the
/// call stops and the failure is reported as such.
#[derive(Debug)]
pub(crate) struct StateFailure(pub(crate) String);

impl std::fmt::Display for StateFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateFailure {}

/// A state write larger than the stage's `max_record_bytes`, raised as a
/// trap out of a state import: it could never be written to the changelog.
#[derive(Debug, thiserror::Error)]
#[error("a state write of {bytes} bytes is larger than max_record_bytes ({limit})")]
pub(crate) struct WriteTooLarge {
    /// Key and value.
    pub(crate) bytes: usize,
    /// The limit.
    pub(crate) limit: usize,
}

/// State writes that would take their batch past `max_batch_state_bytes`,
/// raised as a trap out of a state import.
#[derive(Debug, thiserror::Error)]
#[error(
    "the batch's state writes would reach {total} bytes, more than max_batch_state_bytes ({limit})"
)]
pub(crate) struct BatchStateFull {
    /// The batch's bytes of state writes with this call's.
    pub(crate) total: usize,
    /// The limit.
    pub(crate) limit: usize,
}

/// Who an instance is, for its log lines.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) stage: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) version: Arc<str>,
}

/// Everything a store holds for one instance.
pub(crate) struct StoreData {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    /// The partition's state, owned while the instance runs.
    pub(crate) state: Box<dyn StateStore>,
    /// Writes of the current call, applied to `state` only if it succeeds.
    pub(crate) pending: ChangeSet,
    /// The last of `pending`'s writes per key, for reads during the call:
    /// built by the call's first `get` or `scan`, then kept up to date. A
    /// processor that only writes (as the SDKs do, in one `write-batch` at
    /// the end of a call) never needs it.
    pending_index: Option<Overlay>,
    /// Whether `pending` may hold a key twice: set by a `put` or `delete`,
    /// or by a second `write-batch`, in the call. A single `write-batch`
    /// (what the SDKs send) names each key once.
    pending_repeats: bool,
    /// Bytes of keys and values written in the current call: held by the
    /// host on the guest's behalf, so capped by its memory cap.
    pub(crate) pending_bytes: usize,
    /// The largest state write (key and value) allowed.
    max_record_bytes: usize,
    /// Bytes of state writes the batch made in the calls before this one
    /// (a batch run record by record makes one call per record).
    pub(crate) batch_state_bytes: usize,
    /// The most bytes of state writes one batch may make.
    max_batch_state_bytes: usize,
    tables: Arc<dyn Tables>,
    origin: Origin,
    /// What the guest wrote to stderr during the current call.
    pub(crate) stderr: StderrTail,
    /// The partition's counters.
    pub(crate) counters: Arc<Counters>,
    /// Counts of the current call, added to `counters` only if it succeeds.
    pub(crate) counts: BTreeMap<CounterKey, u64>,
}

impl StoreData {
    /// Fresh store data around `state`; WASI grants nothing but a stderr
    /// whose tail is kept for failure reasons.
    pub(crate) fn new(
        state: Box<dyn StateStore>,
        tables: Arc<dyn Tables>,
        limits: Limits,
        origin: Origin,
        counters: Arc<Counters>,
    ) -> Self {
        let stderr = StderrTail::default();
        StoreData {
            wasi: WasiCtx::builder().stderr(stderr.clone()).build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(limits.memory_bytes),
            state,
            pending: ChangeSet::new(),
            pending_index: None,
            pending_repeats: false,
            pending_bytes: 0,
            max_record_bytes: limits.max_record_bytes,
            batch_state_bytes: 0,
            max_batch_state_bytes: limits.max_batch_state_bytes,
            tables,
            origin,
            stderr,
            counters,
            counts: BTreeMap::new(),
        }
    }

    /// Gives back the state and tables (when the store is replaced).
    pub(crate) fn into_parts(self) -> (Box<dyn StateStore>, Arc<dyn Tables>) {
        (self.state, self.tables)
    }

    /// The tables this instance reads.
    pub(crate) fn tables(&self) -> Arc<dyn Tables> {
        self.tables.clone()
    }

    /// Forgets the current call's writes.
    pub(crate) fn clear_pending(&mut self) {
        self.pending.clear();
        self.pending_index = None;
        self.pending_repeats = false;
        self.pending_bytes = 0;
    }

    /// Keeps only the last write per key of the call (then in key order)
    /// when a key may have been written twice, so that each key costs one
    /// changelog record.
    pub(crate) fn keep_last_writes(&mut self) {
        if self.pending_repeats {
            let index = match self.pending_index.take() {
                Some(index) => index,
                None => last_writes(&self.pending),
            };
            self.pending.clear();
            for (k, v) in &index {
                self.pending.push(k, v.as_deref());
            }
            self.pending_repeats = false;
        }
    }

    /// Adds a write to the current call's.
    fn write(&mut self, key: &[u8], value: Option<&[u8]>) {
        self.pending.push(key, value);
        if let Some(index) = &mut self.pending_index {
            index.insert(to_key(key), value.map(<[u8]>::to_vec));
        }
    }

    /// The last write per key of the current call, built on first use.
    fn pending_index(&mut self) -> &Overlay {
        let pending = &self.pending;
        self.pending_index
            .get_or_insert_with(|| last_writes(pending))
    }

    fn failure(e: anyhow::Error) -> wasmtime::Error {
        wasmtime::Error::new(StateFailure(format!("{e:#}")))
    }

    /// Refuses a state write of `bytes` (key and value) past
    /// `max_record_bytes`.
    fn check_size(&self, bytes: usize) -> wasmtime::Result<()> {
        if bytes > self.max_record_bytes {
            return Err(wasmtime::Error::new(WriteTooLarge {
                bytes,
                limit: self.max_record_bytes,
            }));
        }
        Ok(())
    }

    /// Counts `bytes` more of state writes in this call; past the memory
    /// cap the call stops, reported as the memory cap, and past the batch's
    /// `max_batch_state_bytes` it stops with [`BatchStateFull`].
    fn charge(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.pending_bytes = self.pending_bytes.saturating_add(bytes);
        if self.pending_bytes > self.limiter.memory_cap() {
            self.limiter.refuse();
            return Err(wasmtime::Error::msg(format!(
                "the state writes of one call exceed the memory cap of {} bytes",
                self.limiter.memory_cap()
            )));
        }
        let total = self.batch_state_bytes.saturating_add(self.pending_bytes);
        if total > self.max_batch_state_bytes {
            return Err(wasmtime::Error::new(BatchStateFull {
                total,
                limit: self.max_batch_state_bytes,
            }));
        }
        Ok(())
    }
}

/// The last write per key of `writes`, in key order.
fn last_writes(writes: &ChangeSet) -> Overlay {
    let mut index = Overlay::new();
    for (k, v) in writes.iter() {
        index.insert(to_key(k), v.map(<[u8]>::to_vec));
    }
    index
}

/// The linker with every import a processor may use.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<StoreData>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Stage::add_to_linker::<_, HasSelf<_>>(&mut linker, |d| d)?;
    Ok(linker)
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StoreData {}

impl state::Host for StoreData {
    fn get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        if !self.pending.is_empty()
            && let Some(v) = self.pending_index().get(&to_key(&key))
        {
            return Ok(v.clone());
        }
        self.state.get(&key).map_err(Self::failure)
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        self.check_size(key.len() + value.len())?;
        self.charge(key.len() + value.len())?;
        self.pending_repeats = true;
        self.write(&key, Some(&value));
        Ok(())
    }

    fn delete(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
        self.charge(key.len())?;
        self.pending_repeats = true;
        self.write(&key, None);
        Ok(())
    }

    fn write_batch(&mut self, writes: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        self.charge(writes.len())?;
        let writes = match partita_wire::Writes::parse(&writes) {
            Ok(w) => w,
            Err(e) => return Ok(Err(format!("malformed writes buffer: {e}"))),
        };
        for w in writes.iter() {
            if let partita_wire::Write::Put(k, v) = w {
                self.check_size(k.len() + v.len())?;
            }
        }
        self.pending_repeats |= !self.pending.is_empty();
        for w in writes.iter() {
            match w {
                partita_wire::Write::Put(k, v) => self.write(k, Some(v)),
                partita_wire::Write::Delete(k) => self.write(k, None),
            }
        }
        Ok(Ok(()))
    }

    fn scan(
        &mut self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: u32,
    ) -> wasmtime::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let pending = &self.pending;
        let pending = self
            .pending_index
            .get_or_insert_with(|| last_writes(pending));
        crate::state::scan_merged(
            &mut *self.state,
            pending,
            &start,
            end.as_deref(),
            limit as usize,
        )
        .map_err(Self::failure)
    }
}

impl tables::Host for StoreData {
    fn lookup(&mut self, table: String, key: Vec<u8>) -> Option<Vec<u8>> {
        self.tables.lookup(&table, &key)
    }
}

impl metrics::Host for StoreData {
    fn add(&mut self, name: String, label: String, delta: u64) -> Result<(), String> {
        partita_wire::check_counter(&name, &label)?;
        let key = (name, label);
        if let Some(v) = self.counts.get_mut(&key) {
            *v = v.saturating_add(delta);
            return Ok(());
        }
        if !self.counters.contains(&key)
            && self.counters.len() + self.counts.len() >= partita_wire::MAX_COUNTERS
        {
            return Err(format!(
                "counter {} {:?}: a partition keeps at most {} counters",
                key.0,
                key.1,
                partita_wire::MAX_COUNTERS
            ));
        }
        self.counts.insert(key, delta);
        Ok(())
    }
}

impl log::Host for StoreData {
    fn log(&mut self, level: log::Level, message: String) {
        let Origin {
            stage,
            partition,
            version,
        } = &self.origin;
        let (stage, version) = (&**stage, &**version);
        match level {
            log::Level::Trace => tracing::trace!(stage, partition, version, "{message}"),
            log::Level::Debug => tracing::debug!(stage, partition, version, "{message}"),
            log::Level::Info => tracing::info!(stage, partition, version, "{message}"),
            log::Level::Warn => tracing::warn!(stage, partition, version, "{message}"),
            log::Level::Error => tracing::error!(stage, partition, version, "{message}"),
        }
    }
}
