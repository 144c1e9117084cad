//! A processor written in another language hot-swaps like a Rust one: the
//! Rust `count` is swapped for its Python port (`count_py`, built by
//! scripts/build-polyglot.sh) while records flow, and then for its
//! JavaScript port, and the totals carry on from the state the previous
//! version left.
//!
//! The ports are built by their own toolchains (componentize-py,
//! componentize-js), through scripts/build-polyglot.sh, as the other
//! polyglot tests build them.

use crate::reload_common as common;

use crate::polyglot::setup;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Flow, Host, replace, version_of};
use partita_tests::broker::Broker;
use partita_tests::kafka::Kafka;
use partita_tests::pipeline::{Stage, Workspace, pipeline_toml, wait_caught_up};
use partita_tests::wasm::component;

/// A language runtime takes seconds to compile when it is not cached yet.
const LIVE: Duration = Duration::from_secs(300);

/// The last (count, sum) per key of a `count` output topic.
fn totals(kafka: &Kafka, topic: &str) -> BTreeMap<String, (u64, f64)> {
    let mut last = BTreeMap::new();
    for r in kafka.consume_all(topic).unwrap() {
        let json: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let key = json["key"].as_str().unwrap().to_string();
        let count = json["count"].as_u64().unwrap();
        let slot = last.entry(key).or_insert((0, 0.0));
        assert!(count > slot.0, "count went from {} to {count}", slot.0);
        *slot = (count, json["sum"].as_f64().unwrap());
    }
    last
}

#[test]
fn rust_count_swaps_to_python_then_javascript_keeping_totals() {
    let ports: Vec<_> = ["count_py", "count_js"]
        .iter()
        .map(|n| setup::component(n))
        .collect();
    let rust = std::fs::read(component("count")).unwrap();
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("in", 4).unwrap();
    kafka.create_topic("out", 4).unwrap();
    kafka.create_topic("in.dlq", 1).unwrap();
    let ws = Workspace::new().unwrap();
    let processor = ws.path().join("count.wasm");
    std::fs::write(&processor, &rust).unwrap();
    let text = pipeline_toml(
        &broker.bootstrap(),
        "reload",
        "commit_interval_ms = 200",
        &[Stage {
            name: "count",
            processor: &processor,
            input: "in",
            outputs: &[("default", "out")],
            extra: "",
        }],
    );
    let file = ws.write("pipeline.toml", &text).unwrap();
    let mut host = Host::start("host", &ws, &file);
    let total = 12_000;
    let flow = Flow::start(&kafka, "in", total, 40, Duration::from_millis(200));
    for (i, port) in ports.iter().enumerate() {
        flow.wait_produced(3_000 * (i as u64 + 1));
        let bytes = std::fs::read(port).unwrap();
        replace(&processor, &bytes);
        host.wait_live("count", &version_of(&bytes), LIVE);
    }
    assert_eq!(flow.join(), total);
    wait_caught_up(
        &kafka,
        &[("reload.count", "in")],
        Duration::from_secs(300),
        || host.process.assert_running(),
    )
    .unwrap_or_else(|e| panic!("{e:#}\nlog:\n{}", host.process.log_tail(40)));
    let mut expected: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for i in 0..total {
        let e = expected.entry(format!("k{}", i % 40)).or_default();
        e.0 += 1;
        e.1 += i as f64;
    }
    assert_eq!(totals(&kafka, "out"), expected);
    assert_eq!(kafka.count("in.dlq").unwrap(), 0);
    println!(
        "swap times (change to live, longest pause) in ms: {:?}",
        host.swap_times("count")
    );
    host.process.stop(Duration::from_secs(30)).unwrap();
}
