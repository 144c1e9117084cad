//! Reference tables follow their compacted topics while `partita run` runs,
//! against a real broker: an update or a tombstone is seen by the records
//! processed after it, values (and keys) in Kafka Connect's JSON envelope
//! are unwrapped, and a record that is not an envelope is skipped and
//! counted without stopping the host.
//!
//! Two stages run `enrich` on the same orders: `raw` with a table of plain
//! JSON values, `cj` with a table written as a JDBC source connector with
//! the JSON converter would write it.

use std::time::Duration;

use partita_tests::broker::{Broker, free_port};
use partita_tests::kafka::{Kafka, Record, wait_until};
use partita_tests::metrics::{scrape, sum};
use partita_tests::partita::Partita;
use partita_tests::pipeline::{Workspace, toml_path, wait_caught_up};
use partita_tests::wasm::component;

const WAIT: Duration = Duration::from_secs(60);

fn order(id: u64, customer: &str) -> Record {
    Record::new(
        customer,
        &format!(r#"{{"id":{id},"customer":"{customer}"}}"#),
    )
}

/// A Connect JSON envelope around a string key.
fn cj_key(id: &str) -> Vec<u8> {
    format!(r#"{{"schema":{{"type":"string","optional":false}},"payload":"{id}"}}"#).into_bytes()
}

/// A Connect JSON envelope around a customers row.
fn cj_value(name: &str) -> Vec<u8> {
    format!(
        r#"{{"schema":{{"type":"struct","fields":[{{"type":"string","optional":false,"field":"name"}}],"optional":false,"name":"customers"}},"payload":{{"name": "{name}"}}}}"#
    )
    .into_bytes()
}

fn record(key: Vec<u8>, value: Option<Vec<u8>>) -> Record {
    Record {
        key: Some(key),
        value,
        ..Record::default()
    }
}

/// Sets (or deletes, `None`) customer `id` in both tables.
fn set_customer(kafka: &Kafka, id: &str, name: Option<&str>) {
    let raw = name.map(|n| format!(r#"{{"name":"{n}"}}"#).into_bytes());
    kafka
        .produce("ref.raw", [record(id.as_bytes().to_vec(), raw)])
        .unwrap();
    kafka
        .produce("ref.cj", [record(cj_key(id), name.map(cj_value))])
        .unwrap();
}

/// The `customer_info.name` of each output of `topic`, by order id, and the
/// DLQ reasons of `dlq`, by order id.
fn names(kafka: &Kafka, topic: &str) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = kafka
        .consume_all(topic)
        .unwrap()
        .iter()
        .map(|c| {
            let v: serde_json::Value = serde_json::from_str(&c.value_str()).unwrap();
            (
                v["id"].as_u64().unwrap(),
                v["customer_info"]["name"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn reasons(kafka: &Kafka, topic: &str) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = kafka
        .consume_all(topic)
        .unwrap()
        .iter()
        .map(|c| {
            let v: serde_json::Value = serde_json::from_str(&c.value_str()).unwrap();
            (
                v["id"].as_u64().unwrap(),
                c.header_str("partita.error").unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn table_updates_and_tombstones_reach_the_next_records_in_both_formats() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    for t in ["orders", "out.raw", "out.cj", "dlq.raw", "dlq.cj"] {
        kafka.create_topic(t, 1).unwrap();
    }
    for t in ["ref.raw", "ref.cj"] {
        kafka
            .create_topic_with(t, 2, &[("cleanup.policy", "compact")])
            .unwrap();
    }
    set_customer(&kafka, "C1", Some("Ada"));

    let enrich = component("enrich");
    let ws = Workspace::new().unwrap();
    let mut text = format!(
        "[kafka]\nbootstrap = \"{}\"\ngroup = \"g\"\ncommit_interval_ms = 100\n",
        broker.bootstrap()
    );
    for (stage, table) in [
        ("raw", "\"ref.raw\""),
        (
            "cj",
            "{ topic = \"ref.cj\", format = \"connect-json\", key_format = \"connect-json\" }",
        ),
    ] {
        text.push_str(&format!(
            "\n[[stage]]\nname = \"{stage}\"\nprocessor = {}\ninput = \"orders\"\n\
             outputs = {{ default = \"out.{stage}\" }}\ndlq = \"dlq.{stage}\"\n\
             config = {{ table = \"customers\", field = \"customer\", into = \"customer_info\" }}\n\
             tables = {{ customers = {table} }}\nmax_wait_ms = 0\n",
            toml_path(&enrich)
        ));
    }
    let file = ws.write("pipeline.toml", &text).unwrap();
    let metrics = format!("127.0.0.1:{}", free_port().unwrap());
    let mut host = Partita::start(
        "host",
        &["run", file.to_str().unwrap(), "--metrics-addr", &metrics],
        &ws.log("host"),
    )
    .unwrap();
    let stages = [("g.raw", "orders"), ("g.cj", "orders")];
    let caught_up = |host: &mut Partita| {
        wait_caught_up(&kafka, &stages, WAIT, || host.assert_running())
            .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(40)));
    };
    // Waits until each table topic has had `n` records applied.
    let applied = |host: &mut Partita, n: f64| {
        wait_until(WAIT, &format!("{n} table records applied"), || {
            host.assert_running()?;
            let Ok(samples) = scrape(&metrics) else {
                return Ok(false);
            };
            Ok(["ref.raw", "ref.cj"]
                .iter()
                .all(|t| sum(&samples, "partita_table_records_total", &[("topic", t)]) >= n))
        })
        .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(40)));
    };

    // The table as it was at start: C1 is known, C2 is not.
    kafka
        .produce("orders", [order(1, "C1"), order(2, "C2")])
        .unwrap();
    caught_up(&mut host);
    for stage in ["raw", "cj"] {
        assert_eq!(
            names(&kafka, &format!("out.{stage}")),
            [(1, "Ada".to_string())]
        );
        assert_eq!(
            reasons(&kafka, &format!("dlq.{stage}")),
            [(2, "no entry for `C2` in table `customers`".to_string())],
            "stage {stage}"
        );
    }

    // Updated while running: C1 renamed, C2 added.
    set_customer(&kafka, "C1", Some("Ada Lovelace"));
    set_customer(&kafka, "C2", Some("Bob"));
    applied(&mut host, 3.0);
    kafka
        .produce("orders", [order(3, "C1"), order(4, "C2")])
        .unwrap();
    caught_up(&mut host);

    // Deleted while running: C2's tombstone (a null value in both topics),
    // and, in the Connect topic, a record that is no envelope, skipped.
    set_customer(&kafka, "C2", None);
    kafka
        .produce(
            "ref.cj",
            [record(cj_key("C1"), Some(b"{\"name\":\"plain\"}".to_vec()))],
        )
        .unwrap();
    applied(&mut host, 4.0);
    wait_until(WAIT, "the invalid record to be counted", || {
        let samples = scrape(&metrics)?;
        Ok(sum(
            &samples,
            "partita_table_invalid_records_total",
            &[("topic", "ref.cj")],
        ) == 1.0)
    })
    .unwrap();
    kafka
        .produce("orders", [order(5, "C1"), order(6, "C2")])
        .unwrap();
    caught_up(&mut host);

    for stage in ["raw", "cj"] {
        assert_eq!(
            names(&kafka, &format!("out.{stage}")),
            [
                (1, "Ada".to_string()),
                (3, "Ada Lovelace".to_string()),
                (4, "Bob".to_string()),
                (5, "Ada Lovelace".to_string()),
            ],
            "stage {stage}"
        );
        let missing = "no entry for `C2` in table `customers`".to_string();
        assert_eq!(
            reasons(&kafka, &format!("dlq.{stage}")),
            [(2, missing.clone()), (6, missing)],
            "stage {stage}"
        );
    }
    let samples = scrape(&metrics).unwrap();
    assert_eq!(
        sum(&samples, "partita_table_keys", &[("topic", "ref.cj")]),
        1.0
    );
    assert_eq!(
        sum(&samples, "partita_table_caught_up", &[("topic", "ref.raw")]),
        1.0
    );
    let log = host.log_tail(200);
    assert!(
        log.contains("table topic ref.cj partition")
            && log.contains("value: not a Kafka Connect JSON envelope"),
        "the skipped record is logged with where it is:\n{log}"
    );
    host.stop(Duration::from_secs(30)).unwrap();
}
