//! Kafka helpers over rdkafka for tests and scripts: create topics, produce
//! many records fast, read a topic to its end, read a group's committed
//! offsets.
//!
//! Every call is blocking and bounded by the client's timeout, and every
//! error names the topic or group it concerns.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The key, if any.
    pub key: Option<Vec<u8>>,
    /// The value, if any.
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Timestamp in milliseconds since the Unix epoch; the producer's clock
    /// when absent.
    pub timestamp: Option<i64>,
}

impl Record {
    /// A record with a UTF-8 key and value and no headers.
    pub fn new(key: &str, value: &str) -> Record {
        Record {
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            ..Record::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &[u8]) -> Record {
        self.headers.push((name.to_string(), value.to_vec()));
        self
    }
}

/// A record read from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    /// Topic it was read from.
    pub topic: String,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// The key, if any.
    pub key: Option<Vec<u8>>,
    /// The value, if any.
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Timestamp in milliseconds since the Unix epoch, if the record has one.
    pub timestamp: Option<i64>,
}

impl Consumed {
    /// The key as UTF-8 text (lossy); empty when absent.
    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }

    /// The value as UTF-8 text (lossy); empty when absent.
    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of the first header named `name` as UTF-8 text (lossy).
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
}

/// Low and high watermark of one partition: the first offset still stored
/// and the offset the next record will get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// First stored offset.
    pub low: i64,
    /// Offset of the next record to be written (the end).
    pub high: i64,
}

/// A client of one Kafka-protocol cluster. Clones share one producer, kept
/// between calls (an idempotent producer takes about half a second to
/// start); calls to [`Kafka::produce`] take turns on it.
#[derive(Clone)]
pub struct Kafka {
    bootstrap: String,
    timeout: Duration,
    producer: Arc<Mutex<Option<BaseProducer<Deliveries>>>>,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka")
            .field("bootstrap", &self.bootstrap)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Kafka {
    /// A client of the cluster at `bootstrap` (`host:port[,host:port]`),
    /// with a 30 s timeout per operation.
    pub fn new(bootstrap: &str) -> Kafka {
        Kafka {
            bootstrap: bootstrap.to_string(),
            timeout: Duration::from_secs(30),
            producer: Arc::default(),
        }
    }

    /// The same client with another timeout per operation (and a producer
    /// of its own, whose records time out after it).
    pub fn with_timeout(self, timeout: Duration) -> Kafka {
        Kafka {
            timeout,
            producer: Arc::default(),
            ..self
        }
    }

    /// The bootstrap servers.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The timeout per operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A client configuration with the bootstrap servers set.
    pub fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }

