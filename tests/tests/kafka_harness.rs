//! Tests of the Kafka test harness itself against a real Tansu broker:
//! produce and read back exactly, watermarks, committed offsets, a broker
//! restart on the same storage, and the harness's errors.

use std::collections::HashMap;
use std::time::Duration;

use partita_tests::broker::Broker;
use partita_tests::kafka::{Kafka, Record};
use partita_tests::orders::Orders;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

#[test]
fn ten_thousand_records_on_four_partitions_read_back_exactly() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("orders", 4).unwrap();
    assert_eq!(kafka.partition_count("orders").unwrap(), 4);

    let orders: Vec<_> = Orders::default().generate(10_000).collect();
    let records: Vec<Record> = orders
        .iter()
        .map(|o| {
            o.record()
                .header("seq", o.id.to_string().as_bytes())
                .header("empty", b"")
        })
        .collect();
    let positions = kafka.produce("orders", records.clone()).unwrap();
    assert_eq!(positions.len(), 10_000);

    // Watermarks are exact: per partition, the number of records produced.
    let mut per_partition = [0i64; 4];
    for p in &positions {
        per_partition[p.partition as usize] += 1;
    }
    assert!(
        per_partition.iter().all(|&n| n > 0),
        "a partition got nothing: {per_partition:?}"
    );
    let marks = kafka.watermarks("orders").unwrap();
    for (p, w) in marks.iter().enumerate() {
        assert_eq!((w.low, w.high), (0, per_partition[p]), "partition {p}");
    }
    assert_eq!(kafka.count("orders").unwrap(), 10_000);

    // Reading to the end gives every record once, in offset order, with its
    // key, value and headers, where the producer was told it landed.
    let consumed = kafka.consume_all("orders").unwrap();
    assert_eq!(consumed.len(), 10_000);
    let by_position: HashMap<(i32, i64), usize> = positions
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.partition, p.offset), i))
        .collect();
    let mut next = [0i64; 4];
    for c in &consumed {
        assert_eq!(
            c.offset, next[c.partition as usize],
            "gap or disorder in {}",
            c.partition
        );
        next[c.partition as usize] += 1;
        let i = by_position[&(c.partition, c.offset)];
        assert_eq!(c.key, records[i].key);
        assert_eq!(c.value, records[i].value);
        assert_eq!(c.header_str("seq").unwrap(), orders[i].id.to_string());
        assert_eq!(c.header("empty"), Some(&b""[..]));
        assert!(c.timestamp.is_some_and(|t| t > 0));
    }
    // Keyed records of one customer share one partition.
    let mut partition_of: HashMap<&str, i32> = HashMap::new();
    for (o, p) in orders.iter().zip(&positions) {
        assert_eq!(
            *partition_of.entry(&o.customer).or_insert(p.partition),
            p.partition
        );
    }
}

#[test]
fn records_without_key_or_value_and_with_timestamps_round_trip() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("odd", 1).unwrap();
    let records = vec![
        Record {
            key: None,
            value: Some(b"no key".to_vec()),
            ..Record::default()
        },
        Record {
            key: Some(b"k".to_vec()),
            value: None,
            ..Record::default()
        },
        Record {
            timestamp: Some(1_700_000_000_000),
            ..Record::new("k", "v")
        },
    ];
    kafka.produce("odd", records.clone()).unwrap();
    let consumed = kafka.consume_all("odd").unwrap();
    assert_eq!(consumed.len(), 3);
    assert_eq!(
        (consumed[0].key.as_deref(), consumed[0].value_str().as_str()),
        (None, "no key")
    );
    assert_eq!(
        (consumed[1].key_str().as_str(), consumed[1].value.as_deref()),
        ("k", None)
    );
    assert_eq!(consumed[2].timestamp, Some(1_700_000_000_000));
}

#[test]
fn committed_offsets_and_lag_of_a_group() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("in", 2).unwrap();
    let positions = kafka
        .produce("in", (0..100).map(|i| Record::new(&format!("k{i}"), "v")))
        .unwrap();
    let highs: Vec<i64> = kafka
        .watermarks("in")
        .unwrap()
        .iter()
        .map(|w| w.high)
        .collect();
    assert_eq!(highs.iter().sum::<i64>(), positions.len() as i64);

    assert_eq!(kafka.committed("g", "in").unwrap(), vec![None, None]);
    assert_eq!(kafka.lag("g", "in").unwrap(), 100);

    // Commit partition 0 to its end and partition 1 to 3.
    let consumer: BaseConsumer = kafka.config().set("group.id", "g").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("in", 0, Offset::Offset(highs[0]))
        .unwrap();
    tpl.add_partition_offset("in", 1, Offset::Offset(3))
        .unwrap();
    consumer.commit(&tpl, CommitMode::Sync).unwrap();

    assert_eq!(
        kafka.committed("g", "in").unwrap(),
        vec![Some(highs[0]), Some(3)]
    );
    assert_eq!(kafka.lag("g", "in").unwrap(), highs[1] - 3);
    assert_eq!(kafka.committed("other", "in").unwrap(), vec![None, None]);
}

