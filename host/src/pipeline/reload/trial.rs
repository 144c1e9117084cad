//! The trial a new version passes before any worker sees it: loaded by the
//! engine (compiled, or taken from the cache by content hash), checked
//! against the world, then the same trial as at start
//! ([`crate::config::processors::trial`]: instantiated once and `init`-ed
//! with the stage's config, its declared outputs checked against the
//! stage's topics).

use std::path::Path;
use std::sync::Arc;

use super::live::Refusal;
use crate::config::StageConfig;
use crate::config::processors::{self as config, TrialError};
use crate::engine::{Engine, InstanceError, LoadError, Processor};
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
    match config::trial(&processor, stage, tables.clone()) {
        Ok(_) => Ok(processor),
        Err(e) => Err(Refused {
            reason: match e {
                TrialError::Start(InstanceError::Instantiate { .. }) => Refusal::Instantiate,
                TrialError::Start(InstanceError::Init { .. }) => Refusal::Init,
                TrialError::Unmapped { .. } => Refusal::Outputs,
            },
            message: e.messages().join("; "),
        }),
    }
}
