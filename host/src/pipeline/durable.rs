//! Durable state in a run: what the runner factory and the workers call.
//!
//! - [`Durable::open`]: on assignment of a partition, opens its local
//!   store, restores it from the changelog (from the store's checkpoint),
//!   counts the records read (`partita_state_restored_records_total`) and
//!   logs the restore with its duration.
//! - [`send_changes`]: after each successful call, the call's change set
//!   goes to the changelog with the batch's outputs, under the batch's
//!   acks.
//! - [`checkpoint`]: as batches are acknowledged, in order, the store's
//!   checkpoint follows the changelog offsets acknowledged.
//! - [`close`]: after the partition's last commit (revoke, stop), the
//!   store is flushed and marked closed cleanly.
//!
//! Under exactly-once, a worker whose transaction aborted calls
//! [`super::runner::BatchRunner::release_state`] and then starts a new
//! runner: the store, reopened without its clean marker, is emptied and
//! rebuilt from the changelog read `read_committed` (the last committed
//! transaction).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::runner::BatchRunner;
use crate::config::{Guarantee, KafkaConfig, Pipeline};
use crate::kafka::admin::TopicPartitions;
use crate::kafka::changelog::{self, ChangelogWriter};
use crate::kafka::produce::{Acks, Producer};
use crate::metrics::{Metrics, PartitionMetrics};
use crate::state::{DiskOptions, LocalStores, StateStore};

/// The durable state of a run's stages.
pub(crate) struct Durable {
    kafka: KafkaConfig,
    stores: LocalStores,
    metrics: Arc<Metrics>,
}

impl Durable {
    /// The state of `pipeline`'s stages, kept under its `[state] dir`.
    pub(crate) fn new(pipeline: &Pipeline, metrics: Arc<Metrics>) -> Self {
        let options = DiskOptions::with_memory(pipeline.state.memory_bytes());
        let exactly_once = pipeline.kafka.guarantee == Guarantee::ExactlyOnce;
        Durable {
            stores: LocalStores::new(
                &pipeline.state.dir,
                &pipeline.kafka.group,
                options,
                exactly_once,
            ),
            kafka: pipeline.kafka.clone(),
            metrics,
        }
    }

    /// The changelog topic of `stage`.
    pub(crate) fn topic(&self, stage: &str) -> String {
        changelog::topic(&self.kafka, stage)
    }

    /// Opens the store of (`stage`, `partition`) and restores it from the
    /// changelog; blocks until the restore is done.
    pub(crate) fn open(&self, stage: &str, partition: i32) -> anyhow::Result<Box<dyn StateStore>> {
        let topic = self.topic(stage);
        let opened = self.stores.open(stage, partition)?;
        let was_clean = opened.was_clean;
        let (store, restored) =
            changelog::restore(&self.kafka, &topic, partition, &self.stores, opened)?;
        let m = self.metrics.partition(stage, partition);
        m.state_restored.fetch_add(restored.records, Relaxed);
        m.set_state_keys(store.len());
        tracing::info!(
            stage,
            partition,
            records = restored.records,
            from = restored.from,
            to = restored.high,
            keys = store.len(),
            clean = was_clean,
            wiped = restored.wiped.unwrap_or("no"),
            "state restored: {} changelog records of {topic} read in {:.3}s",
            restored.records,
            restored.elapsed.as_secs_f64()
        );
        Ok(Box::new(store))
    }
}

/// The changelog topics a run needs, each with its stage's input partition
/// count, created if missing.
pub(crate) async fn ensure_changelogs(
    pipeline: &Pipeline,
    topics: &TopicPartitions,
) -> Result<(), String> {
    let wanted: Vec<(String, i32)> = pipeline
        .stages
        .iter()
        .filter_map(|s| {
            let partitions = s.inputs.first().and_then(|t| topics.get(t)).copied()?;
            Some((changelog::topic(&pipeline.kafka, &s.name), partitions))
        })
        .collect();
    changelog::ensure_topics(&pipeline.kafka, topics, &wanted).await
}

/// Sends the state changes of the runner's last call to the changelog, as
/// part of the batch `acks`. An error is the reason the run must stop.
pub(crate) fn send_changes(
    writer: Option<&mut ChangelogWriter>,
    runner: &dyn BatchRunner,
    producer: &Producer,
    acks: &Arc<Acks>,
) -> Result<(), String> {
    let (Some(writer), Some(changes)) = (writer, runner.last_changes()) else {
        return Ok(());
    };
    writer
        .send(producer, changes, acks)
        .map(|_| ())
        .map_err(|e| format!("cannot produce to the changelog {}: {e}", writer.topic()))
}

/// Moves the store's checkpoint to the changelog offset acknowledged by
/// the batches done so far, and updates the keys gauge (the count as of the
/// store's last flush). `none_left`:
/// no batch is in flight any more (those the writer still waits for were
/// dropped, by an aborted transaction).
pub(crate) fn checkpoint(
    writer: Option<&mut ChangelogWriter>,
    runner: &mut dyn BatchRunner,
    metrics: &PartitionMetrics,
    none_left: bool,
) {
    let Some(writer) = writer else {
        return;
    };
    writer.acknowledged();
    if none_left {
        writer.forget_waiting();
    }
    let Some(store) = runner.state() else {
        return;
    };
    // Offered again while idle, so that the last checkpoint is written
    // once the flush interval has passed (a no-op once it is).
    if let Some(offset) = writer.last_acknowledged()
        && let Err(e) = store.set_checkpoint(offset)
    {
        tracing::warn!(
            "{}: cannot record the state checkpoint {offset}: {e:#}",
            writer.topic()
        );
    }
    metrics.set_state_keys(store.len());
}

/// Flushes the store and marks it closed cleanly (after the partition's
/// last commit).
pub(crate) fn close(runner: &mut dyn BatchRunner, stage: &str, partition: i32) {
    if let Some(store) = runner.state()
        && let Err(e) = store.close()
    {
        tracing::warn!(stage, partition, "closing the state store: {e:#}");
    }
}