#[test]
fn broker_restart_keeps_records_and_offsets() {
    let mut broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("durable", 3).unwrap();
    kafka
        .produce(
            "durable",
            (0..300).map(|i| Record::new(&format!("k{i}"), &i.to_string())),
        )
        .unwrap();
    let before = kafka.consume_all("durable").unwrap();

    broker.kill().unwrap();
    assert!(!broker.is_running());
    let down = Kafka::new(&broker.bootstrap()).with_timeout(Duration::from_secs(2));
    assert!(
        down.count("durable").is_err(),
        "a killed broker still answers"
    );

    broker.restart().unwrap();
    assert!(broker.is_running());
    assert_eq!(kafka.consume_all("durable").unwrap(), before);
    // And it takes new records after the restart, after the old ones.
    kafka
        .produce("durable", [Record::new("k0", "after")])
        .unwrap();
    assert_eq!(kafka.count("durable").unwrap(), 301);

    broker.stop().unwrap();
    broker.restart().unwrap();
    assert_eq!(kafka.count("durable").unwrap(), 301);
}

#[test]
fn two_brokers_run_side_by_side() {
    let a = Broker::start().unwrap();
    let b = Broker::start().unwrap();
    assert_ne!(a.port(), b.port());
    a.kafka().create_topic("t", 1).unwrap();
    assert_eq!(a.kafka().partition_count("t").unwrap(), 1);
    assert_eq!(b.kafka().partition_count("t").unwrap(), 0);
}

#[test]
fn restart_of_a_running_broker_is_refused() {
    let mut broker = Broker::start().unwrap();
    let err = broker.restart().unwrap_err().to_string();
    assert!(err.contains("still running"), "{err}");
}

#[test]
fn harness_errors_name_the_topic() {
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka().with_timeout(Duration::from_secs(5));
    kafka.create_topic("once", 1).unwrap();

    let err = format!("{:#}", kafka.create_topic("once", 1).unwrap_err());
    assert!(err.contains("creating topic once"), "{err}");

    let err = format!("{:#}", kafka.consume_all("missing").unwrap_err());
    assert!(err.contains("topic missing does not exist"), "{err}");
    let err = format!("{:#}", kafka.committed("g", "missing").unwrap_err());
    assert!(err.contains("topic missing does not exist"), "{err}");

    // Producing to a topic that does not exist is not acknowledged.
    let short = broker.kafka().with_timeout(Duration::from_secs(2));
    let err = format!(
        "{:#}",
        short
            .produce("missing", [Record::new("k", "v")])
            .unwrap_err()
    );
    assert!(err.contains("missing"), "{err}");

    // ensure_topic leaves an existing topic alone and creates a new one.
    kafka.ensure_topic("once", 4).unwrap();
    assert_eq!(kafka.partition_count("once").unwrap(), 1);
    kafka.ensure_topic("fresh", 2).unwrap();
    assert_eq!(kafka.partition_count("fresh").unwrap(), 2);
}

#[test]
fn wait_until_reports_what_it_waited_for() {
    let kafka = Kafka::new("127.0.0.1:1").with_timeout(Duration::from_millis(300));
    let err = kafka
        .wait_until("the moon", || Ok(false))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("timed out") && err.contains("the moon"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        kafka.wait_until("x", || anyhow::bail!("boom")).unwrap_err()
    );
    assert!(
        err.contains("waiting for x") && err.contains("boom"),
        "{err}"
    );
}

