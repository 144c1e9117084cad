//! The Wasm engine: loads processor components, instantiates them per
//! partition and runs batches through them under memory and CPU limits.
//!
//! - [`Engine`]: one per process; wasmtime engine, compiled-artifact cache,
//!   epoch ticker.
//! - [`Processor`]: a loaded component checked against the `stage` world,
//!   identified by the content hash of its file; cheap to clone.
//! - [`Instance`]: one running instance (one per stage and partition) that
//!   owns the partition's state while it runs.
//!
//! A batch is encoded once by the caller ([`partita_wire::BatchWriter`]) and
//! crosses into the guest as one buffer; the results come back as one buffer
//! that is validated before the caller sees views into it ([`Outcome`]).
//! When a batch traps or exceeds a limit, the instance is replaced by a fresh
//! one and the batch is retried record by record, so only the records that
//! fail on their own are reported as failed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use partita_wire::{BatchWriter, Outputs, RecordRef};

use crate::state::{ChangeSet, StateStore};
use crate::tables::Tables;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where compiled artifacts are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Granularity of CPU deadlines.
    pub epoch_tick: Duration,
}

/// Per-instance resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum linear memory of the instance, in bytes.
    pub memory_bytes: usize,
    /// Maximum CPU time of one `process` or `on-timer` call.
    pub deadline: Duration,
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The processor file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid Wasm component (or is a core module).
    #[error("{path} is not a WebAssembly component: {reason}")]
    NotAComponent {
        /// The processor file.
        path: PathBuf,
        /// What wasmtime said.
        reason: String,
    },
    /// The component does not target the `partita:processor/stage` world.
    #[error("{path} does not implement the partita:processor@0.1.0 stage world: {reason}")]
    WrongWorld {
        /// The processor file.
        path: PathBuf,
        /// What is missing or mismatched, by name.
        reason: String,
    },
}

/// Why an instance could not be created.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// Instantiation failed (a limit hit during start-up, a trap in start).
    #[error("cannot instantiate processor {version}: {reason}")]
    Instantiate {
        /// The processor's version.
        version: String,
        /// The cause.
        reason: String,
    },
    /// The processor's `init` returned an error or trapped.
    #[error("processor {version} refused to start: {reason}")]
    Init {
        /// The processor's version.
        version: String,
        /// The processor's reason.
        reason: String,
    },
}

/// Why a call into the processor failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// The call ran past its CPU deadline and was interrupted.
    #[error("exceeded the CPU deadline of {0:?}")]
    Deadline(Duration),
    /// The guest tried to grow its memory past the cap.
    #[error("exceeded the memory cap of {0} bytes")]
    Memory(usize),
    /// The guest trapped (a panic, an unreachable, a bad memory access).
    #[error("trapped: {0}")]
    Trap(String),
    /// The guest returned a buffer that is not valid.
    #[error("returned a malformed buffer: {0}")]
    Malformed(String),
    /// The state store failed.
    #[error("state store failed: {0}")]
    State(String),
}

/// One instance's set-up: what `init` gets and what the instance may use.
pub struct InstanceSetup {
    /// Stage name, for logs.
    pub stage: String,
    /// Partition this instance serves, for logs.
    pub partition: i32,
    /// The stage's configuration, passed to `init`.
    pub config: Vec<(String, String)>,
    /// The partition's state; the instance owns it while it runs.
    pub state: Box<dyn StateStore>,
    /// Reference tables shared by the stage.
    pub tables: Arc<dyn Tables>,
    /// Resource limits.
    pub limits: Limits,
}

/// The process-wide Wasm engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {}

impl Engine {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(config: EngineConfig) -> anyhow::Result<Engine> {
        todo!("{config:?}")
    }

    /// Loads the component at `path`: compiles it (or reuses the cached
    /// artifact for the same content and wasmtime version) and checks it
    /// against the `stage` world.
    pub fn load(&self, path: &Path) -> Result<Processor, LoadError> {
        todo!("{path:?}")
    }
}

/// A loaded, checked processor component. Cheap to clone.
#[derive(Clone)]
pub struct Processor {}

impl Processor {
    /// Content hash of the component file (hex), naming this version.
    pub fn version(&self) -> &str {
        todo!()
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        todo!()
    }

    /// Creates an instance and calls `init` with `setup.config`.
    pub fn instantiate(&self, setup: InstanceSetup) -> Result<Instance, InstanceError> {
        let _ = setup;
        todo!()
    }
}

/// A running processor instance for one stage and partition.
pub struct Instance {}

impl Instance {
    /// The output names the processor declared at `init`.
    pub fn outputs(&self) -> &[String] {
        todo!()
    }

    /// The processor version this instance runs.
    pub fn version(&self) -> &str {
        todo!()
    }

    /// Runs one batch. Never fails as a whole: a batch that traps or exceeds
    /// a limit is retried record by record on a fresh instance, and the
    /// records that still fail are reported as [`RecordOutcome::Failed`].
    pub fn process<'a>(&'a mut self, batch: &'a BatchWriter) -> Outcome<'a> {
        let _ = batch;
        todo!()
    }

    /// Calls `on-timer`; on failure the instance is replaced by a fresh one.
    pub fn on_timer(&mut self, stream_time: i64, wall_time: i64) -> Result<Outputs<'_>, ProcessError> {
        let _ = (stream_time, wall_time);
        todo!()
    }

    /// Ends the instance and gives its state back (for a hot swap).
    pub fn into_state(self) -> Box<dyn StateStore> {
        todo!()
    }
}

/// What became of each record of a batch.
pub struct Outcome<'a> {
    _batch: &'a BatchWriter,
}

impl<'a> Outcome<'a> {
    /// Every input record with what became of it, in input order.
    pub fn iter(&self) -> impl Iterator<Item = (RecordRef<'a>, RecordOutcome<'_>)> + '_ {
        std::iter::empty()
    }

    /// The state changes committed by this batch (for a changelog).
    pub fn changes(&self) -> &ChangeSet {
        todo!()
    }

    /// How many calls into the guest the batch took (1 unless it was retried
    /// record by record).
    pub fn calls(&self) -> usize {
        todo!()
    }
}

/// What became of one record.
#[derive(Debug, Clone, Copy)]
pub enum RecordOutcome<'a> {
    /// Accepted, with these outputs (fields marked keep refer to the input).
    Ok(Outputs<'a>),
    /// The processor rejected it, with this reason.
    Rejected(&'a str),
    /// Processing it trapped or exceeded a limit, even on its own.
    Failed(&'a ProcessError),
}