    /// Creates `topic` with `partitions` partitions and the given topic
    /// configuration (for example `("cleanup.policy", "compact")`). Fails if
    /// it exists.
    pub fn create_topic_with(
        &self,
        topic: &str,
        partitions: i32,
        topic_config: &[(&str, &str)],
    ) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = self
            .config()
            .create()
            .context("cannot create the Kafka admin client")?;
        let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        for (k, v) in topic_config {
            new = new.set(k, v);
        }
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .context("cannot start a runtime for the admin client")?;
        let results = runtime
            .block_on(async {
                tokio::time::timeout(self.timeout, admin.create_topics([&new], &options)).await
            })
            .map_err(|_| {
                anyhow!(
                    "creating topic {topic}: no answer within {:?}",
                    self.timeout
                )
            })?
            .with_context(|| format!("creating topic {topic}"))?;
        for result in results {
            result.map_err(|(name, code)| anyhow!("creating topic {name}: {code}"))?;
        }
        // Wait until the metadata shows every partition, so that the next
        // produce or consume finds them.
        self.wait_until(
            &format!("topic {topic} to show {partitions} partitions"),
            || Ok(self.partition_count(topic).unwrap_or(0) == partitions as usize),
        )
    }

    /// Creates `topic` with `partitions` partitions. Fails if it exists.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        self.create_topic_with(topic, partitions, &[])
    }

    /// Creates `topic` with `partitions` partitions unless it exists; leaves
    /// an existing topic as it is.
    pub fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<()> {
        if self.partition_count(topic)? > 0 {
            return Ok(());
        }
        self.create_topic(topic, partitions)
    }

    /// The number of partitions of `topic` (0 if it does not exist).
    pub fn partition_count(&self, topic: &str) -> Result<usize> {
        let consumer = self.reader()?;
        let metadata = consumer
            .fetch_metadata(Some(topic), self.timeout)
            .with_context(|| format!("cannot read the metadata of topic {topic}"))?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map_or(0, |t| t.partitions().len()))
    }

    /// Produces `records` to `topic`, partitioned by key with the Java
    /// client's partitioner (`murmur2_random`, as Partita and Kafka's own
    /// tools do), with idempotence on, and waits until the broker
    /// acknowledged every one. Returns where each record landed, in input
    /// order, as the delivery reports say: a report for a record retried
    /// across a broker restart may carry a wrong or missing (-1) offset, so
    /// read the topic back when positions matter after such a restart.
    pub fn produce(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<Vec<Position>> {
        let mut slot = self.producer.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(self.new_producer()?);
        }
        let producer = slot.as_ref().expect("just set");
        let result = self.produce_with(producer, topic, records);
        if result.is_err() {
            // Records may still be queued or reported late: start afresh.
            *slot = None;
        }
        result
    }

    fn new_producer(&self) -> Result<BaseProducer<Deliveries>> {
        self.config()
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "1000000")
            .set("message.timeout.ms", self.timeout.as_millis().to_string())
            .create_with_context(Deliveries::default())
            .context("cannot create the Kafka producer")
    }

    fn produce_with(
        &self,
        producer: &BaseProducer<Deliveries>,
        topic: &str,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<Vec<Position>> {
        producer
            .context()
            .done
            .lock()
            .expect("not poisoned")
            .clear();
        let mut count = 0;
        for (i, record) in records.into_iter().enumerate() {
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (name, value) in &record.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value),
                });
            }
            let mut base: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(topic, i).headers(headers);
            if let Some(key) = &record.key {
                base = base.key(key);
            }
            if let Some(value) = &record.value {
                base = base.payload(value);
            }
            if let Some(ts) = record.timestamp {
                base = base.timestamp(ts);
            }
            loop {
                match producer.send(base) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        base = back;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => bail!("producing record {i} to {topic}: {e}"),
                }
            }
            count = i + 1;
            if count % 1000 == 0 {
                producer.poll(Duration::ZERO);
            }
        }
        // Longer than the records' own timeout, so that each one is either
        // acknowledged or reported as failed by then.
        producer
            .flush(self.timeout + Duration::from_secs(5))
            .with_context(|| format!("producing to {topic}: not acknowledged in time"))?;
        let done = std::mem::take(&mut *producer.context().done.lock().expect("not poisoned"));
        let mut positions = vec![None; count];
        for (i, result) in done {
            let position = result.map_err(|e| anyhow!("producing record {i} to {topic}: {e}"))?;
            positions[i] = Some(position);
        }
        positions
            .into_iter()
            .enumerate()
            .map(|(i, p)| p.ok_or_else(|| anyhow!("producing record {i} to {topic}: no report")))
            .collect()
    }

    /// Low and high watermarks of every partition of `topic`, by partition.
    pub fn watermarks(&self, topic: &str) -> Result<Vec<Watermarks>> {
        let partitions = self.partition_count(topic)?;
        if partitions == 0 {
            bail!("topic {topic} does not exist");
        }
        let consumer = self.reader()?;
        (0..partitions as i32)
            .map(|p| {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p, self.timeout)
                    .with_context(|| format!("cannot read the watermarks of {topic}/{p}"))?;
                Ok(Watermarks { low, high })
            })
            .collect()
    }

    /// The number of records stored in `topic` (sum of high minus low
    /// watermarks).
    pub fn count(&self, topic: &str) -> Result<i64> {
        Ok(self.watermarks(topic)?.iter().map(|w| w.high - w.low).sum())
    }

    /// Reads every record of `topic` from the low to the high watermark that
    /// each partition has when the call starts. Records come back ordered by
    /// partition, then offset.
    pub fn consume_all(&self, topic: &str) -> Result<Vec<Consumed>> {
        let marks = self.watermarks(topic)?;
        let consumer = self.reader()?;
        let mut assignment = TopicPartitionList::new();
        // Next offset expected and end offset, per partition still to read.
        let mut pending: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        for (p, w) in marks.iter().enumerate() {
            if w.high > w.low {
                assignment
                    .add_partition_offset(topic, p as i32, Offset::Offset(w.low))
                    .context("cannot build the assignment")?;
                pending.insert(p as i32, (w.low, w.high));
            }
        }
        let total: i64 = marks.iter().map(|w| w.high - w.low).sum();
        let mut records = Vec::with_capacity(total as usize);
        if pending.is_empty() {
            return Ok(records);
        }
        consumer
            .assign(&assignment)
            .with_context(|| format!("cannot assign {topic}"))?;
        let deadline = Instant::now() + self.timeout;
        while !pending.is_empty() {
            if Instant::now() >= deadline {
                bail!(
                    "reading {topic} to its end: {} of {total} records read within {:?}; \
                     partitions not at their end (partition: next, end): {pending:?}",
                    records.len(),
                    self.timeout
                );
            }
            let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let message = message.with_context(|| format!("reading {topic}"))?;
            let partition = message.partition();
            let Some((next, end)) = pending.get_mut(&partition) else {
                continue;
            };
            if message.offset() < *next {
                continue;
            }
            *next = message.offset() + 1;
            let done = *next >= *end;
            if message.offset() < *end {
                records.push(Consumed {
                    topic: topic.to_string(),
                    partition,
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                    headers: message
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    timestamp: message.timestamp().to_millis(),
                });
            }
            if done {
                pending.remove(&partition);
            }
        }
        records.sort_by_key(|r| (r.partition, r.offset));
        Ok(records)
    }

    /// The offsets that `group` committed for each partition of `topic`, by
    /// partition; `None` where it committed none.
    pub fn committed(&self, group: &str, topic: &str) -> Result<Vec<Option<i64>>> {
        let partitions = self.partition_count(topic)?;
        if partitions == 0 {
            bail!("topic {topic} does not exist");
        }
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .context("cannot create a Kafka consumer")?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition(topic, p);
        }
        let committed = consumer
            .committed_offsets(tpl, self.timeout)
            .with_context(|| format!("cannot read the offsets of group {group} on {topic}"))?;
        Ok((0..partitions as i32)
            .map(
                |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                },
            )
            .collect())
    }

    /// How many records of `topic` lie past what `group` committed (all of
    /// a partition where it committed nothing).
    pub fn lag(&self, group: &str, topic: &str) -> Result<i64> {
        let marks = self.watermarks(topic)?;
        let committed = self.committed(group, topic)?;
        Ok(marks
            .iter()
            .zip(committed)
            .map(|(w, c)| w.high - c.unwrap_or(w.low).max(w.low))
            .sum())
    }

    /// Polls `condition` every 200 ms until it holds, failing after the
    /// client's timeout with `what` in the message; an error from
    /// `condition` fails at once.
    pub fn wait_until(&self, what: &str, condition: impl FnMut() -> Result<bool>) -> Result<()> {
        wait_until(self.timeout, what, condition)
    }

    /// A consumer with no group, for metadata, watermarks and reading.
    fn reader(&self) -> Result<BaseConsumer> {
        self.config()
            .set("group.id", "partita-tests-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .context("cannot create a Kafka consumer")
    }
}

/// Polls `condition` every 200 ms until it holds, failing after `timeout`
/// with `what` in the message; an error from `condition` fails at once.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if condition().with_context(|| format!("waiting for {what}"))? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        sleep(Duration::from_millis(200));
    }
}

/// Producer context that records each delivery report by record index.
#[derive(Default)]
struct Deliveries {
    done: Mutex<Vec<(usize, Result<Position, KafkaError>)>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let outcome = match result {
            Ok(m) => Ok(Position {
                partition: m.partition(),
                offset: m.offset(),
            }),
            Err((e, _)) => Err(e.clone()),
        };
        self.done
            .lock()
            .expect("not poisoned")
            .push((index, outcome));
    }
}
