//! The `[state]` table of the pipeline file: where the local state stores
//! live and how much memory each may use.
//!
//! ```toml
//! [state]
//! dir = "state"       # default ".partita-state", next to the pipeline file
//! memory_mb = 64      # per (stage, partition): page cache, write buffer, key filter
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
    /// page cache, write buffer and key filter; the state itself may be
    /// larger).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pipeline;

    const MINIMAL: &str = r#"[kafka]
bootstrap = "127.0.0.1:9092"
group = "orders"

[[stage]]
name = "pass"
processor = "p.wasm"
input = "in"
outputs = { default = "out" }
"#;

    fn parse(folder: &Path, state: &str) -> Result<Pipeline, Vec<String>> {
        std::fs::write(folder.join("p.wasm"), b"not checked here").unwrap();
        let file = folder.join("pipeline.toml");
        let text = format!("{MINIMAL}{state}");
        Pipeline::parse(&file, &text).map_err(|e| {
            let dir = folder.display().to_string();
            e.problems
                .iter()
                .map(|p| p.to_string().replace(&dir, "DIR"))
                .collect()
        })
    }

    #[test]
    fn the_state_folder_is_next_to_the_pipeline_file_unless_set() {
        let d = tempfile::tempdir().unwrap();
        let p = parse(d.path(), "").unwrap();
        assert_eq!(p.state.dir, d.path().join(".partita-state"));
        assert_eq!(p.state.memory_mb, DEFAULT_STATE_MEMORY_MB);
        assert_eq!(p.state.memory_bytes(), 64 << 20);

        let p = parse(d.path(), "\n[state]\ndir = \"data/state\"\nmemory_mb = 8\n").unwrap();
        assert_eq!(p.state.dir, d.path().join("data/state"));
        assert_eq!(p.state.memory_bytes(), 8 << 20);
        let p = parse(d.path(), "\n[state]\ndir = \"/var/lib/partita\"\n").unwrap();
        assert_eq!(p.state.dir, Path::new("/var/lib/partita"));
    }

    #[test]
    fn bad_state_keys_are_refused_where_they_are_written() {
        let d = tempfile::tempdir().unwrap();
        let p = |text: &str| parse(d.path(), text).unwrap_err();
        assert_eq!(
            p("\n[state]\ndir = 1\n"),
            ["DIR/pipeline.toml:12:7: state: dir: expected a string, found integer"]
        );
        assert_eq!(
            p("\n[state]\ndir = \" \"\n"),
            ["DIR/pipeline.toml:12:7: state: dir: must not be empty"]
        );
        assert_eq!(
            p("\n[state]\nmemory_mb = 0\n"),
            [
                "DIR/pipeline.toml:12:13: state: memory_mb: expected an integer from 1 to 1048576, found 0"
            ]
        );
        assert_eq!(
            p("\n[state]\nsize = 3\n"),
            ["DIR/pipeline.toml:12:1: state: unknown key `size` (expected one of: dir, memory_mb)"]
        );
        std::fs::write(d.path().join("p.wasm"), b"").unwrap();
        let top = format!("state = 3\n{MINIMAL}");
        let err = Pipeline::parse(&d.path().join("pipeline.toml"), &top).unwrap_err();
        assert_eq!(
            err.problems[0]
                .to_string()
                .replace(&d.path().display().to_string(), "DIR"),
            "DIR/pipeline.toml:1:9: state: expected a table, found integer"
        );
    }
}
