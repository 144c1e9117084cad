//! Pipelines built in code: [`Pipeline::builder`] and [`Stage`]. A stage's
//! processor may be a file, a component's bytes or a component the engine
//! has loaded; every other setting starts at the pipeline file's default.
//! [`PipelineBuilder::build`] checks the same rules as a pipeline file, in
//! the same words, and reports every problem at once (as [`ConfigError`],
//! with `pipeline` in place of a file name and no line).
//!
//! ```no_run
//! use partita::config::{KafkaConfig, Pipeline, ProcessorSource, Stage};
//!
//! let component = std::fs::read("csv_to_json.wasm").unwrap();
//! let pipeline = Pipeline::builder(KafkaConfig::new("127.0.0.1:9092", "orders"))
//!     .stage(
//!         Stage::new("parse")
//!             .processor(ProcessorSource::bytes("csv_to_json.wasm", component))
//!             .input("legacy.orders")
//!             .output("default", "orders.json")
//!             .config("columns", "id,customer,amount"),
//!     )
//!     .build()
//!     .unwrap();
//! ```

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use super::rules;
use super::{
    BatchLimits, ConfigError, DEFAULT_DEADLINE, DEFAULT_MEMORY_MB, DEFAULT_TIMER_INTERVAL,
    KafkaConfig, OnError, Pipeline, Problem, ProcessorSource, ReloadConfig, StageConfig,
    StageLocations, StateConfig, TableSpec,
};
use crate::engine::Limits;

/// What a pipeline built in code is called in its problems.
const NAME: &str = "pipeline";

/// A pipeline under construction; see the module docs.
#[derive(Debug, Clone)]
pub struct PipelineBuilder {
    kafka: KafkaConfig,
    state: StateConfig,
    stages: Vec<Stage>,
}

/// One stage under construction, for [`PipelineBuilder::stage`].
#[derive(Debug, Clone)]
pub struct Stage {
    name: String,
    processor: Option<ProcessorSource>,
    candidate: Option<ProcessorSource>,
    inputs: Vec<String>,
    outputs: Vec<(String, String)>,
    config: Vec<(String, String)>,
    tables: Vec<TableSpec>,
    timer_interval: Duration,
    on_error: OnError,
    limits: Limits,
    batch: BatchLimits,
    reload: ReloadConfig,
}

impl Pipeline {
    /// A pipeline built in code that reaches Kafka as `kafka` says, keeping
    /// its state in `./state` unless [`PipelineBuilder::state`] says
    /// otherwise.
    pub fn builder(kafka: KafkaConfig) -> PipelineBuilder {
        PipelineBuilder {
            kafka,
            state: StateConfig::default(),
            stages: Vec::new(),
        }
    }
}

impl PipelineBuilder {
    /// Where the local state stores are kept.
    pub fn state(mut self, state: StateConfig) -> Self {
        self.state = state;
        self
    }

    /// Adds a stage, after those added before.
    pub fn stage(mut self, stage: Stage) -> Self {
        self.stages.push(stage);
        self
    }

