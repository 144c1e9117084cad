//! What a worker runs its batches through: an engine [`Instance`] in a
//! real run, a native stand-in in tests of the Kafka machinery.

use std::sync::Arc;

use partita_wire::{BatchWriter, OutputRef, RecordRef};

use super::durable::Durable;
use super::reload::LiveProcessor;
use super::shadow::Shadow;
use crate::config::StageConfig;
use crate::engine::{Instance, InstanceSetup, ProcessError, Processor, RecordOutcome};
use crate::metrics::Metrics;
use crate::state::{ChangeSet, MemoryState, StateStore};
use crate::tables::Tables;

/// Runs batches for one (stage, partition).
pub(crate) trait BatchRunner: Send {
    /// The output names, by output index.
    fn outputs(&self) -> &[String];

    /// The processor version, for dead-letter headers.
    fn version(&self) -> &str;

    /// Calls the processor's `on-timer` and calls `each` for every output
    /// it returns. On error nothing was emitted (an engine instance is
    /// restarted). The default does nothing: a runner without timers.
    fn on_timer(
        &mut self,
        stream_time: i64,
        wall_time: i64,
        each: &mut dyn FnMut(OutputRef<'_>),
    ) -> Result<(), ProcessError> {
        let _ = (stream_time, wall_time, each);
        Ok(())
    }

    /// Runs `batch` and calls `each` for every record, in input order,
    /// with what became of it.
    fn run(&mut self, batch: &BatchWriter, each: &mut dyn FnMut(RecordRef<'_>, RecordOutcome<'_>));

    /// The state changes committed by the last `run` or `on_timer` call
    /// (for the changelog); `None` for a runner without state.
    fn last_changes(&self) -> Option<&ChangeSet> {
        None
    }

    /// The partition's state store; `None` for a runner without state.
    fn state(&mut self) -> Option<&mut dyn StateStore> {
        None
    }

    /// Closes the partition's state store without marking it clean, so
    /// that a runner started next for the partition can open it again
    /// (after an aborted transaction; see `durable`).
    fn release_state(&mut self) {}

    /// Swaps in `processor` between batches (hot reload), keeping the
    /// partition's state; on error the old code keeps running.
    fn replace(&mut self, processor: &Processor) -> anyhow::Result<()> {
        anyhow::bail!(
            "this runner cannot swap its processor for {}",
            processor.version()
        )
    }
}

impl BatchRunner for Instance {
    fn outputs(&self) -> &[String] {
        Instance::outputs(self)
    }

    fn version(&self) -> &str {
        Instance::version(self)
    }

    fn on_timer(
        &mut self,
        stream_time: i64,
        wall_time: i64,
        each: &mut dyn FnMut(OutputRef<'_>),
    ) -> Result<(), ProcessError> {
        let outputs = Instance::on_timer(self, stream_time, wall_time)?;
        for o in outputs.iter() {
            each(o);
        }
        Ok(())
    }

    fn run(&mut self, batch: &BatchWriter, each: &mut dyn FnMut(RecordRef<'_>, RecordOutcome<'_>)) {
        let outcome = self.process(batch);
        for (record, result) in outcome.iter() {
            each(record, result);
        }
    }

    fn replace(&mut self, processor: &Processor) -> anyhow::Result<()> {
        Ok(self.replace_processor(processor)?)
    }

    fn last_changes(&self) -> Option<&ChangeSet> {
        Some(Instance::last_changes(self))
    }

    fn state(&mut self) -> Option<&mut dyn StateStore> {
        Some(Instance::state(self))
    }

    fn release_state(&mut self) {
        drop(self.take_state());
    }
}

/// Starts the runner of each partition a stage is assigned.
pub(crate) trait RunnerFactory: Send + Sync {
    /// The processor version the runners run.
    fn version(&self) -> String;

    /// A runner for `partition`, with that partition's state.
    fn start(&self, partition: i32) -> anyhow::Result<Box<dyn BatchRunner>>;

    /// The stage's live processor, when its runners can be hot-swapped.
    fn live(&self) -> Option<Arc<LiveProcessor>> {
        None
    }

    /// The changelog topic the runners' state changes go to, if any.
    fn changelog(&self) -> Option<String> {
        None
    }

    /// The stage's candidate (shadow runs), when it can have one.
    fn shadow(&self) -> Option<Arc<Shadow>> {
        None
    }
}

/// Runners backed by a loaded processor.
pub(crate) struct EngineRunners {
    /// The stage's live processor (the version new partitions start on).
    pub live: Arc<LiveProcessor>,
    /// The stage.
    pub stage: StageConfig,
    /// The stage's reference tables.
    pub tables: Arc<dyn Tables>,
    /// The durable state stores; `None` keeps state in memory, empty at
    /// each assignment.
    pub durable: Option<Arc<Durable>>,
    /// Where each partition's processor counters are exported.
    pub metrics: Arc<Metrics>,
    /// The stage's candidate, for a stage that follows deployments.
    pub shadow: Option<Arc<Shadow>>,
}

impl EngineRunners {
    /// The state of `partition` when it is assigned: its local store,
    /// restored from the changelog.
    fn open_state(&self, partition: i32) -> anyhow::Result<Box<dyn StateStore>> {
        match &self.durable {
            Some(d) => d.open(&self.stage.name, partition),
            None => Ok(Box::new(MemoryState::new())),
        }
    }
}

impl RunnerFactory for EngineRunners {
    fn version(&self) -> String {
        self.live.current().version().to_string()
    }

    fn live(&self) -> Option<Arc<LiveProcessor>> {
        Some(self.live.clone())
    }

    fn changelog(&self) -> Option<String> {
        self.durable.as_ref().map(|d| d.topic(&self.stage.name))
    }

    fn shadow(&self) -> Option<Arc<Shadow>> {
        self.shadow.clone()
    }

    fn start(&self, partition: i32) -> anyhow::Result<Box<dyn BatchRunner>> {
        let setup = InstanceSetup {
            stage: self.stage.name.clone(),
            partition,
            config: self.stage.config.clone(),
            state: self.open_state(partition)?,
            tables: self.tables.clone(),
            limits: self.stage.limits,
            counters: self
                .metrics
                .partition(&self.stage.name, partition)
                .counters
                .clone(),
        };
        Ok(Box::new(self.live.current().instantiate(setup)?))
    }
}
