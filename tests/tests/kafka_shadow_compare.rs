//! The `shadow-compare` processor under `partita run` against the real
//! broker: a stage over the legacy output and the new output (two
//! co-partitioned topics keyed by order id) that writes every record that is
//! not a match to a diffs topic and counts each class and differing field
//! in the host's metrics; with both inputs idle, everything still waiting is
//! declared.

use std::time::Duration;

use partita_tests::broker::{Broker, free_port};
use partita_tests::kafka::Record;
use partita_tests::metrics::{scrape, sum};
use partita_tests::partita::Partita;
use partita_tests::pipeline::{Workspace, toml_path, toml_string};
use partita_tests::wasm::component;
use serde_json::Value;

const T0: i64 = 1_700_000_000_000;

fn order(id: u64, amount: f64, ts: i64) -> Record {
    Record {
        timestamp: Some(ts),
        ..Record::new(
            &id.to_string(),
            &format!(r#"{{"id": {id}, "amount": {amount}, "processed_at": {ts}}}"#),
        )
    }
}

#[test]
fn a_comparison_stage_writes_every_difference_and_counts_every_class() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    for (topic, partitions) in [
        ("legacy.out", 2),
        ("new.out", 2),
        ("diffs", 1),
        ("compare.dlq", 1),
    ] {
        kafka.create_topic(topic, partitions).unwrap();
    }
    // 100 orders a side, the new side 300 ms later, except: 10 differs in
    // amount, 20 is only on the left, 30 only on the right, 40 twice on the
    // right.
    let mut left = Vec::new();
    let mut right = Vec::new();
    for id in 0..100u64 {
        let ts = T0 + id as i64 * 50;
        if id != 30 {
            left.push(order(id, id as f64, ts));
        }
        if id != 20 {
            let amount = if id == 10 { 10.5 } else { id as f64 };
            right.push(order(id, amount, ts + 300));
        }
        if id == 40 {
            right.push(order(id, id as f64, ts + 400));
        }
    }
    kafka.produce("legacy.out", left).unwrap();
    kafka.produce("new.out", right).unwrap();

    let ws = Workspace::new().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port().unwrap());
    let text = format!(
        r#"[kafka]
bootstrap = {}
group = "g"
commit_interval_ms = 100

[[stage]]
name = "compare"
processor = {}
input = ["legacy.out", "new.out"]
outputs = {{ diffs = "diffs" }}
dlq = "compare.dlq"
timer_interval_ms = 100
config = {{ left = "legacy.out", right = "new.out", key = "/id", window_ms = 2000, grace_ms = 1000, idle_ms = 3000, ignore = "/processed_at" }}
"#,
        toml_string(&broker.bootstrap()),
        toml_path(&component("shadow-compare")),
    );
    let file = ws.write("pipeline.toml", &text).unwrap();
    let mut host = Partita::start(
        "host",
        &["run", file.to_str().unwrap(), "--metrics-addr", &metrics],
        &ws.log("host"),
    )
    .unwrap();

    let mut diffs = Vec::new();
    kafka
        .wait_until("four differences", || {
            host.assert_running()?;
            diffs = kafka.consume_all("diffs")?;
            Ok(diffs.len() >= 4)
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{diffs:?}\nhost log:\n{}", host.log_tail(40)));
    std::thread::sleep(Duration::from_secs(2));
    let diffs = kafka.consume_all("diffs").unwrap();
    let mut found: Vec<(String, String)> = diffs
        .iter()
        .map(|d| {
            let v: Value = serde_json::from_str(&d.value_str()).unwrap();
            assert_eq!(
                v["key"].as_str().unwrap(),
                d.key_str(),
                "keyed by the order id"
            );
            (d.key_str(), v["class"].as_str().unwrap().to_string())
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("10".to_string(), "mismatch".to_string()),
            ("20".to_string(), "only_left".to_string()),
            ("30".to_string(), "only_right".to_string()),
            ("40".to_string(), "duplicate".to_string()),
        ]
    );
    let mismatch = diffs.iter().find(|d| d.key_str() == "10").unwrap();
    let v: Value = serde_json::from_str(&mismatch.value_str()).unwrap();
    assert_eq!(v["diff"][0]["field"], "/amount");
    assert_eq!(v["diff"][0]["left"], 10.0);
    assert_eq!(v["diff"][0]["right"], 10.5);

    let samples = scrape(&metrics).unwrap();
    let counter = |name: &str, label: &str| {
        sum(
            &samples,
            "partita_processor_counter_total",
            &[("stage", "compare"), ("name", name), ("label", label)],
        )
    };
    let classes = [
        "match",
        "mismatch",
        "only_left",
        "only_right",
        "duplicate",
        "late",
    ]
    .map(|c| counter("compare_records", c));
    // 99 left and 100 right records: 97 pairs match, one differs.
    assert_eq!(classes, [194.0, 2.0, 1.0, 1.0, 1.0, 0.0]);
    assert_eq!(counter("compare_field_mismatches", "/amount"), 1.0);
    host.stop(Duration::from_secs(30)).unwrap();
}
