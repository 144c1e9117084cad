//! A three-stage legacy pipeline over 12,000 orders on 4 partitions, run by
//! `partita run` against a real broker:
//!
//! 1. `parse` (csv-to-json): CSV lines to JSON; malformed lines (`;`
//!    separators) go to the dead-letter topic `legacy.orders.dlq`.
//! 2. `enrich`: adds the customer's record from the reference table
//!    `customers` (a compacted topic); orders of customers missing from the
//!    table go to `orders.json.dlq`.
//! 3. `count`: a running count and sum of amounts per customer.
//!
//! Every input is accounted for, exactly once, in an output or a
//! dead-letter topic, and per-partition order holds at every stage (for
//! `count`, each customer's running count goes 1, 2, 3, ... with no gap).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use partita_tests::broker::Broker;
use partita_tests::kafka::{Consumed, Record};
use partita_tests::orders::{COLUMNS, Order, Orders};
use partita_tests::partita::Partita;
use partita_tests::pipeline::{
    Inputs, Stage, Workspace, account, id_of_value, pipeline_toml, wait_caught_up,
};
use partita_tests::wasm::component;

const ORDERS: u64 = 12_000;
const CUSTOMERS: u64 = 100;
/// Customers above this number have no entry in the reference table.
const KNOWN_CUSTOMERS: u64 = 97;

fn customer_number(customer: &str) -> u64 {
    customer.trim_start_matches('c').parse().unwrap()
}

fn id_of(c: &Consumed) -> Option<u64> {
    c.value.as_deref().and_then(id_of_value)
}

