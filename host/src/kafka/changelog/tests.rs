//! Tests of the changelog: naming, sending change sets with their batch,
//! the acknowledged offset in batch order, and restores against
//! librdkafka's mock cluster.

use std::time::Duration;

use rdkafka::mocking::MockCluster;

use super::*;
use crate::state::DiskOptions;

fn changes(entries: &[(&str, Option<&str>)]) -> ChangeSet {
    entries
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
        .collect()
}

fn wait_done(acks: &Acks) {
    let end = Instant::now() + Duration::from_secs(30);
    while !acks.is_done() {
        assert!(Instant::now() < end, "no delivery report");
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

fn options() -> DiskOptions {
    DiskOptions {
        cache_bytes: 1 << 20,
        max_dirty_bytes: 1 << 20,
        flush_interval: Duration::from_secs(3600),
        filter_bytes: 1 << 20,
    }
}

#[test]
fn the_changelog_of_a_stage_is_named_after_its_group() {
    let kafka = KafkaConfig::new("b", "orders");
    assert_eq!(topic(&kafka, "count"), "orders.count.changelog");
}

#[tokio::test]
async fn a_changelog_with_another_partition_count_is_refused() {
    let kafka = KafkaConfig::new("127.0.0.1:1", "g");
    let existing: TopicPartitions = [("g.count.changelog".to_string(), 2)].into();
    let err = ensure_topics(&kafka, &existing, &[("g.count.changelog".into(), 4)])
        .await
        .unwrap_err();
    assert!(
        err.contains(
            "the changelog topic g.count.changelog has 2 partitions, its stage's input has 4"
        ),
        "{err}"
    );
    ensure_topics(&kafka, &existing, &[("g.count.changelog".into(), 2)])
        .await
        .unwrap();
}

#[test]
fn change_sets_are_sent_and_their_offsets_tracked_per_batch() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("g.s.changelog", 2, 1).unwrap();
    let kafka = KafkaConfig::new(cluster.bootstrap_servers(), "g");
    let producer = Producer::new(&kafka).unwrap();
    let mut w = ChangelogWriter::new("g.s.changelog", 1);
    assert_eq!(w.topic(), "g.s.changelog");

    // Batch 1 stays open (its outputs are still being sent).
    let first = Acks::new(std::thread::current());
    let sent = w
        .send(
            &producer,
            &changes(&[("a", Some("1")), ("b", None)]),
            &first,
        )
        .unwrap();
    assert_eq!(sent, 2);
    // Batch 2 is complete and acknowledged.
    let second = Acks::new(std::thread::current());
    w.send(&producer, &changes(&[("c", Some("3"))]), &second)
        .unwrap();
    second.close();
    wait_done(&second);
    assert_eq!(second.tracked_offset(), 2, "third record of partition 1");
    first.close();
    wait_done(&first);
    assert_eq!(first.tracked_offset(), 1, "second record of partition 1");

    // An empty change set sends nothing and tracks nothing.
    let third = Acks::new(std::thread::current());
    assert_eq!(w.send(&producer, &ChangeSet::new(), &third).unwrap(), 0);
    third.close();
    assert!(third.is_done());
    assert_eq!(third.tracked_offset(), -1);
}

#[test]
fn a_restore_reads_from_the_checkpoint_to_the_end() {
    let cluster = MockCluster::new(1).unwrap();
    let topic = "g.count.changelog";
    cluster.create_topic(topic, 2, 1).unwrap();
    let kafka = KafkaConfig::new(cluster.bootstrap_servers(), "g");
    let producer = Producer::new(&kafka).unwrap();
    let mut w = ChangelogWriter::new(topic, 1);
    let send = |w: &mut ChangelogWriter, c: ChangeSet| {
        let acks = Acks::new(std::thread::current());
        w.send(&producer, &c, &acks).unwrap();
        acks.close();
        wait_done(&acks);
    };
    send(&mut w, changes(&[("a", Some("1")), ("b", Some("2"))]));
    send(
        &mut w,
        changes(&[("a", Some("3")), ("b", None), ("c", Some("4"))]),
    );
    // Another partition's state is not read.
    let mut other = ChangelogWriter::new(topic, 0);
    send(&mut other, changes(&[("z", Some("9"))]));

    let dir = tempfile::tempdir().unwrap();
    let stores = LocalStores::new(dir.path(), "g", options(), false);
    let opened = stores.open("count", 1).unwrap();
    let (mut store, r) = Restorer::new(&kafka)
        .unwrap()
        .restore(topic, 1, &stores, opened)
        .unwrap();
    assert_eq!((r.records, r.from, r.high, r.wiped), (5, 0, 5, None));
    assert_eq!(store.get(b"a").unwrap(), Some(b"3".to_vec()));
    assert_eq!(store.get(b"b").unwrap(), None);
    assert_eq!(store.get(b"c").unwrap(), Some(b"4".to_vec()));
    assert_eq!(store.get(b"z").unwrap(), None);
    assert_eq!(store.checkpoint(), Some(4));
    store.close().unwrap();
    drop(store);

    // Two more records: the next restore reads only those.
    send(&mut w, changes(&[("d", Some("5")), ("a", None)]));
    let opened = stores.open("count", 1).unwrap();
    assert!(opened.was_clean);
    let (mut store, r) = Restorer::new(&kafka)
        .unwrap()
        .restore(topic, 1, &stores, opened)
        .unwrap();
    assert_eq!((r.records, r.from, r.high), (2, 5, 7));
    assert_eq!(store.get(b"a").unwrap(), None);
    assert_eq!(store.get(b"d").unwrap(), Some(b"5".to_vec()));
    assert_eq!(store.get(b"c").unwrap(), Some(b"4".to_vec()));

    // Nothing new: nothing read.
    drop(store);
    let opened = stores.open("count", 1).unwrap();
    let (_, r) = Restorer::new(&kafka)
        .unwrap()
        .restore(topic, 1, &stores, opened)
        .unwrap();
    assert_eq!((r.records, r.from, r.high), (0, 7, 7));
}

#[test]
fn a_store_ahead_of_its_changelog_is_rebuilt() {
    let cluster = MockCluster::new(1).unwrap();
    let topic = "g.count.changelog";
    cluster.create_topic(topic, 1, 1).unwrap();
    let kafka = KafkaConfig::new(cluster.bootstrap_servers(), "g");
    let producer = Producer::new(&kafka).unwrap();
    let acks = Acks::new(std::thread::current());
    let mut w = ChangelogWriter::new(topic, 0);
    w.send(&producer, &changes(&[("a", Some("1"))]), &acks)
        .unwrap();
    acks.close();
    wait_done(&acks);

    let dir = tempfile::tempdir().unwrap();
    let stores = LocalStores::new(dir.path(), "g", options(), false);
    // A store that saw 100 records of an older changelog of the same name.
    let mut opened = stores.open("count", 0).unwrap();
    opened
        .store
        .apply_changelog(b"old", Some(b"x"), 99)
        .unwrap();
    opened.store.flush().unwrap();
    let (mut store, r) = Restorer::new(&kafka)
        .unwrap()
        .restore(topic, 0, &stores, opened)
        .unwrap();
    assert_eq!(r.wiped, Some("ahead of its changelog"));
    assert_eq!((r.records, r.from, r.high), (1, 0, 1));
    assert_eq!(store.get(b"old").unwrap(), None);
    assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(store.checkpoint(), Some(0));
}

#[test]
fn a_restore_without_a_reachable_cluster_fails_naming_the_changelog() {
    // A port where nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kafka = KafkaConfig::new(format!("127.0.0.1:{port}"), "g");
    let dir = tempfile::tempdir().unwrap();
    let stores = LocalStores::new(dir.path(), "g", options(), false);
    let opened = stores.open("count", 2).unwrap();
    let err = Restorer::within(&kafka, Duration::from_secs(2))
        .unwrap()
        .restore("g.count.changelog", 2, &stores, opened)
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("g.count.changelog/2: cannot read the changelog's end"),
        "{text}"
    );
}
