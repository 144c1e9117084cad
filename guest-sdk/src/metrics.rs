//! Counters the host exports with its own metrics, as
//! `partita_processor_counter_total{stage, partition, name, label}`.
//!
//! [`add`] counts in the instance and the counts go to the host once at the
//! end of each `process` or `on_timer` call (one host call per counter
//! touched), so counting per record is cheap. Like state writes, the counts
//! of a call that traps are lost with it, so a batch that the host retries
//! record by record counts each record once.
//!
//! ```
//! use partita_sdk::metrics;
//!
//! metrics::add("records", "accepted", 1).unwrap();
//! assert!(metrics::add("Bad-Name", "", 1).is_err());
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;

thread_local! {
    static COUNTS: RefCell<BTreeMap<(String, String), u64>> = const { RefCell::new(BTreeMap::new()) };
}

/// Adds `delta` to the counter `name` with label value `label` (empty for
/// none). The name is 1 to 64 characters of `a-z`, `0-9` and `_`, starting
/// with a letter; the label at most 256 bytes; an error says which is
/// wrong. A partition keeps at most 1,000 counters: adds to more are
/// dropped by the host and logged as an error.
pub fn add(name: &str, label: &str, delta: u64) -> Result<(), String> {
    partita_wire::check_counter(name, label)?;
    COUNTS.with_borrow_mut(
        |counts| match counts.get_mut(&(name.to_string(), label.to_string())) {
            Some(v) => *v = v.saturating_add(delta),
            None => {
                counts.insert((name.to_string(), label.to_string()), delta);
            }
        },
    );
    Ok(())
}

/// Ends a `process` or `on-timer` call: hands the call's counts to the
/// host.
pub(crate) fn end_call() {
    let counts = COUNTS.with_borrow_mut(std::mem::take);
    for ((name, label), delta) in counts {
        if let Err(e) = crate::host::metrics_add(&name, &label, delta) {
            crate::log::error(&format!("metrics: {e}"));
        }
    }
}

/// Forgets counts not yet handed over, as a fresh instance would (native
/// tests).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn reset() {
    COUNTS.with_borrow_mut(BTreeMap::clear);
}

#[cfg(test)]
mod tests {
    use crate::testing::{Harness, Level, TestRecord};
    use crate::{Config, Emitter, Processor, Record, Reject, metrics};

    /// Counts records per value, one counter per distinct value.
    struct PerValue;

    impl Processor for PerValue {
        fn init(_: &Config) -> Result<Self, String> {
            Ok(PerValue)
        }

        fn process(&mut self, record: &Record<'_>, _: &mut Emitter<'_>) -> Result<(), Reject> {
            metrics::add("seen", record.value_str()?, 1).map_err(Reject::new)
        }
    }

    #[test]
    fn counts_reach_the_host_at_the_end_of_each_call() {
        let mut h = Harness::<PerValue>::new(&[]).unwrap();
        h.run(["a", "b", "a"].map(|v| TestRecord::new().value(v)));
        assert_eq!((h.counter("seen", "a"), h.counter("seen", "b")), (2, 1));
        h.run_one(TestRecord::new().value("a"));
        assert_eq!(h.counter("seen", "a"), 3);
        assert_eq!(h.counter("seen", "c"), 0);
    }

    #[test]
    fn counters_beyond_the_limit_are_dropped_and_logged() {
        let mut h = Harness::<PerValue>::new(&[]).unwrap();
        let values: Vec<String> = (0..=partita_wire::MAX_COUNTERS)
            .map(|i| format!("{i:04}"))
            .collect();
        h.run(values.iter().map(|v| TestRecord::new().value(v)));
        assert_eq!(h.counter("seen", "0999"), 1);
        assert_eq!(h.counter("seen", "1000"), 0);
        let errors: Vec<_> = h
            .logs()
            .into_iter()
            .filter(|(l, _)| *l == Level::Error)
            .collect();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].1.contains("at most 1000 counters"), "{errors:?}");
    }
}
