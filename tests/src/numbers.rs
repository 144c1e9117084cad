//! The input and the checks of the exactly-once tests: numbers keyed over
//! ten keys, summed by the `count` processor.

use std::collections::BTreeMap;

use crate::kafka::{Consumed, Record};

/// Keys the numbers are spread over.
pub const KEYS: usize = 10;

/// Records `from..to`: record `i` has key `k{i % 10}` and value the number
/// `i % 7`.
pub fn numbers(from: usize, to: usize) -> Vec<Record> {
    (from..to)
        .map(|i| Record::new(&format!("k{}", i % KEYS), &(i % 7).to_string()))
        .collect()
}

/// Per key, the true (count, sum) of records `0..n`.
pub fn truth(n: usize) -> BTreeMap<String, (u64, u64)> {
    let mut t = BTreeMap::new();
    for i in 0..n {
        let e = t.entry(format!("k{}", i % KEYS)).or_insert((0, 0));
        e.0 += 1;
        e.1 += (i % 7) as u64;
    }
    t
}

/// Per key, the (count, sum) of each `count` output, in output order.
pub fn outputs_by_key(outputs: &[Consumed]) -> BTreeMap<String, Vec<(u64, u64)>> {
    let mut by_key: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for o in outputs {
        let v: serde_json::Value =
            serde_json::from_slice(o.value.as_deref().unwrap_or_default()).unwrap_or_default();
        let count = v["count"].as_u64().unwrap_or_default();
        let sum = v["sum"].as_u64().unwrap_or_default();
        by_key.entry(o.key_str()).or_default().push((count, sum));
    }
    by_key
}
