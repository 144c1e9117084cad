//! Reference tables kept up to date from their compacted topics.
//!
//! Each distinct table topic (with its key and value formats) gets one
//! [`TableFeed`]: a thread with its own consumer that reads every partition
//! from the beginning and keeps applying what arrives for the whole run,
//! the latest value per key winning and tombstones (null values) deleting.
//! Every stage and partition that names the topic reads the same
//! [`SharedTable`], so an update is seen by the next records processed.
//!
//! At start a feed notes each partition's high watermark; it has *caught
//! up* once it has read every partition up to that end. [`TableFeeds::wait`]
//! holds the pipeline until every table that the stages wait for
//! (`wait = true`, the default) has caught up. Partitions added to a table
//! topic while running are not read until the next start.
//!
//! A record whose key or value its format cannot read is logged with its
//! topic, partition and offset, counted in
//! `partita_table_invalid_records_total`, and skipped.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

use super::admin::TopicPartitions;
use super::client::{LogContext, table_reader_config};
use crate::config::{KafkaConfig, StageConfig, TableFormat, TableSpec};
use crate::metrics::{Metrics, TableMetrics};
use crate::tables::{MemoryTables, SharedTable, connect};

/// How long to wait for a partition's watermarks at start.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(30);
/// How many invalid records of one table are logged one by one; after
/// that, one in every [`LOG_EVERY`].
const LOG_FIRST: u64 = 20;
/// See [`LOG_FIRST`].
const LOG_EVERY: u64 = 1000;

/// What identifies a feed: the topic and how to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FeedKey {
    topic: String,
    format: TableFormat,
    key_format: TableFormat,
}

impl FeedKey {
    fn of(spec: &TableSpec) -> FeedKey {
        FeedKey {
            topic: spec.topic.clone(),
            format: spec.format,
            key_format: spec.key_format,
        }
    }
}

/// Applies the records of one table topic to its table.
pub struct TableApplier {
    topic: String,
    format: TableFormat,
    key_format: TableFormat,
    table: SharedTable,
    metrics: Arc<TableMetrics>,
}

impl TableApplier {
    /// An applier of `topic`'s records, read as `format` (values) and
    /// `key_format` (keys), into `table`.
    pub fn new(
        topic: &str,
        format: TableFormat,
        key_format: TableFormat,
        table: SharedTable,
        metrics: Arc<TableMetrics>,
    ) -> TableApplier {
        TableApplier {
            topic: topic.to_string(),
            format,
            key_format,
            table,
            metrics,
        }
    }

    /// Applies one record: an upsert, a delete (null value or null
    /// payload), or nothing when the record cannot be read (logged and
    /// counted). Returns whether it was applied.
    pub fn apply(
        &self,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> bool {
        match self.decode(key, value) {
            Ok((key, value)) => {
                self.table.apply(key, value);
                self.metrics.applied.fetch_add(1, Relaxed);
                self.metrics.keys.store(self.table.len() as u64, Relaxed);
                true
            }
            Err(why) => {
                let n = self.metrics.invalid.fetch_add(1, Relaxed) + 1;
                if n <= LOG_FIRST || n.is_multiple_of(LOG_EVERY) {
                    tracing::error!(
                        "table topic {} partition {partition} offset {offset}: {why}; record skipped ({n} skipped so far)",
                        self.topic
                    );
                }
                false
            }
        }
    }

    fn decode(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
        let key = key.ok_or("the record has no key")?;
        let key = match self.key_format {
            TableFormat::Raw => key.to_vec(),
            TableFormat::ConnectJson => connect::unwrap(key, true)
                .map_err(|e| format!("key: {e}"))?
                .ok_or("key: the envelope's payload is null")?,
        };
        let value = match (value, self.format) {
            (None, _) => None,
            (Some(v), TableFormat::Raw) => Some(v.to_vec()),
            (Some(v), TableFormat::ConnectJson) => {
                connect::unwrap(v, false).map_err(|e| format!("value: {e}"))?
            }
        };
        Ok((key, value))
    }
}

/// One table topic, read for the whole run by its own thread.
pub struct TableFeed {
    key: FeedKey,
    table: SharedTable,
    metrics: Arc<TableMetrics>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TableFeed {
    /// Starts reading `topic` (which has `partitions` partitions) into a
    /// new table. Blocks while it asks for the partitions' watermarks.
    pub fn start(
        kafka: &KafkaConfig,
        topic: &str,
        partitions: i32,
        format: TableFormat,
        key_format: TableFormat,
        metrics: Arc<TableMetrics>,
    ) -> Result<TableFeed, KafkaError> {
        let context = LogContext::new(format!("table topic {topic}"));
        let consumer: BaseConsumer<LogContext> =
            BaseConsumer::from_config_and_context(&table_reader_config(kafka), context)?;
        let mut tpl = TopicPartitionList::new();
        let mut ends = Vec::with_capacity(partitions.max(0) as usize);
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
            let (low, high) = consumer.fetch_watermarks(topic, p, WATERMARK_TIMEOUT)?;
            ends.push((low, high));
        }
        consumer.assign(&tpl)?;
        let table = SharedTable::new();
        metrics.caught_up.store(false, Relaxed);
        let applier = TableApplier::new(topic, format, key_format, table.clone(), metrics.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, metrics) = (stop.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("table-{topic}"))
                .spawn(move || read(consumer, applier, ends, &metrics, &stop))
                .map_err(|e| {
                    KafkaError::ClientCreation(format!("cannot start the reader thread: {e}"))
                })?
        };
        Ok(TableFeed {
            key: FeedKey {
                topic: topic.to_string(),
                format,
                key_format,
            },
            table,
            metrics,
            stop,
            thread: Some(thread),
        })
    }

