//! The trial a new version passes before any worker sees it: loaded by the
//! engine (compiled, or taken from the cache by content hash), checked
//! against the world, instantiated once and `init`-ed with the stage's
//! config, and its declared outputs checked against the stage's topics.

use std::path::Path;
use std::sync::Arc;

use super::live::Refusal;
use crate::config::StageConfig;
use crate::engine::{Engine, InstanceError, InstanceSetup, LoadError, Processor};
use crate::state::MemoryState;
use crate::tables::Tables;

/// Why a version did not pass its trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The kind, the metric label.
    pub reason: Refusal,
    /// What went wrong, for the log.
    pub message: String,
}

/// Loads `bytes` (the content of `path`) and runs the trial for `stage`.
pub fn try_version(
    engine: &Engine,
    stage: &StageConfig,
    tables: &Arc<dyn Tables>,
    path: &Path,
    bytes: &[u8],
) -> Result<Processor, Refused> {
    let processor = engine.load_bytes(path, bytes).map_err(|e| Refused {
        reason: match e {
            LoadError::Read { .. } => Refusal::Read,
            LoadError::NotAComponent { .. } => Refusal::NotAComponent,
            LoadError::WrongWorld { .. } => Refusal::WrongWorld,
        },
        message: e.to_string(),
    })?;
    let setup = InstanceSetup {
        stage: stage.name.clone(),
        partition: -1,
        config: stage.config.clone(),
        state: Box::new(MemoryState::new()),
        tables: tables.clone(),
        limits: stage.limits,
        counters: Default::default(),
    };
    let instance = processor.instantiate(setup).map_err(|e| Refused {
        reason: match e {
            InstanceError::Instantiate { .. } => Refusal::Instantiate,
            InstanceError::Init { .. } => Refusal::Init,
        },
        message: e.to_string(),
    })?;
    let unmapped: Vec<&str> = instance
        .outputs()
        .iter()
        .filter(|name| stage.output_topic(name).is_none())
        .map(String::as_str)
        .collect();
    if !unmapped.is_empty() {
        return Err(Refused {
            reason: Refusal::Outputs,
            message: format!(
                "processor {} emits {} but the stage maps no topic to {}",
                processor.version(),
                unmapped
                    .iter()
                    .map(|n| format!("\"{n}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
                if unmapped.len() == 1 { "it" } else { "them" }
            ),
        });
    }
    Ok(processor)
}
