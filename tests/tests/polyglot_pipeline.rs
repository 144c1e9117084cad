//! JavaScript and Python processors in a pipeline on a real broker, next to
//! their Rust twins: three `parse` stages (csv-to-json in Rust, JavaScript
//! and Python) read the same legacy orders, each feeding its own `count`
//! stage (count in the same language). Each language's topics must end up
//! holding the same records, partition by partition and in the same order,
//! and its dead-letter topics the same rejected records with the same
//! reasons.

use crate::polyglot::setup;

use std::collections::BTreeMap;
use std::time::Duration;

use partita_tests::broker::Broker;
use partita_tests::kafka::{Consumed, Kafka};
use partita_tests::orders::{COLUMNS, Order, Orders};
use partita_tests::partita::Partita;
use partita_tests::pipeline::{Stage, Workspace, pipeline_toml, wait_caught_up};

const ORDERS: u64 = 3_000;
const LANGUAGES: [(&str, &str); 3] = [("rust", ""), ("js", "_js"), ("py", "_py")];

/// Each partition's records as (key, value), in offset order.
fn by_partition(kafka: &Kafka, topic: &str) -> BTreeMap<i32, Vec<(String, String)>> {
    let mut records: Vec<Consumed> = kafka
        .consume_all(topic)
        .unwrap_or_else(|e| panic!("read {topic}: {e:#}"));
    records.sort_by_key(|r| (r.partition, r.offset));
    let mut out: BTreeMap<i32, Vec<(String, String)>> = BTreeMap::new();
    for r in records {
        out.entry(r.partition)
            .or_default()
            .push((r.key_str(), r.value_str()));
    }
    out
}

/// A dead-letter topic's records as (value, reason), sorted: records of
/// several input partitions interleave there in no fixed order.
fn dead_letters(kafka: &Kafka, topic: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = kafka
        .consume_all(topic)
        .unwrap_or_else(|e| panic!("read {topic}: {e:#}"))
        .iter()
        .map(|r| {
            (
                r.value_str(),
                r.header_str("partita.error").unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn ports_in_a_pipeline_produce_what_their_rust_twins_produce() {
    let parse: Vec<_> = LANGUAGES
        .iter()
        .map(|(_, s)| setup::component(&format!("csv_to_json{s}")))
        .collect();
    let count: Vec<_> = LANGUAGES
        .iter()
        .map(|(_, s)| setup::component(&format!("count{s}")))
        .collect();

    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("legacy.orders", 4).unwrap();
    for (lang, _) in LANGUAGES {
        for (topic, partitions) in [
            (format!("json.{lang}"), 4),
            (format!("counts.{lang}"), 4),
            (format!("dlq.parse.{lang}"), 1),
            (format!("dlq.count.{lang}"), 1),
        ] {
            kafka.create_topic(&topic, partitions).unwrap();
        }
    }
    let settings = Orders {
        customers: 40,
        malformed_every: Some(37),
        ..Orders::default()
    };
    let orders: Vec<Order> = settings.generate(ORDERS).collect();
    kafka
        .produce("legacy.orders", orders.iter().map(Order::record))
        .unwrap();

    let parse_config = format!("config = {{ columns = {COLUMNS:?}, numeric = \"amount\" }}");
    let names: Vec<[String; 6]> = LANGUAGES
        .iter()
        .map(|(lang, _)| {
            [
                format!("parse-{lang}"),
                format!("json.{lang}"),
                format!("{parse_config}\ndlq = \"dlq.parse.{lang}\""),
                format!("count-{lang}"),
                format!("counts.{lang}"),
                format!("config = {{ field = \"amount\" }}\ndlq = \"dlq.count.{lang}\""),
            ]
        })
        .collect();
    let mut stages = Vec::new();
    for (i, n) in names.iter().enumerate() {
        stages.push(Stage {
            name: &n[0],
            processor: &parse[i],
            input: "legacy.orders",
            outputs: &[],
            extra: &n[2],
        });
        stages.push(Stage {
            name: &n[3],
            processor: &count[i],
            input: &n[1],
            outputs: &[],
            extra: &n[5],
        });
    }
    let outputs: Vec<[(&str, &str); 1]> = names
        .iter()
        .flat_map(|n| [[("default", n[1].as_str())], [("default", n[4].as_str())]])
        .collect();
    for (stage, out) in stages.iter_mut().zip(&outputs) {
        stage.outputs = out;
    }
    let ws = Workspace::new().unwrap();
    let file = ws
        .write(
            "pipeline.toml",
            &pipeline_toml(
                &broker.bootstrap(),
                "poly",
                "commit_interval_ms = 200",
                &stages,
            ),
        )
        .unwrap();
    let mut host = Partita::run("host", &file, &ws.log("host")).unwrap();
    let groups: Vec<(String, String)> = names
        .iter()
        .flat_map(|n| {
            [
                (format!("poly.{}", n[0]), "legacy.orders".to_string()),
                (format!("poly.{}", n[3]), n[1].clone()),
            ]
        })
        .collect();
    let waits: Vec<(&str, &str)> = groups
        .iter()
        .map(|(g, t)| (g.as_str(), t.as_str()))
        .collect();
    wait_caught_up(&kafka, &waits, Duration::from_secs(600), || {
        host.assert_running()
    })
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(40)));

    let json = by_partition(&kafka, "json.rust");
    let counts = by_partition(&kafka, "counts.rust");
    let parse_dead = dead_letters(&kafka, "dlq.parse.rust");
    let well_formed = orders.iter().filter(|o| !o.malformed).count();
    assert_eq!(
        json.values().map(Vec::len).sum::<usize>(),
        well_formed,
        "every well-formed line parsed once"
    );
    assert_eq!(
        counts.values().map(Vec::len).sum::<usize>(),
        well_formed,
        "every parsed order counted once"
    );
    assert_eq!(
        parse_dead.len(),
        ORDERS as usize - well_formed,
        "every malformed line rejected once"
    );
    assert!(
        parse_dead
            .iter()
            .all(|(_, reason)| reason.starts_with("expected 4 fields")),
        "{parse_dead:?}"
    );
    for (lang, _) in &LANGUAGES[1..] {
        assert_eq!(
            by_partition(&kafka, &format!("json.{lang}")),
            json,
            "parse-{lang}: outputs differ from Rust's"
        );
        assert_eq!(
            by_partition(&kafka, &format!("counts.{lang}")),
            counts,
            "count-{lang}: totals differ from Rust's"
        );
        assert_eq!(
            dead_letters(&kafka, &format!("dlq.parse.{lang}")),
            parse_dead,
            "parse-{lang}: dead letters differ"
        );
        assert_eq!(
            dead_letters(&kafka, &format!("dlq.count.{lang}")),
            dead_letters(&kafka, "dlq.count.rust"),
            "count-{lang}: dead letters differ"
        );
    }
    host.stop(Duration::from_secs(30)).unwrap();
}