    /// The pipeline, or every problem with it.
    pub fn build(self) -> Result<Pipeline, ConfigError> {
        let mut problems = Vec::new();
        let mut add = |place: String, message: String| {
            problems.push(Problem {
                file: NAME.to_string(),
                at: None,
                place,
                message,
            });
        };
        if let Some(m) = rules::name_problem(&self.kafka.group, "group") {
            add("kafka: group".into(), m);
        }
        let mut names = HashSet::new();
        let mut stages = Vec::new();
        for (index, stage) in self.stages.into_iter().enumerate() {
            let place = match rules::name_problem(&stage.name, "stage name") {
                Some(m) => {
                    add(format!("stage[{index}]: name"), m);
                    format!("stage[{index}]")
                }
                None => format!("stage \"{}\"", stage.name),
            };
            if !names.insert(stage.name.clone()) {
                add(format!("{place}: name"), rules::SAME_NAME.into());
            }
            if let Some(config) = stage.check(&place, &mut add) {
                stages.push(config);
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        Ok(Pipeline {
            file: PathBuf::from(NAME),
            kafka: self.kafka,
            stages,
            state: self.state,
        })
    }
}

impl Stage {
    /// A stage named `name` (letters, digits, `.`, `_`, `-`; unique in the
    /// pipeline), with the pipeline file's defaults: dead letters to
    /// `<input>.dlq`, 128 MiB and 1 s per call, batches of up to 500
    /// records, a timer call every second when idle.
    pub fn new(name: impl Into<String>) -> Self {
        Stage {
            name: name.into(),
            processor: None,
            candidate: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            config: Vec::new(),
            tables: Vec::new(),
            timer_interval: DEFAULT_TIMER_INTERVAL,
            on_error: OnError::Dlq { topic: None },
            limits: Limits {
                memory_bytes: (DEFAULT_MEMORY_MB as usize) << 20,
                deadline: DEFAULT_DEADLINE,
                ..Limits::default()
            },
            batch: BatchLimits::default(),
            reload: ReloadConfig::default(),
        }
    }

    /// The processor: a file path, [`ProcessorSource::bytes`] or a loaded
    /// [`crate::engine::Processor`].
    pub fn processor(mut self, processor: impl Into<ProcessorSource>) -> Self {
        self.processor = Some(processor.into());
        self
    }

    /// A candidate run beside the processor on the same records, its
    /// outputs to shadow topics and compared (docs/DEPLOY.md, Candidates).
    pub fn candidate(mut self, candidate: impl Into<ProcessorSource>) -> Self {
        self.candidate = Some(candidate.into());
        self
    }

    /// Adds an input topic (several must be co-partitioned).
    pub fn input(mut self, topic: impl Into<String>) -> Self {
        self.inputs.push(topic.into());
        self
    }

    /// Sends the processor's output `name` to `topic`.
    pub fn output(mut self, name: impl Into<String>, topic: impl Into<String>) -> Self {
        self.outputs.push((name.into(), topic.into()));
        self
    }

    /// Adds a configuration entry, passed to the processor's `init`.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// Adds a reference table.
    pub fn table(mut self, table: TableSpec) -> Self {
        self.tables.push(table);
        self
    }

    /// What happens to records the processor rejects or fails on.
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// Memory and CPU limits per call.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// When batches close.
    pub fn batch(mut self, batch: BatchLimits) -> Self {
        self.batch = batch;
        self
    }

    /// How often an idle partition's processor gets an `on-timer` call.
    pub fn timer_interval(mut self, interval: Duration) -> Self {
        self.timer_interval = interval;
        self
    }

    /// Hot-reload settings (version header, rollback).
    pub fn reload(mut self, reload: ReloadConfig) -> Self {
        self.reload = reload;
        self
    }

    /// The stage's configuration, or `None` after adding its problems.
    fn check(self, place: &str, add: &mut impl FnMut(String, String)) -> Option<StageConfig> {
        let mut ok = true;
        let mut problem = |key: &str, message: String| {
            add(format!("{place}: {key}"), message);
            ok = false;
        };
        for (key, source) in [
            ("processor", &self.processor),
            ("candidate", &self.candidate),
        ] {
            if let Some(ProcessorSource::File(path)) = source
                && !path.is_file()
            {
                problem(key, format!("file {} not found", path.display()));
            }
        }
        if self.processor.is_none() {
            problem("processor", "missing key `processor`".into());
        }
        if self.inputs.is_empty() {
            problem("input", rules::NO_INPUT.into());
        }
        for (i, topic) in self.inputs.iter().enumerate() {
            if let Some(m) = rules::topic_problem(topic) {
                problem("input", m);
            }
            if self.inputs[..i].contains(topic) {
                problem("input", rules::listed_twice(topic));
            }
        }
        for (name, topic) in &self.outputs {
            let key = format!("outputs.{name}");
            if let Some(m) = rules::topic_problem(topic) {
                problem(&key, m);
            }
            if self.inputs.contains(topic) {
                problem(&key, rules::a_loop(topic));
            }
        }
        if let OnError::Dlq { topic: Some(topic) } = &self.on_error {
            if let Some(m) = rules::topic_problem(topic) {
                problem("dlq", m);
            }
            if self.inputs.contains(topic) {
                problem("dlq", rules::a_loop(topic));
            }
        }
        for table in &self.tables {
            if let Some(m) = rules::topic_problem(&table.topic) {
                problem(&format!("tables.{}", table.name), m);
            }
        }
        if !ok {
            return None;
        }
        Some(StageConfig {
            name: self.name,
            processor: self.processor?,
            candidate: self.candidate,
            inputs: self.inputs,
            outputs: self.outputs,
            config: self.config,
            tables: self.tables,
            timer_interval: self.timer_interval,
            on_error: self.on_error,
            limits: self.limits,
            batch: self.batch,
            reload: self.reload,
            at: StageLocations::default(),
        })
    }
}

#[cfg(test)]
mod tests;
