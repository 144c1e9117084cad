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

use wasmtime::component::{Component, Linker};

use crate::bindings::StagePre;
use crate::state::StateStore;
use crate::tables::Tables;

mod cache;
mod counters;
mod imports;
mod instance;
mod limits;
mod stderr;
mod ticker;
mod world;

use cache::ArtifactCache;
pub use counters::{CounterKey, Counters};
use imports::StoreData;
pub use instance::{Instance, Outcome, RecordOutcome};
use ticker::Ticker;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where compiled artifacts are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Granularity of CPU deadlines.
    pub epoch_tick: Duration,
}

impl EngineConfig {
    /// The settings of a run: compiled components cached in `cache_dir`
    /// (`None`: no cache), CPU deadlines checked every 10 ms.
    pub fn with_cache(cache_dir: Option<PathBuf>) -> Self {
        EngineConfig {
            cache_dir,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// Per-instance resource limits, and the caps on what one record and one
/// batch may hand the host (which holds a batch's outputs and state writes
/// until they are produced and committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum linear memory of the instance, in bytes.
    pub memory_bytes: usize,
    /// Maximum CPU time of one `process` or `on-timer` call.
    pub deadline: Duration,
    /// The largest record a call may hand over: an output (its own key,
    /// value and headers) or a state write (key and value, which become a
    /// changelog record). Larger, and the record fails
    /// ([`ProcessError::TooLarge`]) instead of the producer refusing it
    /// for good and stopping the run.
    pub max_record_bytes: usize,
    /// The most outputs one record (or one `on-timer` call) may have: a
    /// processor emitting more (a bug that loops, say) would flood the
    /// output topics from one input. More, and the record fails
    /// ([`ProcessError::TooManyOutputs`]).
    pub max_record_outputs: usize,
    /// The most bytes of outputs one record (or one `on-timer` call) may
    /// have, each output counting its own key, value and headers. More, and
    /// the record fails ([`ProcessError::OutputsTooLarge`]).
    pub max_record_output_bytes: usize,
    /// The most outputs one batch may have. A batch with more runs again
    /// record by record, and the records that would take it past the cap
    /// fail ([`ProcessError::BatchLimit`]).
    pub max_batch_outputs: usize,
    /// The most bytes of outputs one batch may have, as
    /// [`Limits::max_batch_outputs`].
    pub max_batch_output_bytes: usize,
    /// The most bytes of state writes (keys and values) one batch may make:
    /// a partition's pending changes, which the host holds until they are
    /// in its store and changelog. As [`Limits::max_batch_outputs`].
    pub max_batch_state_bytes: usize,
}

/// librdkafka's default `message.max.bytes`: the default of
/// [`Limits::max_record_bytes`].
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1_000_000;

impl Default for Limits {
    /// The pipeline file's defaults: 128 MiB of memory, 1 s of CPU per
    /// call, records up to [`DEFAULT_MAX_RECORD_BYTES`], 10,000 outputs and
    /// 16 MiB of outputs per record, 100,000 outputs (librdkafka's default
    /// `queue.buffering.max.messages`), 64 MiB of outputs and 64 MiB of
    /// state writes per batch.
    fn default() -> Self {
        Limits {
            memory_bytes: 128 << 20,
            deadline: Duration::from_secs(1),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_record_outputs: 10_000,
            max_record_output_bytes: 16 << 20,
            max_batch_outputs: 100_000,
            max_batch_output_bytes: 64 << 20,
            max_batch_state_bytes: 64 << 20,
        }
    }
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    // The I/O error is in the message (which problems and refusals show
    // alone), so it is not also given as the source: a chain would say it
    // twice.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The processor file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
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
    /// The processor emitted more outputs for one record (or one timer
    /// call) than [`Limits::max_record_outputs`] (its outputs and state
    /// writes dropped).
    #[error("emitted {count} outputs for one record, more than max_record_outputs ({limit})")]
    TooManyOutputs {
        /// How many it emitted.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An output or a state write was larger than
    /// [`Limits::max_record_bytes`] (the record's outputs and state writes
    /// dropped).
    #[error("{what} of {bytes} bytes is larger than max_record_bytes ({limit})")]
    TooLarge {
        /// `"an output"` or `"a state write"`.
        what: &'static str,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The processor emitted more bytes of outputs for one record (or one
    /// timer call) than [`Limits::max_record_output_bytes`] (its outputs
    /// and state writes dropped).
    #[error(
        "emitted {bytes} bytes of outputs for one record, more than max_record_output_bytes ({limit})"
    )]
    OutputsTooLarge {
        /// The bytes of its outputs together.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The record's outputs or state writes would take its batch past one
    /// of the batch caps ([`Limits::max_batch_outputs`],
    /// [`Limits::max_batch_output_bytes`],
    /// [`Limits::max_batch_state_bytes`]): its outputs and state writes
    /// were dropped. The records before it in the batch kept theirs.
    #[error(
        "would take the batch's {what} to {total}, more than {setting} ({limit}); lower batch_size or raise {setting}"
    )]
    BatchLimit {
        /// `"outputs"`, `"bytes of outputs"` or `"bytes of state writes"`.
        what: &'static str,
        /// The batch's total with this record.
        total: usize,
        /// The setting that caps it.
        setting: &'static str,
        /// The limit.
        limit: usize,
    },
    /// After an earlier failure the processor could not be started again
    /// (instantiation or `init` failed), so the record was not run.
    #[error("cannot restart the processor after a failure: {0}")]
    Restart(String),
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
    /// The counters the processor adds to (its `metrics` import).
    pub counters: Arc<Counters>,
}

impl InstanceSetup {
    /// A set-up for running a processor on its own (tests, benchmarks,
    /// tools): partition 0, empty in-memory state, no tables.
    pub fn standalone(stage: &str, config: &[(&str, &str)], limits: Limits) -> Self {
        InstanceSetup {
            stage: stage.to_string(),
            partition: 0,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            state: Box::new(crate::state::MemoryState::new()),
            tables: Arc::new(crate::tables::MemoryTables::new()),
            limits,
            counters: Arc::new(Counters::new()),
        }
    }
}

/// The process-wide Wasm engine. Cheap to clone.
///
/// Holds the wasmtime engine, the linker with every host import, the
/// compiled-artifact cache and the epoch ticker thread. The thread stops
/// when the last clone of the engine, and the last [`Processor`] and
/// [`Instance`] made from it, are dropped.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasm: wasmtime::Engine,
    linker: Linker<StoreData>,
    cache: Option<ArtifactCache>,
    tick: Duration,
    // Last: dropping it joins the thread.
    _ticker: Ticker,
}

