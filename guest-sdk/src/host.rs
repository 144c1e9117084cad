//! The calls into the host, in one place.
//!
//! In a Wasm build these are the WIT imports of the `stage` world. In a
//! native build (unit tests of processors) they go to an in-memory stand-in
//! of the host, one per thread, that [`crate::testing`] sets up and
//! inspects.

use crate::log::Level;

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;
    use crate::wit::partita::processor::{log, metrics, state, tables, types};

    pub fn state_get(key: &[u8]) -> Option<Vec<u8>> {
        state::get(key)
    }

    pub fn state_write_batch(writes: &[u8]) -> Result<(), String> {
        state::write_batch(writes)
    }

    pub fn state_scan(start: &[u8], end: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        state::scan(start, end, limit)
    }

    pub fn table_lookup(table: &str, key: &[u8]) -> Option<Vec<u8>> {
        tables::lookup(table, key)
    }

    pub fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => types::Level::Trace,
            Level::Debug => types::Level::Debug,
            Level::Info => types::Level::Info,
            Level::Warn => types::Level::Warn,
            Level::Error => types::Level::Error,
        };
        log::log(level, message);
    }

    pub fn metrics_add(name: &str, label: &str, delta: u64) -> Result<(), String> {
        metrics::add(name, label, delta)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::{FAKE, Level};
    use partita_wire::{Write, Writes};

    pub fn state_get(key: &[u8]) -> Option<Vec<u8>> {
        FAKE.with_borrow_mut(|h| {
            h.calls.state_gets += 1;
            h.state.get(key).cloned()
        })
    }

    pub fn state_write_batch(writes: &[u8]) -> Result<(), String> {
        let writes = Writes::parse(writes).map_err(|e| e.to_string())?;
        FAKE.with_borrow_mut(|h| {
            h.calls.state_write_batches += 1;
            for w in writes.iter() {
                match w {
                    Write::Put(k, v) => h.state.insert(k.to_vec(), v.to_vec()),
                    Write::Delete(k) => h.state.remove(k),
                };
            }
        });
        Ok(())
    }

    pub fn state_scan(start: &[u8], end: Option<&[u8]>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        FAKE.with_borrow_mut(|h| {
            h.calls.state_scans += 1;
            if end.is_some_and(|e| e <= start) {
                return Vec::new();
            }
            h.state
                .range::<[u8], _>((Included(start), end.map_or(Unbounded, Excluded)))
                .take(limit as usize)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }

    pub fn table_lookup(table: &str, key: &[u8]) -> Option<Vec<u8>> {
        FAKE.with_borrow_mut(|h| {
            h.calls.table_lookups += 1;
            h.tables.get(table)?.get(key).cloned()
        })
    }

    pub fn log(level: Level, message: &str) {
        FAKE.with_borrow_mut(|h| h.logs.push((level, message.to_string())));
    }

    /// The host's checks, then the count.
    pub fn metrics_add(name: &str, label: &str, delta: u64) -> Result<(), String> {
        partita_wire::check_counter(name, label)?;
        FAKE.with_borrow_mut(|h| {
            let key = (name.to_string(), label.to_string());
            if !h.counters.contains_key(&key) && h.counters.len() >= partita_wire::MAX_COUNTERS {
                return Err(format!(
                    "counter {name} {label:?}: a partition keeps at most {} counters",
                    partita_wire::MAX_COUNTERS
                ));
            }
            let v = h.counters.entry(key).or_insert(0);
            *v = v.saturating_add(delta);
            Ok(())
        })
    }
}

pub(crate) use imp::*;

/// How many calls a processor made into the host, by kind (native builds).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCalls {
    /// `state.get` calls (cache misses).
    pub state_gets: usize,
    /// `state.write-batch` calls (at most one per `process` or `on-timer`).
    pub state_write_batches: usize,
    /// `state.scan` calls.
    pub state_scans: usize,
    /// `tables.lookup` calls.
    pub table_lookups: usize,
}

/// The in-memory stand-in of the host in native builds.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Default)]
pub(crate) struct FakeHost {
    pub state: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    pub tables: std::collections::HashMap<String, std::collections::HashMap<Vec<u8>, Vec<u8>>>,
    pub logs: Vec<(Level, String)>,
    pub counters: std::collections::BTreeMap<(String, String), u64>,
    pub calls: HostCalls,
}

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    pub(crate) static FAKE: std::cell::RefCell<FakeHost> = std::cell::RefCell::new(FakeHost::default());
}
