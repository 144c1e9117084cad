//! Reference tables: each table topic (compacted, keyed) is read from its
//! beginning to its end when the run starts, the latest value per key
//! winning and tombstones deleting. The table then stays as loaded for the
//! rest of the run.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

use super::client::{LogContext, table_reader_config};
use crate::config::KafkaConfig;
use crate::tables::MemoryTables;

/// Reads table `name` from `topic` (with `partitions` partitions) into
/// `tables`. Returns the number of keys loaded, or `None` when `stop` was
/// set before the end was reached.
pub fn load_table(
    kafka: &KafkaConfig,
    name: &str,
    topic: &str,
    partitions: i32,
    tables: &MemoryTables,
    stop: &AtomicBool,
) -> Result<Option<usize>, KafkaError> {
    let context = LogContext::new(format!("table {name}"));
    let consumer: BaseConsumer<LogContext> =
        BaseConsumer::from_config_and_context(&table_reader_config(kafka), context)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut open: BTreeSet<i32> = (0..partitions).collect();
    let mut table = crate::tables::Table::new();
    let mut last_log = Instant::now();
    let mut records = 0u64;
    while !open.is_empty() {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                records += 1;
                match (m.key(), m.payload()) {
                    (Some(k), Some(v)) => {
                        table.insert(k.to_vec(), v.to_vec());
                    }
                    (Some(k), None) => {
                        table.remove(k);
                    }
                    (None, _) => tracing::debug!(
                        "table {name}: record without a key at {topic}/{} offset {} ignored",
                        m.partition(),
                        m.offset()
                    ),
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => tracing::warn!("table {name}: reading {topic}: {e}"),
        }
        if last_log.elapsed() > Duration::from_secs(5) {
            tracing::info!(
                "table {name}: {records} records read from {topic}, {} partitions to go",
                open.len()
            );
            last_log = Instant::now();
        }
    }
    let keys = table.len();
    tables.insert_table(name, table);
    tracing::info!("table {name}: loaded {keys} keys from {topic}");
    Ok(Some(keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::Tables;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

    #[test]
    fn a_table_is_read_to_its_end_with_tombstones_applied() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("ref.rates", 2, 1).unwrap();
        cluster.create_topic("ref.empty", 1, 1).unwrap();
        let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        let send = |p: i32, k: &str, v: Option<&str>| {
            let mut r = BaseRecord::<str, str>::to("ref.rates").partition(p).key(k);
            if let Some(v) = v {
                r = r.payload(v);
            }
            producer.send(r).map_err(|(e, _)| e).unwrap();
        };
        send(0, "EUR", Some("1.0"));
        send(1, "USD", Some("1.1"));
        send(0, "EUR", Some("1.2"));
        send(1, "GBP", Some("0.9"));
        send(1, "GBP", None);
        producer.flush(Duration::from_secs(10)).unwrap();

        let kafka = KafkaConfig::new(cluster.bootstrap_servers(), "g");
        let tables = MemoryTables::new();
        let stop = AtomicBool::new(false);
        assert_eq!(
            load_table(&kafka, "rates", "ref.rates", 2, &tables, &stop).unwrap(),
            Some(2)
        );
        assert_eq!(tables.lookup("rates", b"EUR"), Some(b"1.2".to_vec()));
        assert_eq!(tables.lookup("rates", b"USD"), Some(b"1.1".to_vec()));
        assert_eq!(tables.lookup("rates", b"GBP"), None);
        assert_eq!(
            load_table(&kafka, "empty", "ref.empty", 1, &tables, &stop).unwrap(),
            Some(0)
        );
        stop.store(true, Ordering::Relaxed);
        assert_eq!(
            load_table(&kafka, "again", "ref.rates", 2, &tables, &stop).unwrap(),
            None
        );
    }
}
