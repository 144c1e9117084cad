//! The `[state]` table of the pipeline file: where the local state stores
//! live and how much memory each may use.
//!
//! ```toml
//! [state]
//! dir = "state"       # default ".partita-state", next to the pipeline file
//! memory_mb = 64      # per (stage, partition): page cache plus write buffer
//! ```

use std::path::{Path, PathBuf};

use toml::de::DeValue;

use super::problems::Problems;
use super::reader::TableReader;

/// The state folder unless `[state]` sets `dir`, next to the pipeline file.
pub const DEFAULT_STATE_DIR: &str = ".partita-state";
/// Memory per (stage, partition) store unless `[state]` sets `memory_mb`.
pub const DEFAULT_STATE_MEMORY_MB: u64 = 64;

/// The `[state]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// `dir`: the folder of the local stores, resolved against the
    /// pipeline file's folder. Each (stage, partition) has
    /// `<dir>/<group>/<stage>/<partition>/`.
    pub dir: PathBuf,
    /// `memory_mb`: memory for one (stage, partition) store, in MiB (its
    /// page cache and write buffer; the state itself may be larger).
    pub memory_mb: u64,
}

impl StateConfig {
    /// The defaults for a pipeline file in folder `base`.
    pub fn in_folder(base: &Path) -> Self {
        StateConfig {
            dir: base.join(DEFAULT_STATE_DIR),
            memory_mb: DEFAULT_STATE_MEMORY_MB,
        }
    }

    /// The memory budget of one store, in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
}

impl Default for StateConfig {
    /// The defaults for a pipeline file in the current folder.
    fn default() -> Self {
        StateConfig::in_folder(Path::new(""))
    }
}

/// Reads the optional `[state]` table of `top`; `base` is the pipeline
/// file's folder. Problems are recorded and the defaults used.
pub(super) fn read(
    top: &mut TableReader<'_, '_>,
    base: &Path,
    p: &mut Problems<'_>,
) -> StateConfig {
    let mut config = StateConfig::in_folder(base);
    let Some(v) = top.value("state") else {
        return config;
    };
    let DeValue::Table(t) = v.get_ref() else {
        let found = v.get_ref().type_str();
        p.add(
            Some(v.span()),
            "state",
            format!("expected a table, found {found}"),
        );
        return config;
    };
    let mut r = TableReader::new(t, v.span(), "state");
    if let Some((dir, span)) = r.string("dir", p) {
        if dir.trim().is_empty() {
            p.add(Some(span), r.key_place("dir"), "must not be empty");
        } else {
            config.dir = base.join(dir);
        }
    }
    if let Some(mb) = r.integer("memory_mb", 1, 1 << 20, p) {
        config.memory_mb = mb;
    }
    r.finish(p);
    config
}
