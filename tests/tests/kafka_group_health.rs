//! A host that gets no partitions must not look healthy, on the real
//! broker: with the broker's default session (45 s), `partita run` killed
//! with `kill -9` and started again at once, several times in a row, goes
//! on processing every time (rejoining the group when the coordinator hands
//! it nothing); and a partition that cannot advance past a record larger
//! than a fetch answer is reported stalled.

use std::thread;
use std::time::{Duration, Instant};

use partita_tests::broker::{Broker, free_port};
use partita_tests::kafka::{Kafka, Record, wait_until};
use partita_tests::metrics::{scrape, sum};
use partita_tests::orders::{Order, Orders};
use partita_tests::partita::Partita;
use partita_tests::pipeline::{Stage, Workspace, pipeline_toml, wait_caught_up};
use partita_tests::wasm::component;

const RESTARTS: usize = 3;
/// Records produced at the start of each round, at full speed, so that the
/// host is busy when it is killed (as in the report that led here: Tansu
/// hands the restarted host nothing in about half of such restarts).
const BURST: u64 = 20_000;

fn committed_sum(kafka: &Kafka) -> i64 {
    kafka
        .committed("g.pass", "orders")
        .map(|c| c.iter().map(|o| o.unwrap_or(0)).sum())
        .unwrap_or(0)
}

#[test]
fn kill_9_then_restart_at_once_with_default_session_processes_everything_every_time() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("orders", 4).unwrap();
    kafka.create_topic("orders.out", 4).unwrap();
    kafka.create_topic("orders.dlq", 1).unwrap();
    let processor = component("passthrough");
    let ws = Workspace::new().unwrap();
    // No consumer settings: librdkafka's and the broker's defaults, as a
    // user runs it.
    let text = pipeline_toml(
        &broker.bootstrap(),
        "g",
        "",
        &[Stage {
            name: "pass",
            processor: &processor,
            input: "orders",
            outputs: &[("default", "orders.out")],
            extra: "",
        }],
    );
    let file = ws.write("pipeline.toml", &text).unwrap();

    let mut orders = Orders::default().generate(BURST * (RESTARTS as u64 + 1));
    let mut producers = Vec::new();
    let mut rounds = Vec::new();
    for round in 0..=RESTARTS {
        let burst: Vec<Order> = orders.by_ref().take(BURST as usize).collect();
        producers.push({
            let kafka = kafka.clone();
            thread::spawn(move || kafka.produce("orders", burst.iter().map(Order::record)))
        });
        let log = ws.log(&format!("host-{round}"));
        let mut host = Partita::run("host", &file, &log).unwrap();
        let started = Instant::now();
        let before = committed_sum(&kafka);
        // Each host, the first and every restarted one, must make progress
        // of its own: commit well past what was committed when it started.
        wait_until(
            Duration::from_secs(180),
            "the host to commit 1000 more input records",
            || {
                host.assert_running()?;
                Ok(committed_sum(&kafka) >= before + 1_000)
            },
        )
        .unwrap_or_else(|e| panic!("round {round}: {e:#}\nhost log:\n{}", host.log_tail(60)));
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        let rejoined = log_text.matches("leaving and rejoining the group").count();
        rounds.push(format!(
            "round {round}: progress after {:.0}s, {rejoined} rejoin(s)",
            started.elapsed().as_secs_f64()
        ));
        if round < RESTARTS {
            host.kill9().unwrap();
            continue;
        }
        let mut sent = 0;
        for p in producers.drain(..) {
            sent += p.join().expect("producer thread").unwrap().len();
        }
        wait_caught_up(
            &kafka,
            &[("g.pass", "orders")],
            Duration::from_secs(180),
            || host.assert_running(),
        )
        .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(60)));
        let outputs = kafka.count("orders.out").unwrap();
        assert!(
            outputs >= sent as i64,
            "{outputs} outputs for {sent} inputs"
        );
        let status = host.stop(Duration::from_secs(30)).unwrap();
        assert!(status.success(), "{}", host.log_tail(40));
    }
    println!("{}", rounds.join("\n"));
}

#[test]
fn a_record_larger_than_a_fetch_answer_is_reported_stalled_with_its_offset() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("big", 1).unwrap();
    kafka.create_topic("big.out", 1).unwrap();
    kafka.create_topic("big.dlq", 1).unwrap();
    // Ten small records, one of 200 KB, then ten more.
    let small = |i: usize| Record::new(&format!("k{i}"), &format!("v{i}"));
    kafka.produce("big", (0..10).map(small)).unwrap();
    let large = "x".repeat(200_000);
    kafka
        .produce("big", std::iter::once(Record::new("large", &large)))
        .unwrap();
    kafka.produce("big", (10..20).map(small)).unwrap();

    let processor = component("passthrough");
    let ws = Workspace::new().unwrap();
    // Fetches asking for far less than the large record (librdkafka
    // wants message.max.bytes <= fetch.max.bytes): Tansu then answers
    // without it, and the partition cannot move past it.
    let text = pipeline_toml(
        &broker.bootstrap(),
        "g",
        "lag_interval_ms = 500\nstalled_after_ms = 3000\n[kafka.consumer]\n\
         \"fetch.max.bytes\" = 10000\n\"max.partition.fetch.bytes\" = 10000\n\
         \"message.max.bytes\" = 10000\n",
        &[Stage {
            name: "pass",
            processor: &processor,
            input: "big",
            outputs: &[("default", "big.out")],
            extra: "",
        }],
    );
    let file = ws.write("pipeline.toml", &text).unwrap();
    let port = free_port().unwrap();
    let addr = format!("127.0.0.1:{port}");
    let log = ws.log("host");
    let mut host = Partita::start(
        "host",
        &["run", file.to_str().unwrap(), "--metrics-addr", &addr],
        &log,
    )
    .unwrap();
    let stalled = [("stage", "pass"), ("topic", "big"), ("partition", "0")];
    wait_until(Duration::from_secs(90), "the stalled gauge", || {
        host.assert_running()?;
        let samples = scrape(&addr).unwrap_or_default();
        Ok(sum(&samples, "partita_partition_stalled", &stalled) == 1.0)
    })
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(60)));
    let samples = scrape(&addr).unwrap();
    let lag = [
        ("stage", "pass"),
        ("topic", "big"),
        ("partition", "0"),
        ("owned", "true"),
    ];
    assert!(
        sum(&samples, "partita_consumer_lag", &lag) >= 11.0,
        "the large record and the ten after it are lag"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let warning = text
        .lines()
        .find(|l| l.contains("has not advanced"))
        .unwrap_or_else(|| panic!("no stall warning in\n{}", host.log_tail(40)));
    assert!(
        warning.contains("partition big/0 has not advanced from offset 10 for"),
        "{warning}"
    );
    assert!(warning.contains("fetch.max.bytes"), "{warning}");
    host.stop(Duration::from_secs(30)).unwrap();
}
