//! The input, the pipeline and the checks of the exactly-once tests:
//! numbers keyed over ten keys, summed by the `count` processor.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::kafka::{Consumed, Kafka, Record};
use crate::mock::consume_committed;
use crate::pipeline::{Stage, Workspace, pipeline_toml};
use crate::wasm::component;

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

/// The pipeline file of the exactly-once tests: `count` from `numbers` to
/// `counts` (group `g`, stopping on an error), committing every 200 ms,
/// with a 6 s session; `kafka` and `consumer` are more lines for
/// `[kafka]` and `[kafka.consumer]`.
pub fn count_pipeline(ws: &Workspace, bootstrap: &str, kafka: &str, consumer: &str) -> PathBuf {
    count_pipeline_with(ws, bootstrap, kafka, consumer, "on_error = \"stop\"")
}

/// [`count_pipeline`] with `stage` as the stage's own settings instead of
/// `on_error = "stop"`.
pub fn count_pipeline_with(
    ws: &Workspace,
    bootstrap: &str,
    kafka: &str,
    consumer: &str,
    stage: &str,
) -> PathBuf {
    let processor = component("count");
    let kafka_extra = format!(
        "commit_interval_ms = 200\n{kafka}\n[kafka.consumer]\n\"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 1000\n{consumer}\n"
    );
    let text = pipeline_toml(
        bootstrap,
        "g",
        &kafka_extra,
        &[Stage {
            name: "count",
            processor: &processor,
            input: "numbers",
            outputs: &[("default", "counts")],
            extra: stage,
        }],
    );
    ws.write("pipeline.toml", &text)
        .unwrap_or_else(|e| panic!("cannot write the pipeline file: {e:#}"))
}

/// Checks `counts` read `read_committed`: exactly one output per input of
/// `0..n`, each key's running count going 1, 2, 3, ... and ending at the
/// true totals.
pub fn assert_exact(kafka: &Kafka, n: usize) {
    let outputs = consume_committed(kafka, "counts").unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(outputs.len(), n, "one committed output per input");
    let by_key = outputs_by_key(&outputs);
    for (key, (count, sum)) in truth(n) {
        let seq = &by_key[&key];
        let counts: Vec<u64> = seq.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            counts,
            (1..=count).collect::<Vec<u64>>(),
            "running counts of {key}"
        );
        assert_eq!(seq.last(), Some(&(count, sum)), "final totals of {key}");
    }
}
