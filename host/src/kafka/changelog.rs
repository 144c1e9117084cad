//! The changelog of a stage's state: one compacted topic per stage,
//! `<group>.<stage>.changelog`, with as many partitions as the stage's
//! input; partition p holds the state of input partition p.
//!
//! - [`ensure_topics`]: creates the missing changelogs at start
//!   (`cleanup.policy=compact`), and refuses one whose partition count
//!   differs from its stage's input.
//! - [`ChangelogWriter`]: a worker sends each batch's change set as records
//!   (key = state key, value = state value, no value = deleted) with the
//!   batch's outputs and under the batch's [`Acks`], which track the
//!   highest changelog offset acknowledged; the worker's ledger turns
//!   those into the store's checkpoint, in batch order.
//! - [`Restorer`]: on assignment, reads the changelog from the store's
//!   checkpoint + 1 to the end and applies it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::admin::TopicPartitions;
use super::client::{LogContext, table_reader_config};
use super::produce::{Acks, OutRecord, Producer};
use crate::config::{Guarantee, KafkaConfig};
use crate::state::{ChangeSet, DiskState, LocalStores, OpenedStore, StateStore};

/// How long a restore may go without reading anything before it fails.
const RESTORE_STALL: Duration = Duration::from_secs(60);
/// How long one watermark request may take.
const WATERMARKS_TIMEOUT: Duration = Duration::from_secs(10);

/// The changelog topic of `stage`: `<group>.<stage>.changelog`.
pub fn topic(kafka: &KafkaConfig, stage: &str) -> String {
    format!("{}.changelog", kafka.group_id(stage))
}

