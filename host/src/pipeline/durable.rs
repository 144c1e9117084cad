//! Durable state in a run: what the runner factory and the workers call.
//!
//! - [`Durable::open`]: on assignment of a partition, opens its local
//!   store, restores it from the changelog (from the store's checkpoint),
//!   counts the records read (`partita_state_restored_records_total`) and
//!   logs the restore with its duration.
//! - [`ensure_changelogs`]: at start, the changelog topics are created if
//!   missing.
//!
//! Each worker's `Processing` (`worker/processing.rs`) then sends each
//! call's change set to the changelog with the batch's outputs, moves the
//! store's checkpoint as batches are acknowledged, and closes the store
//! cleanly after the partition's last commit.
//!
//! Under exactly-once, a worker whose transaction aborted calls
//! [`super::runner::BatchRunner::release_state`] and then starts a new
//! runner: the store, reopened without its clean marker, is emptied and
//! rebuilt from the changelog read `read_committed` (the last committed
//! transaction).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::config::{Guarantee, KafkaConfig, Pipeline};
use crate::kafka::admin::TopicPartitions;
use crate::kafka::changelog::{self, Restorer};
use crate::metrics::Metrics;
use crate::state::{DiskOptions, LocalStores, StateStore};

/// The durable state of a run's stages.
pub(crate) struct Durable {
    kafka: KafkaConfig,
    restorer: Restorer,
    stores: LocalStores,
    metrics: Arc<Metrics>,
}

impl Durable {
    /// The state of `pipeline`'s stages, kept under its `[state] dir`; fails
    /// if the changelogs' reader cannot be configured.
    pub(crate) fn new(pipeline: &Pipeline, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let options = DiskOptions::with_memory(pipeline.state.memory_bytes());
        let exactly_once = pipeline.kafka.guarantee == Guarantee::ExactlyOnce;
        Ok(Durable {
            restorer: Restorer::new(&pipeline.kafka)?,
            stores: LocalStores::new(
                &pipeline.state.dir,
                &pipeline.kafka.group,
                options,
                exactly_once,
            ),
            kafka: pipeline.kafka.clone(),
            metrics,
        })
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
        let (store, restored) = self
            .restorer
            .restore(&topic, partition, &self.stores, opened)?;
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
