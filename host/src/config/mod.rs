//! The pipeline file: what `partita run` reads (docs/PIPELINE.md is the
//! reference).
//!
//! [`Pipeline::load`] reads and checks a file without touching Kafka or the
//! processors: syntax, keys, types, ranges, names, and that each processor
//! file exists. [`check_processors`] then loads every processor with the
//! engine and checks what only the processor knows (that it is a component,
//! that `init` accepts the stage's config, that every output it declares has
//! a topic). Both report every problem at once, each naming the file, the
//! line and column, and the key.
//!
//! The file is read as spanned TOML and walked key by key rather than
//! through `serde` derive, because serde stops at the first problem.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Limits, Processor};

mod builder;
mod guarantee;
mod parse;
mod problems;
pub(crate) mod processors;
mod reader;
mod reload_settings;
mod rules;
mod state;
mod table_specs;

pub use builder::{PipelineBuilder, Stage};
pub use guarantee::Guarantee;
pub use problems::{ConfigError, Location, Problem};
pub use processors::{CheckedStage, check_processors};
pub use reload_settings::{Follow, ReloadConfig, Rollback, ShadowRules};
pub use state::{DEFAULT_STATE_DIR, DEFAULT_STATE_MEMORY_MB, StateConfig};
pub use table_specs::{TableFormat, TableSpec};

/// Records per batch unless the stage sets `batch_size`.
pub const DEFAULT_BATCH_SIZE: usize = 500;
/// Encoded bytes at which a batch closes unless the stage sets `batch_bytes`.
pub const DEFAULT_BATCH_BYTES: usize = 1 << 20;
/// How long a batch waits for more records unless the stage sets `max_wait_ms`.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(10);
/// Memory cap per instance unless the stage sets `memory_mb`.
pub const DEFAULT_MEMORY_MB: u64 = 128;
/// CPU deadline per call unless the stage sets `deadline_ms`.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(1000);
/// Interval between offset commits unless `[kafka]` sets `commit_interval_ms`.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_millis(1000);
/// How often a stage probes its group's lag and members unless `[kafka]`
/// sets `lag_interval_ms`.
pub const DEFAULT_LAG_INTERVAL: Duration = Duration::from_secs(5);
/// How long partitions with lag may stay without an owner before the host
/// rejoins the group, unless `[kafka]` sets `rejoin_after_ms`.
pub const DEFAULT_REJOIN_AFTER: Duration = Duration::from_secs(30);
/// How long an owned partition with lag may stay at one offset before it
/// is reported stalled, unless `[kafka]` sets `stalled_after_ms`.
pub const DEFAULT_STALLED_AFTER: Duration = Duration::from_secs(60);
/// Interval between `on-timer` calls of an idle partition unless the stage
/// sets `timer_interval_ms`.
pub const DEFAULT_TIMER_INTERVAL: Duration = Duration::from_millis(1000);

/// A checked pipeline file.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The file, as the user named it (problems are reported against it).
    pub file: PathBuf,
    /// How to reach Kafka.
    pub kafka: KafkaConfig,
    /// The stages, in file order.
    pub stages: Vec<StageConfig>,
    /// `[state]`: the local state stores.
    pub state: StateConfig,
}

/// The `[kafka]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    /// `bootstrap`: comma-separated `host:port` list.
    pub bootstrap: String,
    /// `group`: prefix of every stage's consumer group id
    /// (`<group>.<stage>`).
    pub group: String,
    /// `properties`: librdkafka properties for every client (TLS, SASL...).
    pub properties: Vec<(String, String)>,
    /// `consumer`: librdkafka properties for consumers only.
    pub consumer: Vec<(String, String)>,
    /// `producer`: librdkafka properties for the producer only.
    pub producer: Vec<(String, String)>,
    /// `create_topics`: create missing input, output and DLQ topics.
    pub create_topics: bool,
    /// `new_topic_partitions`: partitions of topics that Partita creates.
    pub new_topic_partitions: i32,
    /// `new_topic_replication`: replication factor of topics it creates.
    pub new_topic_replication: i32,
    /// `commit_interval_ms`: how often a partition commits its progress
    /// (under exactly-once, how often it commits its transaction).
    pub commit_interval: Duration,
    /// `guarantee` (top level or in `[kafka]`): at-least-once or
    /// exactly-once.
    pub guarantee: Guarantee,
    /// `lag_interval_ms`: how often each stage reads its group's lag and
    /// members from the cluster.
    pub lag_interval: Duration,
    /// `rejoin_after_ms`: how long input partitions with lag may have no
    /// owner in the group before this host leaves and rejoins it.
    pub rejoin_after: Duration,
    /// `stalled_after_ms`: how long a partition this host owns may have lag
    /// without advancing before it is reported stalled.
    pub stalled_after: Duration,
}