    /// The table, as far as it has been read.
    pub fn table(&self) -> SharedTable {
        self.table.clone()
    }

    /// True once every partition was read up to the end it had at start.
    pub fn caught_up(&self) -> bool {
        self.metrics.caught_up.load(Relaxed)
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.key.topic
    }
}

impl Drop for TableFeed {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reader thread: applies records until `stop`.
fn read(
    consumer: BaseConsumer<LogContext>,
    applier: TableApplier,
    ends: Vec<(i64, i64)>,
    metrics: &TableMetrics,
    stop: &AtomicBool,
) {
    let topic = applier.topic.clone();
    // Partitions not yet read up to their high watermark at start.
    let mut behind: BTreeSet<i32> = ends
        .iter()
        .enumerate()
        .filter(|(_, (low, high))| high > low)
        .map(|(p, _)| p as i32)
        .collect();
    let started = Instant::now();
    let mut last_log = Instant::now();
    let mut records = 0u64;
    let mut caught_up = false;
    while !stop.load(Relaxed) {
        if !caught_up && behind.is_empty() {
            caught_up = true;
            metrics.caught_up.store(true, Relaxed);
            tracing::info!(
                "table topic {topic}: caught up, {} keys from {records} records in {:.1} s; following updates",
                applier.table.len(),
                started.elapsed().as_secs_f64()
            );
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                records += 1;
                let (p, offset) = (m.partition(), m.offset());
                applier.apply(p, offset, m.key(), m.payload());
                if let Some((_, high)) = ends.get(p as usize)
                    && offset + 1 >= *high
                {
                    behind.remove(&p);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                behind.remove(&p);
            }
            Some(Err(e)) => tracing::warn!("table topic {topic}: {e}"),
        }
        if !caught_up && last_log.elapsed() > Duration::from_secs(5) {
            tracing::info!(
                "table topic {topic}: {records} records read, {} partitions to go",
                behind.len()
            );
            last_log = Instant::now();
        }
    }
}

/// Every reference table of a run, one feed per distinct topic and format.
#[derive(Default)]
pub struct TableFeeds {
    feeds: Vec<TableFeed>,
}

impl TableFeeds {
    /// Starts a feed for each distinct table topic (and format) that the
    /// `stages` name. Blocks while it asks for the watermarks.
    pub fn start(
        kafka: &KafkaConfig,
        stages: &[StageConfig],
        partitions: &TopicPartitions,
        metrics: &Metrics,
    ) -> Result<TableFeeds, String> {
        let mut feeds = TableFeeds::default();
        for stage in stages {
            for spec in &stage.tables {
                if feeds.find(spec).is_some() {
                    continue;
                }
                let n = partitions.get(&spec.topic).copied().unwrap_or(1);
                let feed = TableFeed::start(
                    kafka,
                    &spec.topic,
                    n,
                    spec.format,
                    spec.key_format,
                    metrics.table(&spec.topic),
                )
                .map_err(|e| {
                    format!(
                        "stage \"{}\": table {}: cannot read {}: {e}",
                        stage.name, spec.name, spec.topic
                    )
                })?;
                feeds.feeds.push(feed);
            }
        }
        Ok(feeds)
    }

    fn find(&self, spec: &TableSpec) -> Option<&TableFeed> {
        let key = FeedKey::of(spec);
        self.feeds.iter().find(|f| f.key == key)
    }

    /// The tables of `stage`, by the names it gives them.
    pub fn for_stage(&self, stage: &StageConfig) -> MemoryTables {
        let tables = MemoryTables::new();
        for spec in &stage.tables {
            if let Some(feed) = self.find(spec) {
                tables.share(&spec.name, feed.table());
            }
        }
        tables
    }

    /// The topics of the tables that some stage waits for and that have
    /// not caught up yet.
    pub fn behind(&self, stages: &[StageConfig]) -> Vec<String> {
        let mut topics: Vec<String> = stages
            .iter()
            .flat_map(|s| &s.tables)
            .filter(|spec| spec.wait)
            .filter_map(|spec| self.find(spec))
            .filter(|f| !f.caught_up())
            .map(|f| f.topic().to_string())
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// Returns once every table that a stage waits for has caught up,
    /// logging which ones it waits for every five seconds.
    pub async fn wait(&self, stages: &[StageConfig]) {
        let mut last_log = Instant::now();
        loop {
            let behind = self.behind(stages);
            if behind.is_empty() {
                return;
            }
            if last_log.elapsed() >= Duration::from_secs(5) {
                tracing::info!(
                    "waiting for reference tables to catch up: {}",
                    behind.join(", ")
                );
                last_log = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests;