#[test]
fn three_stages_account_for_every_input_in_order() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    for (topic, partitions) in [
        ("legacy.orders", 4),
        ("orders.json", 4),
        ("orders.enriched", 4),
        ("orders.counts", 4),
        ("legacy.orders.dlq", 1),
        ("orders.json.dlq", 1),
        ("orders.enriched.dlq", 1),
    ] {
        kafka.create_topic(topic, partitions).unwrap();
    }
    kafka
        .create_topic_with("ref.customers", 1, &[("cleanup.policy", "compact")])
        .unwrap();
    let table = (1..=KNOWN_CUSTOMERS).map(|n| {
        let segment = if n % 3 == 0 { "gold" } else { "standard" };
        Record::new(
            &format!("c{n:04}"),
            &format!(r#"{{"name":"Customer {n}","segment":"{segment}"}}"#),
        )
    });
    kafka.produce("ref.customers", table).unwrap();

    let settings = Orders {
        customers: CUSTOMERS,
        malformed_every: Some(50),
        ..Orders::default()
    };
    let orders: Vec<Order> = settings.generate(ORDERS).collect();
    let positions = kafka
        .produce("legacy.orders", orders.iter().map(Order::record))
        .unwrap();

    let (parse, enrich, count) = (
        component("csv-to-json"),
        component("enrich"),
        component("count"),
    );
    let ws = Workspace::new().unwrap();
    let parse_config = format!("config = {{ columns = {COLUMNS:?}, numeric = \"amount\" }}");
    let text = pipeline_toml(
        &broker.bootstrap(),
        "legacy",
        "commit_interval_ms = 200",
        &[
            Stage {
                name: "parse",
                processor: &parse,
                input: "legacy.orders",
                outputs: &[("default", "orders.json")],
                extra: &parse_config,
            },
            Stage {
                name: "enrich",
                processor: &enrich,
                input: "orders.json",
                outputs: &[("default", "orders.enriched")],
                extra: "config = { table = \"customers\", field = \"customer\", into = \"customer_info\" }\n\
                        tables = { customers = \"ref.customers\" }",
            },
            Stage {
                name: "count",
                processor: &count,
                input: "orders.enriched",
                outputs: &[("default", "orders.counts")],
                extra: "config = { field = \"amount\" }",
            },
        ],
    );
    let file = ws.write("pipeline.toml", &text).unwrap();
    let mut host = Partita::run("host", &file, &ws.log("host")).unwrap();
    let stages = [
        ("legacy.parse", "legacy.orders"),
        ("legacy.enrich", "orders.json"),
        ("legacy.count", "orders.enriched"),
    ];
    wait_caught_up(&kafka, &stages, Duration::from_secs(300), || {
        host.assert_running()
    })
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(40)));

    let inputs = Inputs::new(&orders, &positions);
    let malformed: HashSet<u64> = orders
        .iter()
        .filter(|o| o.malformed)
        .map(|o| o.id)
        .collect();
    let parsed: HashSet<u64> = orders
        .iter()
        .filter(|o| !o.malformed)
        .map(|o| o.id)
        .collect();
    let unknown: HashSet<u64> = orders
        .iter()
        .filter(|o| !o.malformed && customer_number(&o.customer) > KNOWN_CUSTOMERS)
        .map(|o| o.id)
        .collect();
    let enriched: HashSet<u64> = parsed.difference(&unknown).copied().collect();
    assert!(!malformed.is_empty() && !unknown.is_empty() && enriched.len() > 10_000);

    // Stage 1: every well-formed line parsed once, in order; every malformed
    // one in the dead-letter topic.
    let json = kafka.consume_all("orders.json").unwrap();
    let report = account(&inputs, &parsed, &json, id_of);
    assert!(
        report.complete() && report.duplicate_count() == 0,
        "parse: {report}"
    );
    let by_id: HashMap<u64, &Order> = orders.iter().map(|o| (o.id, o)).collect();
    for record in &json {
        let value: serde_json::Value =
            serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
        let order = by_id[&id_of(record).unwrap()];
        assert_eq!(value["customer"], order.customer.as_str());
        assert_eq!(value["country"], order.country);
        assert_eq!(record.key_str(), order.customer, "key kept");
    }
    let dead = kafka.consume_all("legacy.orders.dlq").unwrap();
    let report = account(&inputs, &malformed, &dead, id_of);
    assert!(
        report.complete() && report.duplicate_count() == 0,
        "parse DLQ: {report}"
    );
    for d in &dead {
        assert_eq!(d.header_str("partita.stage").as_deref(), Some("parse"));
        assert_eq!(
            d.header_str("partita.error.kind").as_deref(),
            Some("rejected")
        );
        assert_eq!(
            d.header_str("partita.error").as_deref(),
            Some("expected 4 fields, found 1")
        );
    }

    // Stage 2: known customers enriched from the table, once, in order; the
    // others in the dead-letter topic of its input.
    let rich = kafka.consume_all("orders.enriched").unwrap();
    let report = account(&inputs, &enriched, &rich, id_of);
    assert!(
        report.complete() && report.duplicate_count() == 0,
        "enrich: {report}"
    );
    for record in &rich {
        let value: serde_json::Value =
            serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
        let n = customer_number(value["customer"].as_str().unwrap());
        assert_eq!(
            value["customer_info"]["name"],
            format!("Customer {n}"),
            "{value}"
        );
    }
    let dead = kafka.consume_all("orders.json.dlq").unwrap();
    let report = account(&inputs, &unknown, &dead, id_of);
    assert!(
        report.complete() && report.duplicate_count() == 0,
        "enrich DLQ: {report}"
    );
    for d in &dead {
        assert_eq!(d.header_str("partita.stage").as_deref(), Some("enrich"));
        assert_eq!(
            d.header_str("partita.source.topic").as_deref(),
            Some("orders.json")
        );
    }

    // Stage 3: per customer, counts 1..=n in order and the sum of amounts.
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for id in &enriched {
        let o = by_id[id];
        let e = expected.entry(o.customer.clone()).or_default();
        e.0 += 1;
        e.1 += o.amount_cents;
    }
    let counts = kafka.consume_all("orders.counts").unwrap();
    assert_eq!(counts.len(), enriched.len(), "one count per enriched order");
    let mut seen: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for record in &counts {
        let value: serde_json::Value =
            serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
        let customer = value["key"].as_str().unwrap().to_string();
        assert_eq!(record.key_str(), customer, "key kept");
        let n = value["count"].as_u64().unwrap();
        let last = seen.entry(customer.clone()).or_default();
        assert_eq!(
            n,
            last.0 + 1,
            "{customer}: count {n} after {} (order broken)",
            last.0
        );
        *last = (n, value["sum"].as_f64().unwrap());
    }
    assert_eq!(seen.len(), expected.len());
    for (customer, (n, cents)) in &expected {
        let (count, sum) = seen[customer];
        assert_eq!(count, *n, "{customer}");
        assert!(
            (sum - *cents as f64 / 100.0).abs() < 0.005,
            "{customer}: sum {sum}, expected {cents} cents"
        );
    }

    println!(
        "{} orders: {} parsed, {} malformed to the DLQ, {} enriched, {} of unknown customers to the DLQ, {} counts",
        orders.len(),
        parsed.len(),
        malformed.len(),
        enriched.len(),
        unknown.len(),
        counts.len()
    );
    let status = host.stop(Duration::from_secs(30)).unwrap();
    assert!(
        status.success(),
        "clean stop exited with {status}; log:\n{}",
        host.log_tail(40)
    );
}
