//! `kill -9` of `partita run` while records flow, then a restart: every
//! input's output is there, and the only duplicates are records past the
//! offsets committed before the kill (the uncommitted tail), which the test
//! counts and prints.

use std::collections::HashSet;
use std::thread;
use std::time::Duration;

use partita_tests::broker::Broker;
use partita_tests::kafka::{Kafka, wait_until};
use partita_tests::orders::{Order, Orders};
use partita_tests::partita::Partita;
use partita_tests::pipeline::{
    Inputs, Stage, Workspace, account, id_of_value, pipeline_toml, wait_caught_up,
};
use partita_tests::wasm::component;

/// A short session, so that the group drops the killed host in 6 s rather
/// than librdkafka's default 45 s.
const CONSUMER: &str = r#"
[kafka.consumer]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 1000
"#;

/// Longer than the session: the restart waits until the group has dropped
/// the killed host. Tansu 0.6.0 can otherwise leave the new member with an
/// empty assignment for good (docs/TESTING.md, the broker's gaps).
const SESSION_EXPIRY: Duration = Duration::from_secs(8);

const CHUNKS: usize = 30;
const CHUNK: usize = 1_000;

#[test]
fn kill_9_mid_stream_then_restart_loses_nothing() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("orders", 4).unwrap();
    kafka.create_topic("orders.out", 4).unwrap();
    kafka.create_topic("orders.dlq", 1).unwrap();

    let processor = component("passthrough");
    let ws = Workspace::new().unwrap();
    let text = pipeline_toml(
        &broker.bootstrap(),
        "g",
        CONSUMER,
        &[Stage {
            name: "pass",
            processor: &processor,
            input: "orders",
            outputs: &[("default", "orders.out")],
            extra: "",
        }],
    );
    let file = ws.write("pipeline.toml", &text).unwrap();

    // Input keeps arriving in chunks while the host runs, so that the kill
    // lands mid-stream however fast the host is.
    let orders: Vec<Order> = Orders::default()
        .generate((CHUNKS * CHUNK) as u64)
        .collect();
    let producer = {
        let kafka = kafka.clone();
        let orders = orders.clone();
        thread::spawn(move || -> anyhow::Result<Vec<_>> {
            let mut positions = Vec::new();
            for chunk in orders.chunks(CHUNK) {
                positions.extend(kafka.produce("orders", chunk.iter().map(Order::record))?);
                thread::sleep(Duration::from_millis(200));
            }
            Ok(positions)
        })
    };

    let mut host = Partita::run("host", &file, &ws.log("host-1")).unwrap();
    let out = Kafka::new(&broker.bootstrap());
    // Kill once some offsets are committed, so that the restart resumes
    // from a commit rather than from the start, while input still arrives
    // and outputs past the commit exist (an uncommitted tail).
    wait_until(
        Duration::from_secs(120),
        "3000 committed input records and outputs past them",
        || {
            host.assert_running()?;
            let committed = out.committed("g.pass", "orders")?;
            let committed: i64 = committed.iter().map(|c| c.unwrap_or(0)).sum();
            Ok(committed >= 3_000 && out.count("orders.out")? > committed)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(40)));
    assert!(
        !producer.is_finished(),
        "all input was produced before the kill: not mid-stream"
    );
    host.kill9().unwrap();
    // A commit the host sent just before dying may still be in the broker's
    // hands: give it a moment before reading what was committed.
    thread::sleep(Duration::from_millis(500));
    let committed_at_kill = kafka.committed("g.pass", "orders").unwrap();
    let outputs_at_kill = kafka.count("orders.out").unwrap();
    let committed_sum: i64 = committed_at_kill.iter().map(|c| c.unwrap_or(0)).sum();
    assert!(
        committed_sum < (CHUNKS * CHUNK) as i64,
        "the kill came after everything was committed: not mid-stream"
    );

    thread::sleep(SESSION_EXPIRY);
    let mut host = Partita::run("host", &file, &ws.log("host-2")).unwrap();
    let positions = producer.join().expect("producer thread").unwrap();
    wait_caught_up(
        &kafka,
        &[("g.pass", "orders")],
        Duration::from_secs(180),
        || host.assert_running(),
    )
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(40)));

    let inputs = Inputs::new(&orders, &positions);
    let expected: HashSet<u64> = orders.iter().map(|o| o.id).collect();
    let outputs = kafka.consume_all("orders.out").unwrap();
    let report = account(&inputs, &expected, &outputs, |c| {
        c.value.as_deref().and_then(id_of_value)
    });
    assert!(report.complete(), "{report}");
    // A duplicate must come from the uncommitted tail: its input offset is
    // at or past what its partition had committed when the host died.
    for id in report.duplicates.keys() {
        let at = inputs.position(*id).unwrap();
        let committed = committed_at_kill[at.partition as usize].unwrap_or(0);
        assert!(
            at.offset >= committed,
            "order {id} (input {}@{}) was output twice though its partition had committed {committed}",
            at.partition,
            at.offset
        );
    }
    assert!(
        report.duplicate_count() as i64 <= outputs_at_kill - committed_sum,
        "more duplicates than outputs past the committed offsets at the kill: {report}"
    );
    println!(
        "kill -9 after {outputs_at_kill} outputs, {committed_sum} input records committed; \
         after the restart: {report}"
    );

    let status = host.stop(Duration::from_secs(30)).unwrap();
    assert!(
        status.success(),
        "clean stop exited with {status}; log:\n{}",
        host.log_tail(40)
    );
}
