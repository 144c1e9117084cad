//! Two `partita run` processes with the same pipeline file share a stage's
//! partitions through the consumer group and together produce every
//! output; when one stops, the other takes its partitions over without
//! losing a record. Which process handles which partition is read from each
//! process's metrics (`partita_records_in_total` per stage and partition).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use partita_tests::broker::{Broker, free_port};
use partita_tests::kafka::{Kafka, Position, wait_until};
use partita_tests::metrics::scrape;
use partita_tests::orders::{Order, Orders};
use partita_tests::partita::Partita;
use partita_tests::pipeline::{
    Inputs, Stage, Workspace, account, id_of_value, pipeline_toml, wait_caught_up,
};
use partita_tests::wasm::component;

const PARTITIONS: i32 = 4;
const CATCH_UP: Duration = Duration::from_secs(180);

/// A host process and the address of its metrics.
struct Host {
    process: Partita,
    metrics: String,
}

impl Host {
    fn start(name: &str, ws: &Workspace, pipeline: &std::path::Path) -> Host {
        let metrics = format!("127.0.0.1:{}", free_port().unwrap());
        let args = [
            "run",
            pipeline.to_str().unwrap(),
            "--metrics-addr",
            &metrics,
        ];
        let process = Partita::start(name, &args, &ws.log(name)).unwrap();
        Host { process, metrics }
    }

    /// Records processed so far, per partition of stage `pass`.
    fn records_in(&mut self) -> BTreeMap<i32, f64> {
        self.process.assert_running().unwrap();
        let mut per_partition = BTreeMap::new();
        for s in scrape(&self.metrics).unwrap() {
            if s.name == "partita_records_in_total"
                && s.labels.get("stage").map(String::as_str) == Some("pass")
            {
                let p: i32 = s.labels["partition"].parse().unwrap();
                *per_partition.entry(p).or_default() += s.value;
            }
        }
        per_partition
    }

    /// Waits until its metrics endpoint answers.
    fn wait_metrics(&mut self) {
        let metrics = self.metrics.clone();
        let process = &mut self.process;
        wait_until(
            Duration::from_secs(60),
            &format!("metrics on {metrics}"),
            || {
                process.assert_running()?;
                Ok(scrape(&metrics).is_ok())
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}\nlog:\n{}", process.log_tail(40)));
    }
}

/// Partitions whose count grew between two snapshots.
fn grew(before: &BTreeMap<i32, f64>, after: &BTreeMap<i32, f64>) -> BTreeSet<i32> {
    after
        .iter()
        .filter(|(p, n)| **n > before.get(p).copied().unwrap_or(0.0))
        .map(|(p, _)| *p)
        .collect()
}

struct Feed {
    kafka: Kafka,
    orders: Orders,
    next_id: u64,
    all: Vec<Order>,
    positions: Vec<Position>,
}

impl Feed {
    /// Produces the next `n` orders.
    fn produce(&mut self, n: u64) {
        let batch: Vec<Order> = self
            .orders
            .generate(self.next_id + n)
            .skip(self.next_id as usize)
            .collect();
        self.next_id += n;
        let positions = self
            .kafka
            .produce("orders", batch.iter().map(Order::record))
            .unwrap();
        self.all.extend(batch);
        self.positions.extend(positions);
    }
}

#[test]
fn two_hosts_split_partitions_and_hand_them_over_on_stop() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("orders", PARTITIONS).unwrap();
    kafka.create_topic("orders.out", PARTITIONS).unwrap();
    kafka.create_topic("orders.dlq", 1).unwrap();
    let processor = component("passthrough");
    let ws = Workspace::new().unwrap();
    let text = pipeline_toml(
        &broker.bootstrap(),
        "g",
        "commit_interval_ms = 200",
        &[Stage {
            name: "pass",
            processor: &processor,
            input: "orders",
            outputs: &[("default", "orders.out")],
            extra: "",
        }],
    );
    let file = ws.write("pipeline.toml", &text).unwrap();
    let mut feed = Feed {
        kafka: kafka.clone(),
        orders: Orders::default(),
        next_id: 0,
        all: Vec::new(),
        positions: Vec::new(),
    };
    let caught_up = |a: &mut Host, b: Option<&mut Host>| {
        let mut b = b;
        wait_caught_up(&kafka, &[("g.pass", "orders")], CATCH_UP, || {
            a.process.assert_running()?;
            if let Some(b) = b.as_mut() {
                b.process.assert_running()?;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e:#}\nhost a log:\n{}", a.process.log_tail(30)));
    };

    // Host a alone takes every partition.
    let mut a = Host::start("a", &ws, &file);
    a.wait_metrics();
    feed.produce(4_000);
    caught_up(&mut a, None);
    assert_eq!(
        a.records_in().len(),
        PARTITIONS as usize,
        "a alone handles every partition"
    );

    // Host b joins; small probes flow until b handles some partitions.
    let mut b = Host::start("b", &ws, &file);
    b.wait_metrics();
    wait_until(Duration::from_secs(120), "host b to get partitions", || {
        feed.produce(200);
        Ok(b.records_in().values().sum::<f64>() > 0.0)
    })
    .unwrap_or_else(|e| panic!("{e:#}\nhost b log:\n{}", b.process.log_tail(40)));
    caught_up(&mut a, Some(&mut b));

    // With the group settled, each partition is handled by exactly one host.
    let (a0, b0) = (a.records_in(), b.records_in());
    feed.produce(4_000);
    caught_up(&mut a, Some(&mut b));
    let (a1, b1) = (a.records_in(), b.records_in());
    let (on_a, on_b) = (grew(&a0, &a1), grew(&b0, &b1));
    println!("partitions of host a: {on_a:?}, of host b: {on_b:?}");
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "a {on_a:?}, b {on_b:?}: not split"
    );
    assert!(
        on_a.is_disjoint(&on_b),
        "a {on_a:?} and b {on_b:?} share partitions"
    );
    let all: BTreeSet<i32> = on_a.union(&on_b).copied().collect();
    assert_eq!(all, (0..PARTITIONS).collect(), "a {on_a:?} + b {on_b:?}");

    // b stops cleanly; a takes every partition back and goes on.
    let status = b.process.stop(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "b's clean stop exited with {status}");
    let a2 = a.records_in();
    feed.produce(4_000);
    caught_up(&mut a, None);
    let a3 = a.records_in();
    assert_eq!(
        grew(&a2, &a3),
        (0..PARTITIONS).collect(),
        "a did not take b's partitions"
    );

    // Together they produced every output, each once: every handover was a
    // clean one (commit on revoke and at stop).
    let inputs = Inputs::new(&feed.all, &feed.positions);
    let expected: HashSet<u64> = feed.all.iter().map(|o| o.id).collect();
    let outputs = kafka.consume_all("orders.out").unwrap();
    let report = account(&inputs, &expected, &outputs, |c| {
        c.value.as_deref().and_then(id_of_value)
    });
    assert!(report.complete(), "{report}");
    assert_eq!(report.duplicate_count(), 0, "{report}");
    println!("two hosts, then one: {report}");

    let status = a.process.stop(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "a's clean stop exited with {status}");
}
