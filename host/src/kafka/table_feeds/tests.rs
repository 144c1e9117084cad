//! Tests of the table feeds against rdkafka's in-process mock cluster; the
//! tests under tests/tests/kafka_tables.rs do the same against Tansu.

use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use super::*;
use crate::tables::Tables;

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Cluster {
    // Dropped after the producer.
    producer: ThreadedProducer<DefaultProducerContext>,
    cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
}

impl Cluster {
    fn new(topics: &[(&str, i32)]) -> Cluster {
        let cluster = MockCluster::new(1).unwrap();
        for (t, n) in topics {
            cluster.create_topic(t, *n, 1).unwrap();
        }
        let producer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        Cluster { producer, cluster }
    }

    fn kafka(&self) -> KafkaConfig {
        KafkaConfig::new(self.cluster.bootstrap_servers(), "g")
    }

    fn send(&self, topic: &str, p: i32, k: Option<&[u8]>, v: Option<&[u8]>) {
        let mut r = BaseRecord::<[u8], [u8]>::to(topic).partition(p);
        if let Some(k) = k {
            r = r.key(k);
        }
        if let Some(v) = v {
            r = r.payload(v);
        }
        self.producer.send(r).map_err(|(e, _)| e).unwrap();
        self.producer.flush(Duration::from_secs(10)).unwrap();
    }
}

fn stage(tables: Vec<TableSpec>) -> StageConfig {
    let text = "[kafka]\nbootstrap = \"x:1\"\ngroup = \"g\"\n[[stage]]\nname = \"s\"\nprocessor = \"Cargo.toml\"\ninput = \"in\"\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline.toml");
    let mut s = crate::config::Pipeline::parse(&path, text)
        .unwrap()
        .stages
        .remove(0);
    s.tables = tables;
    s
}

