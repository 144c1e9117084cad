//! Durable state on a real broker: `count` keeps its totals across a
//! `kill -9` and restart, across a move of its partitions to a second host
//! with an empty state folder, and with a state larger than its memory
//! budget, restarted without reading its whole changelog again.

use std::collections::BTreeMap;
use std::path::Path;
use std::thread;
use std::time::Duration;

use anyhow::Context as _;
use partita_tests::broker::{Broker, free_port};
use partita_tests::kafka::{Kafka, Record, wait_until};
use partita_tests::metrics;
use partita_tests::partita::Partita;
use partita_tests::pipeline::{Stage, Workspace, pipeline_toml, wait_caught_up};
use partita_tests::wasm::component;

/// A short session, so that the group drops a killed host in 6 s rather
/// than librdkafka's default 45 s.
const CONSUMER: &str = r#"
[kafka.consumer]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 1000
"#;

/// Longer than the session: a restart waits until the group has dropped
/// the killed host (docs/TESTING.md, the broker's gaps).
const SESSION_EXPIRY: Duration = Duration::from_secs(8);

/// The changelog of stage `count` in group `g`.
const CHANGELOG: &str = "g.count.changelog";

/// Creates the input, output and dead-letter topics of the count stage.
fn topics(kafka: &Kafka, partitions: i32) {
    kafka.create_topic("sales", partitions).unwrap();
    kafka.create_topic("totals", partitions).unwrap();
    kafka.create_topic("sales.dlq", 1).unwrap();
}

/// A pipeline file running `count` from `sales` to `totals`, with the
/// lines of `state` after `[kafka]` (a `[state]` table) and `config` in the
/// stage.
fn pipeline(
    ws: &Workspace,
    broker: &Broker,
    name: &str,
    state: &str,
    config: &str,
) -> std::path::PathBuf {
    let processor = component("count");
    let kafka_extra = format!("{CONSUMER}\n{state}");
    let text = pipeline_toml(
        &broker.bootstrap(),
        "g",
        &kafka_extra,
        &[Stage {
            name: "count",
            processor: &processor,
            input: "sales",
            outputs: &[("default", "totals")],
            extra: config,
        }],
    );
    ws.write(name, &text).unwrap()
}

/// Starts `partita run FILE --metrics-addr ...`; returns the host and the
/// metrics address.
fn host(name: &str, file: &Path, log: &Path) -> (Partita, String) {
    let addr = format!("127.0.0.1:{}", free_port().unwrap());
    let file = file.to_str().unwrap();
    let p = Partita::start(name, &["run", file, "--metrics-addr", &addr], log).unwrap();
    (p, addr)
}

/// Records `n` = from..to, each a sale of 1 under key `key(n)`.
fn sales(range: std::ops::Range<u64>, key: impl Fn(u64) -> String) -> Vec<Record> {
    range.map(|n| Record::new(&key(n), "1")).collect()
}

/// The last count `totals` holds per key (outputs in partition order, and a
/// key lives in one partition).
fn final_counts(kafka: &Kafka) -> BTreeMap<String, u64> {
    let mut last = BTreeMap::new();
    for c in kafka.consume_all("totals").unwrap() {
        let v: serde_json::Value = serde_json::from_slice(c.value.as_deref().unwrap()).unwrap();
        let count = v["count"].as_u64().expect("count is a number");
        last.insert(c.key_str(), count);
    }
    last
}

/// `partita_state_restored_records_total` summed over the stage's
/// partitions, once every partition of `partitions` reported one.
fn restored(addr: &str, partitions: usize) -> anyhow::Result<Option<f64>> {
    let samples = metrics::scrape(addr)?;
    let seen = samples
        .iter()
        .filter(|s| s.name == "partita_state_restored_records_total")
        .count();
    if seen < partitions {
        return Ok(None);
    }
    Ok(Some(metrics::sum(
        &samples,
        "partita_state_restored_records_total",
        &[("stage", "count")],
    )))
}

