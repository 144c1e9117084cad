//! Poison records land in the dead-letter topic with the documented headers
//! (docs/PIPELINE.md) while every other record flows on, in order, against
//! a real broker and the `partita` binary.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use partita_tests::broker::Broker;
use partita_tests::kafka::{Position, Record};
use partita_tests::partita::Partita;
use partita_tests::pipeline::{Stage, Workspace, account, pipeline_toml, wait_caught_up};
use partita_tests::wasm::component;

const RECORDS: u64 = 2_000;

/// What the `misbehave` test guest does with record `i`'s value.
fn value_of(i: u64) -> &'static str {
    match i {
        _ if i % 97 == 13 => "reject",
        _ if i % 331 == 7 => "panic",
        700 | 1_500 => "loop",
        300 | 1_200 => "flood",
        _ => "ok",
    }
}

/// The error kind and a fragment of the error text expected in the headers.
fn expected_error(value: &str) -> (&'static str, &'static str) {
    match value {
        "reject" => ("rejected", "rejected on request"),
        "panic" => ("trap", "trapped"),
        "loop" => ("deadline", "CPU deadline"),
        "flood" => ("outputs", "more than max_record_outputs (10000)"),
        other => panic!("{other} is not poison"),
    }
}

fn id_of_key(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key)
        .ok()?
        .strip_prefix('k')?
        .parse()
        .ok()
}

#[test]
fn poison_records_go_to_the_dlq_with_headers_while_the_rest_flows() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("in", 4).unwrap();
    kafka.create_topic("out", 4).unwrap();
    kafka.create_topic("in.dlq", 1).unwrap();

    let records: Vec<Record> = (0..RECORDS)
        .map(|i| {
            Record::new(&format!("k{i}"), value_of(i)).header("trace", format!("t{i}").as_bytes())
        })
        .collect();
    let positions = kafka.produce("in", records).unwrap();
    let poison: HashSet<u64> = (0..RECORDS).filter(|&i| value_of(i) != "ok").collect();
    assert!(
        poison.len() > 20,
        "too few poison records: {}",
        poison.len()
    );
    let clean: HashSet<u64> = (0..RECORDS).filter(|i| !poison.contains(i)).collect();

    let processor = component("misbehave");
    let ws = Workspace::new().unwrap();
    let text = pipeline_toml(
        &broker.bootstrap(),
        "g",
        "commit_interval_ms = 200",
        &[Stage {
            name: "m",
            processor: &processor,
            input: "in",
            outputs: &[("out", "out")],
            extra: "deadline_ms = 200\nbatch_size = 100",
        }],
    );
    let file = ws.write("pipeline.toml", &text).unwrap();
    let mut host = Partita::run("host", &file, &ws.log("host")).unwrap();

    wait_caught_up(&kafka, &[("g.m", "in")], Duration::from_secs(180), || {
        host.assert_running()
    })
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(40)));

    // Every clean record is in the output once, in per-partition order.
    let by_id: HashMap<u64, Position> = (0..RECORDS).zip(positions.iter().copied()).collect();
    let inputs = partita_tests::pipeline::Inputs::from_positions(&by_id);
    let outputs = kafka.consume_all("out").unwrap();
    let report = account(&inputs, &clean, &outputs, |c| {
        c.key.as_deref().and_then(id_of_key)
    });
    assert!(report.complete(), "{report}");
    assert_eq!(report.duplicate_count(), 0, "{report}");
    for o in &outputs {
        let i = id_of_key(o.key.as_deref().unwrap()).unwrap();
        assert_eq!(o.value_str(), "ok");
        assert_eq!(o.header_str("trace"), Some(format!("t{i}")), "headers kept");
    }

    // Every poison record is in the dead-letter topic once, as it was, with
    // the headers saying why and where from.
    let hash = blake3::hash(&std::fs::read(&processor).unwrap())
        .to_hex()
        .to_string();
    let dead = kafka.consume_all("in.dlq").unwrap();
    let mut seen = HashSet::new();
    for d in &dead {
        let i = id_of_key(d.key.as_deref().unwrap_or_default())
            .unwrap_or_else(|| panic!("dead letter without an input key: {d:?}"));
        assert!(poison.contains(&i), "clean record {i} in the DLQ: {d:?}");
        assert!(seen.insert(i), "record {i} twice in the DLQ");
        let value = value_of(i);
        assert_eq!(d.value_str(), value);
        assert_eq!(
            d.header_str("trace"),
            Some(format!("t{i}")),
            "original headers kept"
        );
        let (kind, text) = expected_error(value);
        assert_eq!(
            d.header_str("partita.error.kind").as_deref(),
            Some(kind),
            "{d:?}"
        );
        let error = d.header_str("partita.error").unwrap_or_default();
        assert!(
            error.contains(text),
            "record {i}: error {error:?} lacks {text:?}"
        );
        assert_eq!(d.header_str("partita.stage").as_deref(), Some("m"));
        let version = d
            .header_str("partita.processor.version")
            .unwrap_or_default();
        assert!(
            version.len() >= 12 && hash.starts_with(&version),
            "version {version:?} of {hash}"
        );
        assert_eq!(d.header_str("partita.source.topic").as_deref(), Some("in"));
        let at = by_id[&i];
        assert_eq!(
            d.header_str("partita.source.partition"),
            Some(at.partition.to_string())
        );
        assert_eq!(
            d.header_str("partita.source.offset"),
            Some(at.offset.to_string())
        );
    }
    assert_eq!(seen, poison, "poison records missing from the DLQ");

    let status = host.stop(Duration::from_secs(30)).unwrap();
    assert!(
        status.success(),
        "clean stop exited with {status}; log:\n{}",
        host.log_tail(40)
    );
}
