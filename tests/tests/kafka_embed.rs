//! `host/examples/embed.rs` against the real broker: a two-stage pipeline
//! built in code from component bytes processes every order, has its
//! parsing stage hot-swapped from code, stops at its deadline, and reports
//! its totals from code.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use partita_tests::broker::Broker;
use partita_tests::kafka::Record;
use partita_tests::partita::partita_binary;
use partita_tests::wasm::component;

/// The example's binary: next to the `partita` the tests run (cargo test
/// builds examples), else built now.
fn example() -> PathBuf {
    let bin = partita_binary().unwrap();
    let path = bin.parent().unwrap().join("examples/embed");
    if !path.is_file() {
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "-p", "partita", "--example", "embed"])
            .status()
            .unwrap();
        assert!(status.success(), "cannot build the embed example");
    }
    path
}

#[test]
fn the_embedding_example_runs_a_pipeline_built_in_code() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("embed.orders", 2).unwrap();
    let orders = (0..100).map(|id| {
        let customer = format!("c{}", id % 5);
        Record::new(&customer, &format!("{id},{customer},{}", id % 10))
    });
    kafka.produce("embed.orders", orders).unwrap();

    let components = component("count").parent().unwrap().to_path_buf();
    let out = Command::new(example())
        .args([
            broker.bootstrap().as_str(),
            components.to_str().unwrap(),
            "25",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("parse: 100 records in, 100 out"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("totals: 100 records in, 100 out"),
        "{stdout}\n{stderr}"
    );
    // Swapped from code: the new version is the stage's at the end.
    let fixed = std::fs::read(components.join("csv_to_json_round_to_cents.wasm")).unwrap();
    let version = &blake3::hash(&fixed).to_hex()[..12];
    assert!(
        stderr.contains(&format!("parse: swapped to version {version}")),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "parse: 100 records in, 100 out, version {version}"
        )),
        "{stdout}\n{stderr}"
    );

    // The last running total of each customer: 20 orders each.
    let mut last: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for r in kafka.consume_all("embed.totals").unwrap() {
        last.insert(r.key_str(), serde_json::from_str(&r.value_str()).unwrap());
    }
    assert_eq!(last.len(), 5, "{last:?}");
    for (customer, totals) in &last {
        assert_eq!(totals["count"], 20, "{customer}: {totals}");
    }
    let sum: f64 = last.values().map(|t| t["sum"].as_f64().unwrap()).sum();
    assert_eq!(sum, (0..100).map(|id| (id % 10) as f64).sum::<f64>());
}