impl Engine {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(config: EngineConfig) -> anyhow::Result<Engine> {
        anyhow::ensure!(
            !config.epoch_tick.is_zero(),
            "the epoch tick must be longer than zero"
        );
        let mut wasm_config = wasmtime::Config::new();
        wasm_config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .strategy(wasmtime::Strategy::Cranelift);
        // For profiling: perf then names the functions of compiled guests.
        if std::env::var_os("PARTITA_PERFMAP").is_some() {
            wasm_config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let wasm = wasmtime::Engine::new(&wasm_config).map_err(anyhow::Error::from)?;
        let linker = imports::linker(&wasm).map_err(anyhow::Error::from)?;
        let cache = config.cache_dir.map(|dir| ArtifactCache::new(dir, &wasm));
        let ticker = Ticker::start(wasm.clone(), config.epoch_tick)?;
        Ok(Engine {
            inner: Arc::new(EngineInner {
                wasm,
                linker,
                cache,
                tick: config.epoch_tick,
                _ticker: ticker,
            }),
        })
    }

    /// Loads the component at `path`: compiles it (or reuses the cached
    /// artifact for the same content and wasmtime version) and checks it
    /// against the `stage` world.
    pub fn load(&self, path: &Path) -> Result<Processor, LoadError> {
        let bytes = std::fs::read(path).map_err(|error| LoadError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        self.load_bytes(path, &bytes)
    }

    /// Like [`Engine::load`], for a component already in memory; `path` only
    /// names it in errors and logs.
    pub fn load_bytes(&self, path: &Path, bytes: &[u8]) -> Result<Processor, LoadError> {
        let not_component = |reason: String| LoadError::NotAComponent {
            path: path.to_path_buf(),
            reason,
        };
        let wrong_world = |reason: String| LoadError::WrongWorld {
            path: path.to_path_buf(),
            reason,
        };
        let hash = blake3::hash(bytes).to_hex().to_string();
        let inner = &*self.inner;
        let cached = inner
            .cache
            .as_ref()
            .and_then(|c| c.load(&inner.wasm, &hash));
        let from_cache = cached.is_some();
        let component = match cached {
            Some(c) => c,
            None => {
                if let Some(problem) = world::header_problem(bytes) {
                    return Err(not_component(problem));
                }
                Component::new(&inner.wasm, bytes).map_err(|e| not_component(format!("{e:#}")))?
            }
        };
        world::check_exports(&inner.wasm, &component).map_err(wrong_world)?;
        world::check_imports(&inner.wasm, &inner.linker, &component).map_err(wrong_world)?;
        let pre = inner
            .linker
            .instantiate_pre(&component)
            .and_then(StagePre::new)
            .map_err(|e| wrong_world(format!("{e:#}")))?;
        if !from_cache && let Some(cache) = &inner.cache {
            cache.store(&hash, &component);
        }
        let version = hash[..VERSION_HEX_LEN].to_string();
        tracing::debug!(path = %path.display(), version, from_cache, "loaded processor");
        Ok(Processor {
            inner: Arc::new(ProcessorInner {
                engine: self.clone(),
                path: path.to_path_buf(),
                version,
                hash,
                pre,
                from_cache,
            }),
        })
    }

    /// Where the compiled artifact of a component with content hash `hash`
    /// is cached, if the cache is on.
    pub fn cached_artifact_path(&self, hash: &str) -> Option<PathBuf> {
        self.inner.cache.as_ref().map(|c| c.path_for(hash))
    }

    /// The number of epoch ticks that make up `deadline` (at least one).
    fn ticks(&self, deadline: Duration) -> u64 {
        let tick = self.inner.tick.as_nanos().max(1);
        u64::try_from(deadline.as_nanos().div_ceil(tick))
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// Hex digits of the content hash that name a processor version.
const VERSION_HEX_LEN: usize = 12;

/// A loaded, checked processor component. Cheap to clone.
#[derive(Clone)]
pub struct Processor {
    inner: Arc<ProcessorInner>,
}

struct ProcessorInner {
    engine: Engine,
    path: PathBuf,
    version: String,
    hash: String,
    pre: StagePre<StoreData>,
    from_cache: bool,
}

impl Processor {
    /// Content hash of the component file (hex), naming this version.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// The full content hash (blake3, hex) of the component file.
    pub fn content_hash(&self) -> &str {
        &self.inner.hash
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// True when the compiled code came from the on-disk cache instead of
    /// being compiled by this load.
    pub fn from_cache(&self) -> bool {
        self.inner.from_cache
    }

    /// Creates an instance and calls `init` with `setup.config`. On failure
    /// `setup.state` is dropped; to change the code of a running instance
    /// while keeping its state, use [`Instance::replace_processor`].
    pub fn instantiate(&self, setup: InstanceSetup) -> Result<Instance, InstanceError> {
        Instance::start(self.clone(), setup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_whole_ticks() {
        let engine = Engine::new(EngineConfig {
            cache_dir: None,
            epoch_tick: Duration::from_millis(10),
        })
        .unwrap();
        assert_eq!(engine.ticks(Duration::from_millis(1000)), 100);
        assert_eq!(engine.ticks(Duration::from_millis(1001)), 101);
        assert_eq!(engine.ticks(Duration::from_millis(3)), 1);
        assert_eq!(engine.ticks(Duration::ZERO), 1, "at least one tick");
        // Duration::MAX / 10 ms does not fit in u64 ticks: saturates.
        assert_eq!(engine.ticks(Duration::MAX), u64::MAX);
    }

    #[test]
    fn a_zero_tick_is_refused() {
        let err = Engine::new(EngineConfig {
            cache_dir: None,
            epoch_tick: Duration::ZERO,
        })
        .err()
        .expect("refused");
        assert!(err.to_string().contains("epoch tick"), "{err}");
    }

    proptest::proptest! {
        // Each case compiles what is left of a component: a few dozen.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// A component file damaged at random (cut short, or bytes
        /// overwritten) loads or is refused naming the file; never a panic.
        #[test]
        fn a_damaged_component_loads_or_is_refused_naming_the_file(
            cut in proptest::option::of(0usize..200_000),
            at in 0usize..200_000,
            with in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..16),
        ) {
            let engine = Engine::new(EngineConfig {
                cache_dir: None,
                epoch_tick: Duration::from_millis(10),
            })
            .unwrap();
            let mut bytes =
                std::fs::read(crate::config::tests::component("passthrough")).unwrap();
            match cut {
                Some(n) => bytes.truncate(n % bytes.len()),
                None => {
                    let at = at % bytes.len();
                    let end = (at + with.len()).min(bytes.len());
                    bytes[at..end].copy_from_slice(&with[..end - at]);
                }
            }
            let path = Path::new("damaged.wasm");
            if let Err(e) = engine.load_bytes(path, &bytes) {
                let text = e.to_string();
                proptest::prop_assert!(text.contains("damaged.wasm"), "{}", text);
            }
        }
    }
}
