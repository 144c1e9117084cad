//! A processor written in another language hot-swaps like a Rust one: the
//! Rust `count` is swapped for its Python port (`count_py`, built by
//! scripts/build-polyglot.sh) while records flow, and then for its
//! JavaScript port, and the totals carry on from the state the previous
//! version left.
//!
//! A JavaScript component (12 MB and more) also deploys through the
//! control topic, in chunks, and carries the totals on (docs/DEPLOY.md).
//!
//! The ports are built by their own toolchains (componentize-py,
//! componentize-js), through scripts/build-polyglot.sh, as the other
//! polyglot tests build them.

use crate::reload_common as common;
use common::OneStage;

use crate::polyglot::setup;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Flow, Host, replace, version_of};
use partita_tests::broker::Broker;
use partita_tests::kafka::Kafka;
use partita_tests::partita::run_to_end;
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
    assert_eq!(totals(&kafka, "out"), expected_totals(total, 40));
    assert_eq!(kafka.count("in.dlq").unwrap(), 0);
    println!(
        "swap times (change to live, longest pause) in ms: {:?}",
        host.swap_times("count")
    );
    host.process.stop(Duration::from_secs(30)).unwrap();
}

/// The (count, sum) per key of `total` records from [`Flow`] over `keys`
/// keys.
fn expected_totals(total: u64, keys: u64) -> BTreeMap<String, (u64, f64)> {
    let mut expected: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for i in 0..total {
        let e = expected.entry(format!("k{}", i % keys)).or_default();
        e.0 += 1;
        e.1 += i as f64;
    }
    expected
}

#[test]
fn a_javascript_count_deploys_through_chunks_keeping_totals() {
    let js = setup::component("count_js");
    let js_bytes = std::fs::read(&js).unwrap();
    assert!(js_bytes.len() > 1 << 20, "a component larger than a record");
    let rust = component("count");
    // The broker runs as long as `_broker` lives.
    let OneStage {
        broker: _broker,
        kafka,
        ws,
        file,
    } = OneStage::new(4, "fleet", "count", &rust, "follow = \"deploy\"");
    let mut host = Host::start("host", &ws, &file);
    let total = 6_000;
    let flow = Flow::start(&kafka, "in", total, 40, Duration::from_millis(200));
    flow.wait_produced(2_000);
    let args = [
        "deploy",
        file.to_str().unwrap(),
        "--stage",
        "count",
        "--processor",
        js.to_str().unwrap(),
        "--wait",
        "300",
    ];
    let out = run_to_end(&args, Duration::from_secs(400)).unwrap();
    let version = version_of(&js_bytes);
    assert!(
        out.status.success(),
        "{}\nhost log:\n{}",
        out.output,
        host.process.log_tail(40)
    );
    let chunks = js_bytes.len().div_ceil(512 * 1024);
    assert!(
        out.output
            .contains(&format!("({} bytes in {chunks} chunks)", js_bytes.len())),
        "{}",
        out.output
    );
    assert!(
        out.output.contains(&format!("host: runs {version}")),
        "{}",
        out.output
    );
    assert_eq!(flow.join(), total);
    wait_caught_up(
        &kafka,
        &[("fleet.count", "in")],
        Duration::from_secs(300),
        || host.process.assert_running(),
    )
    .unwrap_or_else(|e| panic!("{e:#}\nlog:\n{}", host.process.log_tail(40)));
    assert_eq!(totals(&kafka, "out"), expected_totals(total, 40));
    let info = [("stage", "count"), ("version", version.as_str())];
    assert_eq!(host.metric("partita_processor_info", &info), 1.0);
    host.process.stop(Duration::from_secs(30)).unwrap();
}
