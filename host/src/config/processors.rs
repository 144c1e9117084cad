//! The checks only the processors can answer: each stage's file is loaded
//! by the engine and given its [`trial`] (instantiated once with the
//! stage's config, which gives its declared outputs, each of which must
//! have a topic); at start, each mapped output must also be declared.
//! Hot reload puts every new version through the same trial.

use std::sync::Arc;

use std::path::Path;

use super::{ConfigError, Location, Pipeline, Problem, ProcessorSource, StageConfig};
use crate::engine::{Engine, InstanceError, InstanceSetup, Processor};
use crate::state::MemoryState;
use crate::tables::{MemoryTables, Tables};

/// Why a processor failed its trial for a stage.
#[derive(Debug)]
pub(crate) enum TrialError {
    /// It could not be instantiated, or its `init` refused the config.
    Start(InstanceError),
    /// It declares outputs the stage maps no topic to.
    Unmapped {
        /// Every output it declares, in order.
        declared: Vec<String>,
        /// Those without a topic.
        unmapped: Vec<String>,
    },
}

impl TrialError {
    /// One line per problem.
    pub(crate) fn messages(&self) -> Vec<String> {
        match self {
            TrialError::Start(e) => vec![e.to_string()],
            TrialError::Unmapped { unmapped, .. } => {
                unmapped.iter().map(|name| unmapped_message(name)).collect()
            }
        }
    }
}

fn unmapped_message(name: &str) -> String {
    format!("processor emits \"{name}\" but the stage maps no topic to it")
}

/// Loads a processor from where it comes from.
fn load(engine: &Engine, source: &ProcessorSource) -> Result<Processor, crate::engine::LoadError> {
    match source {
        ProcessorSource::File(path) => engine.load(path),
        ProcessorSource::Bytes { name, bytes } => engine.load_bytes(Path::new(name), bytes),
        ProcessorSource::Loaded(p) => Ok(p.clone()),
    }
}

/// Starts `processor` once with `stage`'s configuration (partition -1,
/// empty state, `tables`) and checks that every output it declares has a
/// topic; returns the declared outputs, in order.
pub(crate) fn trial(
    processor: &Processor,
    stage: &StageConfig,
    tables: Arc<dyn Tables>,
) -> Result<Vec<String>, TrialError> {
    let setup = InstanceSetup {
        stage: stage.name.clone(),
        partition: -1,
        config: stage.config.clone(),
        state: Box::new(MemoryState::new()),
        tables,
        limits: stage.limits,
        counters: Default::default(),
    };
    let outputs = processor
        .instantiate(setup)
        .map_err(TrialError::Start)?
        .outputs()
        .to_vec();
    let unmapped: Vec<String> = outputs
        .iter()
        .filter(|name| stage.output_topic(name).is_none())
        .cloned()
        .collect();
    if !unmapped.is_empty() {
        return Err(TrialError::Unmapped {
            declared: outputs,
            unmapped,
        });
    }
    Ok(outputs)
}

/// A stage whose processor loaded, started and declared outputs that all
/// have topics.
#[derive(Clone)]
pub struct CheckedStage {
    /// The loaded processor.
    pub processor: Processor,
    /// The output names its `init` declared, in declaration order.
    pub outputs: Vec<String>,
    /// The loaded candidate, when the stage has one.
    pub candidate: Option<Processor>,
}

/// Loads and starts every stage's processor once, in stage order, and
/// checks its outputs against the stage's `outputs` table.
pub fn check_processors(
    pipeline: &Pipeline,
    engine: &Engine,
) -> Result<Vec<CheckedStage>, ConfigError> {
    let file = pipeline.file.display().to_string();
    let mut problems: Vec<(Option<Location>, Problem)> = Vec::new();
    let mut checked = Vec::new();
    for stage in &pipeline.stages {
        let mut add = |at: Option<Location>, place: String, message: String| {
            problems.push((
                at,
                Problem {
                    file: file.clone(),
                    at,
                    place,
                    message,
                },
            ));
        };
        let place = |key: &str| format!("stage \"{}\": {key}", stage.name);
        let processor = match load(engine, &stage.processor) {
            Ok(p) => p,
            Err(e) => {
                add(stage.at.processor, place("processor"), e.to_string());
                continue;
            }
        };
        let at = stage.at.outputs.or(stage.at.stage);
        let (outputs, mut ok) = match trial(&processor, stage, Arc::new(MemoryTables::new())) {
            Ok(outputs) => (outputs, true),
            Err(e @ TrialError::Start(_)) => {
                let at = stage.at.config.or(stage.at.processor);
                let key = if stage.at.config.is_some() {
                    "config"
                } else {
                    "processor"
                };
                add(at, place(key), e.messages().remove(0));
                continue;
            }
            Err(TrialError::Unmapped { declared, unmapped }) => {
                for name in &unmapped {
                    add(at, place("outputs"), unmapped_message(name));
                }
                (declared, false)
            }
        };
        for (name, _) in &stage.outputs {
            if !outputs.contains(name) {
                let declared = if outputs.is_empty() {
                    "none".to_string()
                } else {
                    outputs.join(", ")
                };
                let msg = format!(
                    "the processor declares no output \"{name}\" (it declares: {declared})"
                );
                add(at, place(&format!("outputs.{name}")), msg);
                ok = false;
            }
        }
        // A candidate passes the same trial, its problems at its own key.
        let candidate = match &stage.candidate {
            None => None,
            Some(source) => {
                let tried = load(engine, source)
                    .map_err(|e| vec![e.to_string()])
                    .and_then(|c| {
                        trial(&c, stage, Arc::new(MemoryTables::new()))
                            .map(|_| c)
                            .map_err(|e| e.messages())
                    });
                match tried {
                    Ok(c) => Some(c),
                    Err(messages) => {
                        for m in messages {
                            add(stage.at.candidate, place("candidate"), m);
                        }
                        ok = false;
                        None
                    }
                }
            }
        };
        if ok {
            checked.push(CheckedStage {
                processor,
                outputs,
                candidate,
            });
        }
    }
    if problems.is_empty() {
        return Ok(checked);
    }
    problems.sort_by_key(|(at, _)| at.map_or((usize::MAX, 0), |a| (a.line, a.column)));
    Err(ConfigError {
        problems: problems.into_iter().map(|(_, p)| p).collect(),
    })
}
