//! What a worker runs its batches through: an engine [`Instance`] in a
//! real run, a native stand-in in tests of the Kafka machinery.

use std::sync::Arc;

use partita_wire::{BatchWriter, RecordRef};

use crate::config::StageConfig;
use crate::engine::{Instance, InstanceSetup, Processor, RecordOutcome};
use crate::state::{MemoryState, StateStore};
use crate::tables::Tables;

/// Runs batches for one (stage, partition).
pub(crate) trait BatchRunner {
    /// The output names, by output index.
    fn outputs(&self) -> &[String];

    /// The processor version, for dead-letter headers.
    fn version(&self) -> &str;

    /// Runs `batch` and calls `each` for every record, in input order,
    /// with what became of it.
    fn run(&mut self, batch: &BatchWriter, each: &mut dyn FnMut(RecordRef<'_>, RecordOutcome<'_>));
}

impl BatchRunner for Instance {
    fn outputs(&self) -> &[String] {
        Instance::outputs(self)
    }

    fn version(&self) -> &str {
        Instance::version(self)
    }

    fn run(&mut self, batch: &BatchWriter, each: &mut dyn FnMut(RecordRef<'_>, RecordOutcome<'_>)) {
        let outcome = self.process(batch);
        for (record, result) in outcome.iter() {
            each(record, result);
        }
    }
}

/// Starts the runner of each partition a stage is assigned.
pub(crate) trait RunnerFactory: Send + Sync {
    /// The processor version the runners run.
    fn version(&self) -> String;

    /// A runner for `partition`, with that partition's state.
    fn start(&self, partition: i32) -> anyhow::Result<Box<dyn BatchRunner>>;
}

/// Runners backed by a loaded processor.
pub(crate) struct EngineRunners {
    /// The stage's processor.
    pub processor: Processor,
    /// The stage.
    pub stage: StageConfig,
    /// The stage's reference tables.
    pub tables: Arc<dyn Tables>,
}

impl EngineRunners {
    /// The state of `partition` when it is assigned. It is in memory and
    /// starts empty for now; a durable store restores it here.
    fn open_state(&self, _partition: i32) -> Box<dyn StateStore> {
        Box::new(MemoryState::new())
    }
}

impl RunnerFactory for EngineRunners {
    fn version(&self) -> String {
        self.processor.version().to_string()
    }

    fn start(&self, partition: i32) -> anyhow::Result<Box<dyn BatchRunner>> {
        let setup = InstanceSetup {
            stage: self.stage.name.clone(),
            partition,
            config: self.stage.config.clone(),
            state: self.open_state(partition),
            tables: self.tables.clone(),
            limits: self.stage.limits,
        };
        Ok(Box::new(self.processor.instantiate(setup)?))
    }
}