impl KafkaConfig {
    /// A `[kafka]` table with only `bootstrap` and `group` set, every other
    /// key at the pipeline file's default.
    pub fn new(bootstrap: impl Into<String>, group: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap: bootstrap.into(),
            group: group.into(),
            properties: Vec::new(),
            consumer: Vec::new(),
            producer: Vec::new(),
            create_topics: false,
            new_topic_partitions: 1,
            new_topic_replication: 1,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            guarantee: Guarantee::AtLeastOnce,
            lag_interval: DEFAULT_LAG_INTERVAL,
            rejoin_after: DEFAULT_REJOIN_AFTER,
            stalled_after: DEFAULT_STALLED_AFTER,
        }
    }

    /// The consumer group id of stage `stage`.
    pub fn group_id(&self, stage: &str) -> String {
        format!("{}.{stage}", self.group)
    }

    /// `<group>.<stage>.diffs`: where a stage's candidate writes a sample
    /// of its differences from the live processor.
    pub fn diffs_topic(&self, stage: &str) -> String {
        format!("{}.diffs", self.group_id(stage))
    }
}

/// `<topic>.shadow`: where a candidate's outputs for output topic `topic`
/// go.
pub fn shadow_topic(topic: &str) -> String {
    format!("{topic}.shadow")
}

/// What a stage does with a record its processor rejects or fails on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnError {
    /// Produce it to a dead-letter topic: `topic`, or `<source topic>.dlq`.
    Dlq {
        /// The `dlq` key, when set.
        topic: Option<String>,
    },
    /// Drop it (counted in the metrics).
    Skip,
    /// Stop the pipeline with an error, committing what came before it.
    Stop,
}

/// When a batch closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// `batch_size`: at most this many records.
    pub max_records: usize,
    /// `batch_bytes`: closes once the encoded batch holds this many bytes.
    pub max_bytes: usize,
    /// `max_wait_ms`: closes this long after its first record arrived.
    pub max_wait: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_records: DEFAULT_BATCH_SIZE,
            max_bytes: DEFAULT_BATCH_BYTES,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// Where a stage's keys are in the file, for problems found later.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageLocations {
    /// The `[[stage]]` table.
    pub stage: Option<Location>,
    /// The `processor` value.
    pub processor: Option<Location>,
    /// The `candidate` value.
    pub candidate: Option<Location>,
    /// The `outputs` value.
    pub outputs: Option<Location>,
    /// The `config` value.
    pub config: Option<Location>,
}

/// Where a stage's processor comes from.
#[derive(Clone)]
pub enum ProcessorSource {
    /// A component file (the pipeline file's `processor`, resolved against
    /// its folder); watched for hot reload.
    File(PathBuf),
    /// A component's bytes, with a name for logs and problems.
    Bytes {
        /// What to call it, such as a file name.
        name: String,
        /// The component.
        bytes: Arc<[u8]>,
    },
    /// A component the engine has loaded already.
    Loaded(Processor),
}

impl ProcessorSource {
    /// The component's bytes under `name`.
    pub fn bytes(name: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> Self {
        ProcessorSource::Bytes {
            name: name.into(),
            bytes: bytes.into(),
        }
    }

    /// The file, for a processor that comes from one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            ProcessorSource::File(path) => Some(path),
            _ => None,
        }
    }
}

impl fmt::Display for ProcessorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessorSource::File(path) => write!(f, "{}", path.display()),
            ProcessorSource::Bytes { name, .. } => write!(f, "{name}"),
            ProcessorSource::Loaded(p) => write!(f, "a loaded component ({})", p.version()),
        }
    }
}

impl fmt::Debug for ProcessorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessorSource::File(path) => f.debug_tuple("File").field(path).finish(),
            ProcessorSource::Bytes { name, bytes } => f
                .debug_struct("Bytes")
                .field("name", name)
                .field("len", &bytes.len())
                .finish(),
            ProcessorSource::Loaded(p) => f.debug_tuple("Loaded").field(&p.version()).finish(),
        }
    }
}

impl PartialEq for ProcessorSource {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (ProcessorSource::File(a), ProcessorSource::File(b)) => a == b,
            (
                ProcessorSource::Bytes { name: a, bytes: x },
                ProcessorSource::Bytes { name: b, bytes: y },
            ) => a == b && x == y,
            (ProcessorSource::Loaded(a), ProcessorSource::Loaded(b)) => a.version() == b.version(),
            _ => false,
        }
    }
}

impl From<PathBuf> for ProcessorSource {
    fn from(path: PathBuf) -> Self {
        ProcessorSource::File(path)
    }
}

impl From<&Path> for ProcessorSource {
    fn from(path: &Path) -> Self {
        ProcessorSource::File(path.to_path_buf())
    }
}