#[test]
fn count_keeps_at_least_the_true_totals_across_a_kill_9() {
    const KEYS: u64 = 300;
    const CHUNKS: u64 = 12;
    const CHUNK: u64 = 1_000;
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    topics(&kafka, 2);
    let ws = Workspace::new().unwrap();
    let file = pipeline(&ws, &broker, "pipeline.toml", "", "");
    let key = |n: u64| format!("c{:03}", n % KEYS);

    // Input arrives in chunks while the host runs, so that the kill lands
    // mid-stream.
    let producer = {
        let kafka = kafka.clone();
        thread::spawn(move || -> anyhow::Result<()> {
            for c in 0..CHUNKS {
                kafka.produce("sales", sales(c * CHUNK..(c + 1) * CHUNK, key))?;
                thread::sleep(Duration::from_millis(200));
            }
            Ok(())
        })
    };
    let mut h1 = Partita::run("host 1", &file, &ws.log("host-1")).unwrap();
    wait_until(
        Duration::from_secs(120),
        "3000 committed inputs and outputs past them",
        || {
            h1.assert_running()?;
            let committed: i64 = kafka
                .committed("g.count", "sales")?
                .iter()
                .map(|c| c.unwrap_or(0))
                .sum();
            Ok(committed >= 3_000 && kafka.count("totals")? > committed)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", h1.log_tail(40)));
    assert!(
        !producer.is_finished(),
        "all input was produced before the kill"
    );
    h1.kill9().unwrap();
    thread::sleep(Duration::from_millis(500));
    let committed: i64 = kafka
        .committed("g.count", "sales")
        .unwrap()
        .iter()
        .map(|c| c.unwrap_or(0))
        .sum();
    assert!(
        committed < (CHUNKS * CHUNK) as i64,
        "killed after everything was committed"
    );

    thread::sleep(SESSION_EXPIRY);
    let mut h2 = Partita::run("host 2", &file, &ws.log("host-2")).unwrap();
    producer.join().expect("producer thread").unwrap();
    wait_caught_up(
        &kafka,
        &[("g.count", "sales")],
        Duration::from_secs(180),
        || h2.assert_running(),
    )
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", h2.log_tail(40)));

    let truth = CHUNKS * CHUNK / KEYS;
    let counts = final_counts(&kafka);
    assert_eq!(counts.len() as u64, KEYS);
    let mut over = 0;
    for (k, n) in &counts {
        assert!(
            *n >= truth,
            "key {k}: count {n} below the true {truth} (state lost)"
        );
        over += n - truth;
    }
    println!(
        "kill -9 with {committed} of {} inputs committed; final totals: {over} counted more than once over {KEYS} keys",
        CHUNKS * CHUNK
    );
    let status = h2.stop(Duration::from_secs(30)).unwrap();
    assert!(
        status.success(),
        "clean stop: {status}\n{}",
        h2.log_tail(40)
    );
}

#[test]
fn a_second_host_with_an_empty_state_folder_continues_from_the_changelog() {
    const KEYS: u64 = 100;
    const HALF: u64 = 3_000;
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    topics(&kafka, 2);
    let ws = Workspace::new().unwrap();
    let file_a = pipeline(&ws, &broker, "a.toml", "[state]\ndir = \"state-a\"\n", "");
    let file_b = pipeline(&ws, &broker, "b.toml", "[state]\ndir = \"state-b\"\n", "");
    let key = |n: u64| format!("c{:03}", n % KEYS);

    kafka.produce("sales", sales(0..HALF, key)).unwrap();
    let (mut a, _) = host("host A", &file_a, &ws.log("host-a"));
    wait_caught_up(
        &kafka,
        &[("g.count", "sales")],
        Duration::from_secs(120),
        || a.assert_running(),
    )
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", a.log_tail(40)));
    let status = a.stop(Duration::from_secs(30)).unwrap();
    assert!(
        status.success(),
        "clean stop of A: {status}\n{}",
        a.log_tail(40)
    );
    assert!(
        ws.path().join("state-a/g/count/0/CLEAN").exists(),
        "A closed its store cleanly"
    );
    let changelog = kafka.count(CHANGELOG).unwrap();
    assert!(changelog > 0, "A wrote its state changes to {CHANGELOG}");

    // B has never seen these partitions: its state folder is empty.
    assert!(!ws.path().join("state-b").exists());
    let (mut b, addr) = host("host B", &file_b, &ws.log("host-b"));
    kafka.produce("sales", sales(HALF..2 * HALF, key)).unwrap();
    wait_caught_up(
        &kafka,
        &[("g.count", "sales")],
        Duration::from_secs(120),
        || b.assert_running(),
    )
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", b.log_tail(40)));
    let read = restored(&addr, 2)
        .unwrap()
        .expect("both partitions restored");
    assert_eq!(
        read as i64, changelog,
        "B rebuilt its state from the whole changelog A wrote"
    );

    // Clean handovers: every key's count is exact.
    let counts = final_counts(&kafka);
    assert_eq!(counts.len() as u64, KEYS);
    for (k, n) in &counts {
        assert_eq!(*n, 2 * HALF / KEYS, "key {k}");
    }
    let status = b.stop(Duration::from_secs(30)).unwrap();
    assert!(
        status.success(),
        "clean stop of B: {status}\n{}",
        b.log_tail(40)
    );
}

#[test]
fn a_state_larger_than_its_memory_restarts_after_a_kill_9_without_reading_the_whole_changelog() {
    const KEYS: u64 = 50_000;
    const AGAIN: u64 = 1_000;
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    topics(&kafka, 2);
    let ws = Workspace::new().unwrap();
    // 1 MiB per partition for the store, a small cache in the processor:
    // about 25,000 keys per partition do not fit in either.
    let file = pipeline(
        &ws,
        &broker,
        "pipeline.toml",
        "[state]\ndir = \"state\"\nmemory_mb = 1\n",
        "config = { cache_entries = \"1000\" }",
    );
    let key = |n: u64| format!("customer-{n:08}");
    kafka.produce("sales", sales(0..KEYS, key)).unwrap();

    let (mut h1, addr) = host("host 1", &file, &ws.log("host-1"));
    wait_caught_up(
        &kafka,
        &[("g.count", "sales")],
        Duration::from_secs(180),
        || h1.assert_running(),
    )
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", h1.log_tail(40)));
    // Every key is on disk once the stores have flushed (the gauge counts
    // the keys of the last flush).
    wait_until(
        Duration::from_secs(60),
        "all keys flushed to the stores",
        || {
            h1.assert_running()?;
            let samples = metrics::scrape(&addr)?;
            Ok(metrics::sum(&samples, "partita_state_keys", &[("stage", "count")]) as u64 == KEYS)
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", h1.log_tail(40)));
    for p in 0..2 {
        let file = ws.path().join(format!("state/g/count/{p}/state.redb"));
        let size = std::fs::metadata(&file)
            .with_context(|| file.display().to_string())
            .unwrap()
            .len();
        assert!(
            size > 1 << 20,
            "partition {p}: {size} bytes on disk, more than its 1 MiB budget"
        );
    }
    let changelog = kafka.count(CHANGELOG).unwrap();
    assert!(changelog >= KEYS as i64, "{changelog} changelog records");
    h1.kill9().unwrap();

    thread::sleep(SESSION_EXPIRY);
    let (mut h2, addr) = host("host 2", &file, &ws.log("host-2"));
    // Keys seen before get a second sale: their totals come from the
    // restored store.
    kafka.produce("sales", sales(0..AGAIN, key)).unwrap();
    wait_caught_up(
        &kafka,
        &[("g.count", "sales")],
        Duration::from_secs(120),
        || h2.assert_running(),
    )
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", h2.log_tail(40)));
    let read = restored(&addr, 2)
        .unwrap()
        .expect("both partitions restored");
    println!("restart after kill -9: {read} of {changelog} changelog records read");
    assert!(
        read < (changelog / 10) as f64,
        "the restart read {read} of {changelog} changelog records: more than the tail"
    );
    let counts = final_counts(&kafka);
    assert_eq!(counts.len() as u64, KEYS);
    for n in 0..AGAIN {
        assert!(counts[&key(n)] >= 2, "{}: {}", key(n), counts[&key(n)]);
    }
    let status = h2.stop(Duration::from_secs(30)).unwrap();
    assert!(
        status.success(),
        "clean stop: {status}\n{}",
        h2.log_tail(40)
    );
}
