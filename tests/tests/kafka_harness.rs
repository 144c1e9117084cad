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