impl From<&str> for ProcessorSource {
    fn from(path: &str) -> Self {
        ProcessorSource::File(PathBuf::from(path))
    }
}

impl From<Processor> for ProcessorSource {
    fn from(processor: Processor) -> Self {
        ProcessorSource::Loaded(processor)
    }
}

/// One `[[stage]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StageConfig {
    /// `name`: unique in the file; letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// `processor`: where the component comes from.
    pub processor: ProcessorSource,
    /// `candidate`: a component run beside the processor on the same
    /// records, its outputs to shadow topics and compared (docs/DEPLOY.md,
    /// Candidates); read at start.
    pub candidate: Option<ProcessorSource>,
    /// `input`: one topic, or several co-partitioned topics.
    pub inputs: Vec<String>,
    /// `outputs`: output name → topic, in file order.
    pub outputs: Vec<(String, String)>,
    /// `config`: passed to the processor's `init`, in file order.
    pub config: Vec<(String, String)>,
    /// `tables`: the reference tables, in file order.
    pub tables: Vec<TableSpec>,
    /// `timer_interval_ms`: how often an idle partition's processor gets
    /// an `on-timer` call (it also gets one after each batch).
    pub timer_interval: Duration,
    /// `on_error` and `dlq`.
    pub on_error: OnError,
    /// `memory_mb` and `deadline_ms`.
    pub limits: Limits,
    /// `batch_size`, `batch_bytes` and `max_wait_ms`.
    pub batch: BatchLimits,
    /// `version_header` and `rollback`: hot-reload settings.
    pub reload: ReloadConfig,
    /// Where the stage's keys are in the file.
    pub at: StageLocations,
}

impl StageConfig {
    /// True when the stage may run a candidate: it has a `candidate`, or
    /// it follows deployments (which may bring one).
    pub fn may_have_candidate(&self) -> bool {
        self.candidate.is_some() || self.reload.follow == Follow::Deploy
    }

    /// The topic of output `name`, if the stage maps one.
    pub fn output_topic(&self, name: &str) -> Option<&str> {
        self.outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    }

    /// The dead-letter topic for records read from `source`, if the stage
    /// sends failures to one.
    pub fn dlq_topic(&self, source: &str) -> Option<String> {
        match &self.on_error {
            OnError::Dlq { topic: Some(t) } => Some(t.clone()),
            OnError::Dlq { topic: None } => Some(format!("{source}.dlq")),
            OnError::Skip | OnError::Stop => None,
        }
    }

    /// Every topic the stage writes to: outputs, then dead-letter topics.
    pub fn written_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.outputs.iter().map(|(_, t)| t.clone()).collect();
        for input in &self.inputs {
            topics.extend(self.dlq_topic(input));
        }
        topics.sort();
        topics.dedup();
        topics
    }
}

impl Pipeline {
    /// Reads and checks the pipeline file at `path`.
    pub fn load(path: &Path) -> Result<Pipeline, ConfigError> {
        let file = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Pipeline::parse(path, &text),
            Err(e) => Err(ConfigError {
                problems: vec![Problem {
                    file,
                    at: None,
                    place: String::new(),
                    message: format!("cannot read: {e}"),
                }],
            }),
        }
    }

    /// Checks `text` as the content of the pipeline file `path` (processor
    /// paths are resolved against its folder).
    pub fn parse(path: &Path, text: &str) -> Result<Pipeline, ConfigError> {
        parse::parse(path, text)
    }

    /// Every topic a stage reads, writes or loads as a table.
    pub fn topics(&self) -> Vec<String> {
        let mut topics = Vec::new();
        for s in &self.stages {
            topics.extend(s.inputs.iter().cloned());
            topics.extend(s.written_topics());
            topics.extend(s.tables.iter().map(|t| t.topic.clone()));
        }
        topics.sort();
        topics.dedup();
        topics
    }

    /// The topics Partita names itself and so creates when missing, as it
    /// does the changelogs: the default dead-letter topics (`<input>.dlq`),
    /// and for a stage that follows deployments the shadow topics of its
    /// candidate (`<output topic>.shadow`) and its differences
    /// (`<group>.<stage>.diffs`). A topic the pipeline names must exist,
    /// unless `create_topics`.
    pub fn own_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .stages
            .iter()
            .filter(|s| matches!(s.on_error, OnError::Dlq { topic: None }))
            .flat_map(|s| s.inputs.iter().filter_map(|i| s.dlq_topic(i)))
            .collect();
        for s in self.stages.iter().filter(|s| s.may_have_candidate()) {
            topics.extend(s.outputs.iter().map(|(_, t)| shadow_topic(t)));
            topics.push(self.kafka.diffs_topic(&s.name));
        }
        topics.sort();
        topics.dedup();
        topics
    }
}

#[cfg(test)]
pub(crate) mod tests;