#[test]
fn a_table_is_read_to_its_end_then_follows_updates_and_tombstones() {
    let c = Cluster::new(&[("ref.rates", 2)]);
    c.send("ref.rates", 0, Some(b"EUR"), Some(b"1.0"));
    c.send("ref.rates", 1, Some(b"USD"), Some(b"1.1"));
    c.send("ref.rates", 0, Some(b"EUR"), Some(b"1.2"));
    c.send("ref.rates", 1, Some(b"GBP"), Some(b"0.9"));
    c.send("ref.rates", 1, Some(b"GBP"), None);

    let metrics = Metrics::new();
    let stages = [stage(vec![TableSpec::new("rates", "ref.rates")])];
    let partitions = TopicPartitions::from([("ref.rates".to_string(), 2)]);
    let feeds = TableFeeds::start(&c.kafka(), &stages, &partitions, &metrics).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(feeds.wait(&stages));
    assert!(feeds.behind(&stages).is_empty());
    let tables = feeds.for_stage(&stages[0]);
    assert_eq!(tables.lookup("rates", b"EUR"), Some(b"1.2".to_vec()));
    assert_eq!(tables.lookup("rates", b"USD"), Some(b"1.1".to_vec()));
    assert_eq!(tables.lookup("rates", b"GBP"), None);

    // Updates while running reach the same table.
    c.send("ref.rates", 0, Some(b"EUR"), Some(b"1.3"));
    wait_for("the update", || {
        tables.lookup("rates", b"EUR") == Some(b"1.3".to_vec())
    });
    c.send("ref.rates", 1, Some(b"USD"), None);
    wait_for("the tombstone", || tables.lookup("rates", b"USD").is_none());
    let text = metrics.render();
    assert!(
        text.contains("partita_table_records_total{topic=\"ref.rates\"} 7"),
        "{text}"
    );
    assert!(
        text.contains("partita_table_keys{topic=\"ref.rates\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("partita_table_caught_up{topic=\"ref.rates\"} 1"),
        "{text}"
    );
}

#[test]
fn an_empty_table_has_caught_up_at_once_and_stages_share_one_feed_per_topic() {
    let c = Cluster::new(&[("ref.empty", 1)]);
    let metrics = Metrics::new();
    let a = stage(vec![TableSpec::new("e", "ref.empty")]);
    let b = stage(vec![TableSpec::new("other", "ref.empty")]);
    let stages = [a, b];
    let partitions = TopicPartitions::from([("ref.empty".to_string(), 1)]);
    let feeds = TableFeeds::start(&c.kafka(), &stages, &partitions, &metrics).unwrap();
    assert_eq!(feeds.feeds.len(), 1, "one feed for the topic");
    wait_for("catching up", || feeds.behind(&stages).is_empty());
    c.send("ref.empty", 0, Some(b"k"), Some(b"v"));
    let (ta, tb) = (feeds.for_stage(&stages[0]), feeds.for_stage(&stages[1]));
    wait_for("the record", || ta.lookup("e", b"k").is_some());
    assert_eq!(tb.lookup("other", b"k"), Some(b"v".to_vec()));
}

#[test]
fn a_table_that_is_not_waited_for_is_never_behind() {
    let c = Cluster::new(&[("ref.rates", 1)]);
    c.send("ref.rates", 0, Some(b"k"), Some(b"v"));
    let mut spec = TableSpec::new("rates", "ref.rates");
    spec.wait = false;
    let stages = [stage(vec![spec])];
    let partitions = TopicPartitions::from([("ref.rates".to_string(), 1)]);
    let feeds = TableFeeds::start(&c.kafka(), &stages, &partitions, &Metrics::new()).unwrap();
    assert!(feeds.behind(&stages).is_empty());
    let tables = feeds.for_stage(&stages[0]);
    wait_for("the record", || tables.lookup("rates", b"k").is_some());
}

#[test]
fn connect_json_envelopes_are_unwrapped_and_bad_records_skipped() {
    let c = Cluster::new(&[("ref.customers", 1)]);
    let key =
        |id: &str| format!(r#"{{"schema":{{"type":"string","optional":false}},"payload":"{id}"}}"#);
    let value = |name: &str| {
        format!(
            r#"{{"schema":{{"type":"struct","fields":[{{"type":"string","field":"name"}}]}},"payload":{{"name": "{name}", "segment": "retail"}}}}"#
        )
    };
    c.send(
        "ref.customers",
        0,
        Some(key("C1").as_bytes()),
        Some(value("Ada").as_bytes()),
    );
    c.send(
        "ref.customers",
        0,
        Some(key("C2").as_bytes()),
        Some(b"{\"name\":\"plain\"}"),
    );
    c.send(
        "ref.customers",
        0,
        Some(b"C3"),
        Some(value("Bob").as_bytes()),
    );
    c.send("ref.customers", 0, None, Some(value("Nobody").as_bytes()));
    c.send(
        "ref.customers",
        0,
        Some(key("C4").as_bytes()),
        Some(value("Cy").as_bytes()),
    );

    let metrics = Metrics::new();
    let spec = TableSpec {
        format: TableFormat::ConnectJson,
        key_format: TableFormat::ConnectJson,
        ..TableSpec::new("customers", "ref.customers")
    };
    let stages = [stage(vec![spec])];
    let partitions = TopicPartitions::from([("ref.customers".to_string(), 1)]);
    let feeds = TableFeeds::start(&c.kafka(), &stages, &partitions, &metrics).unwrap();
    wait_for("catching up", || feeds.behind(&stages).is_empty());
    let tables = feeds.for_stage(&stages[0]);
    assert_eq!(
        tables.lookup("customers", b"C1"),
        Some(br#"{"name":"Ada","segment":"retail"}"#.to_vec())
    );
    assert_eq!(tables.lookup("customers", b"C2"), None);
    assert_eq!(tables.lookup("customers", b"C3"), None);
    assert_eq!(
        tables.lookup("customers", b"C4"),
        Some(br#"{"name":"Cy","segment":"retail"}"#.to_vec())
    );
    // A tombstone in the envelope (null payload) and a bare one delete.
    c.send(
        "ref.customers",
        0,
        Some(key("C1").as_bytes()),
        Some(br#"{"schema":null,"payload":null}"#),
    );
    c.send("ref.customers", 0, Some(key("C4").as_bytes()), None);
    wait_for("the tombstones", || {
        tables.lookup("customers", b"C1").is_none() && tables.lookup("customers", b"C4").is_none()
    });
    let text = metrics.render();
    assert!(
        text.contains("partita_table_invalid_records_total{topic=\"ref.customers\"} 3"),
        "{text}"
    );
}

#[test]
fn the_applier_names_what_it_cannot_read() {
    let table = SharedTable::new();
    let metrics = Arc::new(TableMetrics::default());
    let a = TableApplier::new(
        "t",
        TableFormat::ConnectJson,
        TableFormat::ConnectJson,
        table.clone(),
        metrics.clone(),
    );
    assert_eq!(
        a.decode(None, Some(b"x")).unwrap_err(),
        "the record has no key"
    );
    assert!(
        a.decode(Some(b"C1"), None)
            .unwrap_err()
            .starts_with("key: not a Kafka Connect JSON envelope"),
    );
    assert_eq!(
        a.decode(Some(br#"{"schema":null,"payload":null}"#), None)
            .unwrap_err(),
        "key: the envelope's payload is null"
    );
    assert!(
        a.decode(Some(br#"{"schema":null,"payload":"k"}"#), Some(b"[1]"))
            .unwrap_err()
            .starts_with("value: not a Kafka Connect JSON envelope")
    );
    assert!(!a.apply(0, 7, Some(b"C1"), Some(b"{}")));
    assert_eq!(metrics.invalid.load(Relaxed), 1);
    assert!(a.apply(0, 8, Some(br#"{"schema":null,"payload":"k"}"#), None));
    assert!(table.is_empty());
}

#[test]
fn a_table_topic_that_cannot_be_read_stops_the_start_with_the_stage_and_table() {
    let c = Cluster::new(&[("ref.rates", 1)]);
    let stages = [stage(vec![TableSpec::new("rates", "ref.missing")])];
    let partitions = TopicPartitions::from([("ref.missing".to_string(), 1)]);
    let err = match TableFeeds::start(&c.kafka(), &stages, &partitions, &Metrics::new()) {
        Ok(_) => panic!("a missing topic cannot be read"),
        Err(e) => e,
    };
    assert!(
        err.starts_with("stage \"s\": table rates: cannot read ref.missing: "),
        "{err}"
    );
}
