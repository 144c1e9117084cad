//! The counters a processor keeps through its `metrics` import: added to
//! during a call, kept only if the call returns, read by the metrics
//! endpoint and by `partita test`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// A counter's name and label value.
pub type CounterKey = (String, String);

/// The counters of one stage partition, shared by its instance (which adds
/// to them) and the metrics endpoint (which reads them). An instance that
/// is restarted or hot-swapped keeps adding to the same counters.
#[derive(Debug, Default)]
pub struct Counters {
    series: Mutex<BTreeMap<CounterKey, u64>>,
}

impl Counters {
    /// No counters yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<CounterKey, u64>> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every counter with its value, in name and label order.
    pub fn snapshot(&self) -> Vec<(CounterKey, u64)> {
        self.lock().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// The value of one counter (0 when it was never added to).
    pub fn get(&self, name: &str, label: &str) -> u64 {
        self.lock()
            .get(&(name.to_string(), label.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Whether `key` exists already.
    pub(crate) fn contains(&self, key: &CounterKey) -> bool {
        self.lock().contains_key(key)
    }

    /// How many counters exist.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Adds a call's counts, emptying `adds`.
    pub(crate) fn apply(&self, adds: &mut BTreeMap<CounterKey, u64>) {
        if adds.is_empty() {
            return;
        }
        let mut series = self.lock();
        for (key, delta) in std::mem::take(adds) {
            let v = series.entry(key).or_insert(0);
            *v = v.saturating_add(delta);
        }
    }
}