/// Creates each missing changelog of `wanted` (topic, partitions) as a
/// compacted topic, and checks the partition count of those that exist
/// (`existing`: every topic of the cluster).
pub async fn ensure_topics(
    kafka: &KafkaConfig,
    existing: &TopicPartitions,
    wanted: &[(String, i32)],
) -> Result<(), String> {
    let mut problems = Vec::new();
    let mut missing = Vec::new();
    for (topic, partitions) in wanted {
        match existing.get(topic) {
            Some(n) if n == partitions => {}
            Some(n) => problems.push(format!(
                "the changelog topic {topic} has {n} partitions, its stage's input has {partitions}; \
                 delete it (the state is rebuilt from an empty changelog) or give it {partitions}"
            )),
            None => missing.push((topic.clone(), *partitions)),
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    if missing.is_empty() {
        return Ok(());
    }
    super::admin::create_compacted(kafka, &missing, "changelog").await
}

/// Sends a worker's change sets to its changelog partition.
pub struct ChangelogWriter {
    topic: Arc<str>,
    partition: i32,
}

impl ChangelogWriter {
    /// The writer of partition `partition` of `topic`.
    pub fn new(topic: &str, partition: i32) -> Self {
        ChangelogWriter {
            topic: topic.into(),
            partition,
        }
    }

    /// The changelog topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends `changes` as changelog records, part of the batch `acks` (so
    /// the batch's offsets are committed only once they are acknowledged
    /// too, and track the changelog offset acknowledged). Returns how many
    /// records were sent.
    pub fn send(
        &mut self,
        producer: &Producer,
        changes: &ChangeSet,
        acks: &Arc<Acks>,
    ) -> Result<usize, KafkaError> {
        if changes.is_empty() {
            return Ok(0);
        }
        acks.track_offsets_of(&self.topic);
        for (key, value) in changes {
            let record = OutRecord {
                key: Some(key),
                value,
                headers: None,
                timestamp: None,
                partition: Some(self.partition),
            };
            producer.send(&self.topic, record, acks)?;
        }
        Ok(changes.len())
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Changelog records read and applied.
    pub records: u64,
    /// The first changelog offset read (the checkpoint + 1, or the start
    /// of the changelog).
    pub from: i64,
    /// The changelog's end (high watermark) at the start of the restore.
    pub high: i64,
    /// Set when the local store was emptied first, and why.
    pub wiped: Option<&'static str>,
    /// How long the restore took.
    pub elapsed: Duration,
}

/// Settings of the consumer that reads a changelog partition: no group
/// commits, end-of-partition events, `read_committed` under exactly-once
/// (records of aborted transactions are never applied).
fn restore_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = table_reader_config(kafka);
    c.set("client.id", "partita-restore")
        .set("group.id", format!("{}.changelog", kafka.group));
    if kafka.guarantee == Guarantee::ExactlyOnce {
        c.set("isolation.level", "read_committed");
    }
    c
}

/// Restores state stores from their changelogs. One per run: it keeps one
/// client for the changelogs' watermarks, and starts a consumer for a
/// partition only when there is something to read (a partition whose store
/// is up to date, or whose changelog is empty, costs one watermark request,
/// not a client of its own: a host taking a thousand partitions starts
/// them in seconds, not minutes).
pub struct Restorer {
    kafka: KafkaConfig,
    watermarks: BaseConsumer<LogContext>,
    stall: Duration,
}

impl Restorer {
    /// A restorer for the changelogs on the cluster of `kafka`.
    pub fn new(kafka: &KafkaConfig) -> anyhow::Result<Restorer> {
        Restorer::within(kafka, RESTORE_STALL)
    }

    /// A restorer whose restores fail once `stall` passes without
    /// progress.
    fn within(kafka: &KafkaConfig, stall: Duration) -> anyhow::Result<Restorer> {
        Ok(Restorer {
            kafka: kafka.clone(),
            watermarks: BaseConsumer::from_config_and_context(
                &restore_config(kafka),
                LogContext::new("changelog watermarks".to_string()),
            )?,
            stall,
        })
    }

    /// Brings the store `opened` of `partition` up to the end of its
    /// changelog partition of `topic`: reads from the store's checkpoint +
    /// 1 (from the start if it has none) to the high watermark, applies
    /// every record, and records the new checkpoint. A store whose
    /// checkpoint is at or past the changelog's end (the changelog was
    /// deleted and created again) is emptied and rebuilt from the whole
    /// changelog.
    ///
    /// Under exactly-once, `stores.open` has already emptied a store that
    /// was not closed cleanly, and the changelog is read `read_committed`:
    /// the state comes back to the last committed transaction. Call this
    /// again with [`LocalStores::reopen_empty`]'s store after an aborted
    /// transaction.
    pub fn restore(
        &self,
        topic: &str,
        partition: i32,
        stores: &LocalStores,
        opened: OpenedStore,
    ) -> anyhow::Result<(DiskState, Restored)> {
        let stall = self.stall;
        let started = Instant::now();
        let mut wiped = opened.wiped.map(|w| match w {
            crate::state::local::Wiped::Unclean => "not closed cleanly (exactly-once)",
            crate::state::local::Wiped::Asked => "asked",
        });
        let mut store = opened.store;
        let (low, high) = watermarks(&self.watermarks, topic, partition, stall)?;
        if store.checkpoint().is_some_and(|c| c >= high) {
            tracing::warn!(
                "{topic}/{partition}: the local state reflects offset {} but the changelog ends at {high}; rebuilding it from the changelog",
                store.checkpoint().unwrap_or(-1)
            );
            store = stores.reopen_empty(store)?.store;
            wiped = Some("ahead of its changelog");
        }
        let from = store.checkpoint().map_or(low, |c| (c + 1).max(low));
        let mut records = 0u64;
        if from < high {
            let consumer: BaseConsumer<LogContext> = BaseConsumer::from_config_and_context(
                &restore_config(&self.kafka),
                LogContext::new(format!("restore {topic}/{partition}")),
            )?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, partition, Offset::Offset(from))?;
            consumer.assign(&tpl)?;
            let mut last_progress = Instant::now();
            loop {
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Ok(m)) => {
                        last_progress = Instant::now();
                        if let Some(key) = m.key() {
                            store.apply_changelog(key, m.payload(), m.offset())?;
                            records += 1;
                        }
                        if m.offset() >= high - 1 {
                            break;
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {
                        // Past the last record: under read_committed the end
                        // may be a transaction marker.
                        let position = consumer.position().ok().and_then(|p| {
                            p.find_partition(topic, partition)
                                .and_then(|e| e.offset().to_raw())
                        });
                        if position.is_some_and(|p| p >= high) {
                            store.set_checkpoint(high - 1)?;
                        }
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::warn!("{topic}/{partition}: reading the changelog: {e}")
                    }
                }
                if last_progress.elapsed() > stall {
                    anyhow::bail!(
                        "{topic}/{partition}: nothing read for {}s while restoring (at {records} records of offsets {from}..{high})",
                        stall.as_secs()
                    );
                }
            }
        }
        store.flush()?;
        Ok((
            store,
            Restored {
                records,
                from,
                high,
                wiped,
                elapsed: started.elapsed(),
            },
        ))
    }
}

/// The low and high watermarks of `topic`/`partition`, retried while the
/// cluster does not answer, up to `stall`.
fn watermarks(
    consumer: &BaseConsumer<LogContext>,
    topic: &str,
    partition: i32,
    stall: Duration,
) -> anyhow::Result<(i64, i64)> {
    let started = Instant::now();
    loop {
        match consumer.fetch_watermarks(topic, partition, WATERMARKS_TIMEOUT.min(stall)) {
            Ok(w) => return Ok(w),
            Err(e) if started.elapsed() < stall => {
                tracing::warn!("{topic}/{partition}: changelog watermarks: {e}; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => anyhow::bail!("{topic}/{partition}: cannot read the changelog's end: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;
