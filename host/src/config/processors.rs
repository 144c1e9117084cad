//! The checks only the processors can answer: each stage's file is loaded
//! by the engine and instantiated once with the stage's config, which gives
//! its declared outputs; each declared output must have a topic and each
//! mapped output must be declared.

use std::sync::Arc;

use super::{ConfigError, Location, Pipeline, Problem, StageConfig};
use crate::engine::{Engine, InstanceSetup, Processor};
use crate::state::MemoryState;
use crate::tables::MemoryTables;

/// A stage whose processor loaded, started and declared outputs that all
/// have topics.
#[derive(Clone)]
pub struct CheckedStage {
    /// The loaded processor.
    pub processor: Processor,
    /// The output names its `init` declared, in declaration order.
    pub outputs: Vec<String>,
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
        let processor = match engine.load(&stage.processor) {
            Ok(p) => p,
            Err(e) => {
                add(stage.at.processor, place("processor"), e.to_string());
                continue;
            }
        };
        let instance = match processor.instantiate(validation_setup(stage)) {
            Ok(i) => i,
            Err(e) => {
                let at = stage.at.config.or(stage.at.processor);
                let key = if stage.at.config.is_some() {
                    "config"
                } else {
                    "processor"
                };
                add(at, place(key), e.to_string());
                continue;
            }
        };
        let outputs = instance.outputs().to_vec();
        drop(instance);
        let at = stage.at.outputs.or(stage.at.stage);
        let mut ok = true;
        for name in &outputs {
            if stage.output_topic(name).is_none() {
                let msg = format!("processor emits \"{name}\" but the stage maps no topic to it");
                add(at, place("outputs"), msg);
                ok = false;
            }
        }
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
        if ok {
            checked.push(CheckedStage { processor, outputs });
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

/// An instance set-up for the one-off start that validation does.
fn validation_setup(stage: &StageConfig) -> InstanceSetup {
    InstanceSetup {
        stage: stage.name.clone(),
        partition: -1,
        config: stage.config.clone(),
        state: Box::new(MemoryState::new()),
        tables: Arc::new(MemoryTables::new()),
        limits: stage.limits,
        counters: Default::default(),
    }
}