/// Runs `kafka-tool ARGS` against `bootstrap` with `stdin`; returns the exit
/// code, stdout and stderr.
fn kafka_tool(bootstrap: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-tool"))
        .arg("--bootstrap")
        .arg(bootstrap)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kafka_tool_creates_produces_reads_and_reports_offsets() {
    let broker = Broker::start().unwrap();
    let b = broker.bootstrap();

    let (code, out, _) = kafka_tool(&b, &["create-topic", "orders", "--partitions", "4"], "");
    assert_eq!(
        (code, out.trim()),
        (0, "created topic orders with 4 partitions")
    );
    let (code, _, err) = kafka_tool(&b, &["create-topic", "orders"], "");
    assert_eq!(code, 1);
    assert!(
        err.contains("creating topic orders") && err.contains("already exists"),
        "{err}"
    );
    let (code, out, _) = kafka_tool(&b, &["create-topic", "orders", "--if-not-exists"], "");
    assert_eq!((code, out.trim()), (0, "topic orders exists"));

    let args = [
        "produce-orders",
        "orders",
        "--count",
        "1000",
        "--malformed-every",
        "100",
    ];
    let (code, out, _) = kafka_tool(&b, &args, "");
    assert_eq!((code, out.trim()), (0, "produced 1000 orders to orders"));
    let (code, out, _) = kafka_tool(&b, &["consume", "orders", "--values"], "");
    assert_eq!(code, 0);
    let mut values: Vec<&str> = out.lines().collect();
    assert_eq!(values.len(), 1000);
    assert_eq!(values.iter().filter(|v| v.contains(';')).count(), 10);
    // The same lines as gen-orders prints, whatever the partition order.
    let (_, generated, _) = kafka_tool(
        &b,
        &["gen-orders", "--count", "1000", "--malformed-every", "100"],
        "",
    );
    let mut generated: Vec<&str> = generated.lines().collect();
    values.sort_unstable();
    generated.sort_unstable();
    assert_eq!(values, generated);

    // Lines from stdin, keyed by a column; JSON output with partitions.
    let (code, _, _) = kafka_tool(&b, &["create-topic", "lines", "--partitions", "1"], "");
    assert_eq!(code, 0);
    let (code, out, _) = kafka_tool(
        &b,
        &["produce", "lines", "--key-column", "1"],
        "a,k1\nb,k2\n",
    );
    assert_eq!((code, out.trim()), (0, "produced 2 records to lines"));
    let (_, out, _) = kafka_tool(&b, &["consume", "lines"], "");
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(
        (first["key"].as_str(), first["value"].as_str()),
        (Some("k1"), Some("a,k1"))
    );
    assert_eq!(
        (first["partition"].as_i64(), first["offset"].as_i64()),
        (Some(0), Some(0))
    );
    let (code, _, err) = kafka_tool(&b, &["produce", "lines", "--key-column", "5"], "a,b\n");
    assert_eq!(code, 1);
    assert!(
        err.contains("stdin, line 1") && err.contains("no column 5"),
        "{err}"
    );

    let (code, out, _) = kafka_tool(&b, &["offsets", "lines", "--group", "nobody"], "");
    assert_eq!(
        (code, out.trim()),
        (0, "lines/0 low 0 high 2 committed none lag 2")
    );
}

#[test]
fn broker_script_starts_stops_and_reports_idempotently() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let port = partita_tests::broker::free_port().unwrap().to_string();
    let script = partita_tests::wasm::repo_root().join("scripts/broker.sh");
    let run = |cmd: &str| {
        let out = Command::new("bash")
            .arg(&script)
            .arg(cmd)
            .arg(dir.path())
            .env("PARTITA_BROKER_PORT", &port)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    };
    // Stops the broker even if an assertion below fails.
    struct StopOnDrop<F: Fn()>(F);
    impl<F: Fn()> Drop for StopOnDrop<F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }

    let (code, text) = run("status");
    assert_eq!(code, 3, "{text}");
    let (code, text) = run("start");
    let _stop = StopOnDrop(|| {
        run("stop");
    });
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    let (code, text) = run("start");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("already running"), "{text}");
    assert_eq!(run("status").0, 0);

    // It is a working broker, with its storage in the folder.
    let kafka = Kafka::new(&format!("127.0.0.1:{port}"));
    kafka.create_topic("t", 2).unwrap();
    kafka.produce("t", [Record::new("k", "v")]).unwrap();
    assert!(dir.path().join("tansu.db").exists());
    assert!(dir.path().join("broker.pid").exists());

    let (code, text) = run("stop");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("broker stopped"), "{text}");
    assert!(!dir.path().join("broker.pid").exists());
    let (code, text) = run("stop");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("not running"), "{text}");
    assert_eq!(run("status").0, 3);

    // Started again on the same folder, the record is still there.
    assert_eq!(run("start").0, 0);
    assert_eq!(kafka.count("t").unwrap(), 1);
}
