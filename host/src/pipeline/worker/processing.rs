//! What runs one worker's batches, built in one place: the processor's
//! runner (with the partition's state), the topic of each of its outputs,
//! the hot-swap hook, and the changelog writer of its durable state. Built
//! when the partition is assigned, and again after an exactly-once abort
//! (the state then reopened as of the last commit).
//!
//! It also owns what happens to that state around the batches: the change
//! set of each call goes to the changelog with the batch, the store's
//! checkpoint follows the changelog offsets acknowledged, and the store is
//! closed cleanly after the partition's last commit.

use std::sync::Arc;

use super::super::reload::{self, SwapHook};
use super::super::runner::BatchRunner;
use super::super::shadow::{Feed, Plan, RecordResult, Shadow};
use super::super::{StageFailure, StageShared};
use crate::config::StageConfig;
use crate::kafka::changelog::ChangelogWriter;
use crate::kafka::produce::{Acks, Producer};
use crate::metrics::PartitionMetrics;
use partita_wire::BatchWriter;

/// A partition's processor and where its outputs and state changes go.
pub(super) struct Processing {
    /// The processor, with the partition's state.
    pub runner: Box<dyn BatchRunner>,
    /// Output index → topic (shared, so that a batch's sinks hold them
    /// while the state changes are sent).
    pub routes: Arc<[String]>,
    /// Hot reload: swaps the runner's code between batches.
    reload: Option<SwapHook>,
    /// Where the state changes go (durable state).
    changelog: Option<ChangelogWriter>,
    /// The stage's candidate, when it can have one, and this partition's
    /// feed of it.
    shadow: Option<(Arc<Shadow>, Feed)>,
}

impl Processing {
    /// Starts the processor of `partition`, its state opened (and
    /// restored from the changelog when durable).
    pub fn start(shared: &StageShared, partition: i32) -> anyhow::Result<Processing> {
        let runner = shared.runners.start(partition)?;
        let routes = reload::routes(&shared.config, runner.outputs())?.into();
        let reload = shared
            .runners
            .live()
            .map(|live| SwapHook::new(live, partition, runner.version()));
        let changelog = shared
            .runners
            .changelog()
            .map(|topic| ChangelogWriter::new(&topic, partition));
        let shadow = shared.runners.shadow().map(|s| (s, Feed::default()));
        Ok(Processing {
            runner,
            routes,
            reload,
            changelog,
            shadow,
        })
    }

    /// Between batches: swaps to a newly published processor version.
    pub fn swap_if_due(&mut self, stage: &StageConfig) {
        if let Some(hook) = &mut self.reload
            && let Some(routes) = hook.at_boundary(&mut *self.runner, stage)
        {
            self.routes = routes.into();
        }
    }

    /// Before a batch: what the stage's candidate gets of it (a copy of
    /// the state first, when it must start again).
    pub fn shadow_plan(&mut self) -> Plan {
        match &mut self.shadow {
            Some((shadow, feed)) => feed.plan(shadow, &mut *self.runner),
            None => Plan::None,
        }
    }

    /// After a batch: hands it and its live results to the candidate.
    pub fn shadow_offer(
        &mut self,
        plan: Plan,
        partition: i32,
        batch: &BatchWriter,
        live: Vec<RecordResult>,
    ) {
        if let Some((shadow, feed)) = &mut self.shadow {
            feed.offer(shadow, plan, partition, batch, live);
        }
    }

    /// Tells the hot-swap hook how a batch went (for rollback).
    pub fn after_batch(&self, records: u64, bad: u64) {
        if let Some(hook) = &self.reload {
            hook.after_batch(records, bad);
        }
    }

    /// Sends the state changes of the runner's last call to the
    /// changelog, as part of the batch `acks`. An error is the reason the
    /// run must stop.
    pub fn send_changes(
        &mut self,
        producer: &Producer,
        acks: &Arc<Acks>,
    ) -> Result<(), StageFailure> {
        let (Some(writer), Some(changes)) = (&mut self.changelog, self.runner.last_changes())
        else {
            return Ok(());
        };
        writer
            .send(producer, changes, acks)
            .map(|_| ())
            .map_err(|source| StageFailure::Produce {
                topic: writer.topic().to_string(),
                source,
            })
    }

    /// Moves the store's checkpoint to `acknowledged`, the changelog
    /// offset acknowledged by the batches settled so far (the ledger's),
    /// and updates the keys gauge (the count as of the store's last flush).
    pub fn checkpoint(&mut self, metrics: &PartitionMetrics, acknowledged: Option<i64>) {
        let Some(writer) = &self.changelog else {
            return;
        };
        let Some(store) = self.runner.state() else {
            return;
        };
        // Offered again while idle, so that the last checkpoint is written
        // once the flush interval has passed (a no-op once it is).
        if let Some(offset) = acknowledged
            && let Err(e) = store.set_checkpoint(offset)
        {
            tracing::warn!(
                "{}: cannot record the state checkpoint {offset}: {e:#}",
                writer.topic()
            );
        }
        metrics.set_state_keys(store.len());
    }

    /// Flushes the store and marks it closed cleanly (after the
    /// partition's last commit).
    pub fn close(&mut self, stage: &str, partition: i32) {
        if let Some(store) = self.runner.state()
            && let Err(e) = store.close()
        {
            tracing::warn!(stage, partition, "closing the state store: {e:#}");
        }
    }

    /// Lets go of the state store without closing it cleanly (before an
    /// exactly-once abort starts the processor again).
    pub fn release_state(&mut self) {
        self.runner.release_state();
    }
}
