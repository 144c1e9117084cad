//! Where the local stores live, and whether one can be trusted at start.
//!
//! Each (stage, partition) has its own folder,
//! `<dir>/<group>/<stage>/<partition>/`, holding the store's file and,
//! while the store is closed after a clean stop, a marker file
//! [`CLEAN_MARKER`]. The marker is written by [`DiskState`]'s `close`
//! (after the partition's last commit, on revoke or stop) and removed when
//! the store is opened again, so its absence at open means the previous
//! run stopped without closing: a crash, `kill -9`, a power cut.
//!
//! Under at-least-once an unclean stop is harmless: the store's checkpoint
//! is never ahead of its data, and the changelog from the checkpoint on is
//! applied again. Under exactly-once (Kafka Streams' rule) the store may
//! hold writes of a transaction that aborted, which the changelog read
//! `read_committed` never shows: such a store is wiped and rebuilt from the
//! whole changelog.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::disk::{DiskOptions, DiskState};

/// The file whose presence says a store was closed cleanly.
pub const CLEAN_MARKER: &str = "CLEAN";

/// Why an opened store was emptied first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wiped {
    /// Exactly-once, and the store was not closed cleanly.
    Unclean,
    /// The caller asked for it (the store is ahead of its changelog, or a
    /// transaction aborted).
    Asked,
}

/// A store opened for a partition, before its restore.
#[derive(Debug)]
pub struct OpenedStore {
    /// The store.
    pub store: DiskState,
    /// Whether the store had been closed cleanly.
    pub was_clean: bool,
    /// Set when the store was emptied before opening.
    pub wiped: Option<Wiped>,
}

/// The local stores of one pipeline.
#[derive(Debug, Clone)]
pub struct LocalStores {
    root: PathBuf,
    options: DiskOptions,
    exactly_once: bool,
}

impl LocalStores {
    /// The stores under `dir/<group>/`, with `options` each; `exactly_once`
    /// selects the wipe-when-unclean rule.
    pub fn new(dir: &Path, group: &str, options: DiskOptions, exactly_once: bool) -> Self {
        LocalStores {
            root: dir.join(group),
            options,
            exactly_once,
        }
    }

    /// The folder of (stage, partition).
    pub fn dir_of(&self, stage: &str, partition: i32) -> PathBuf {
        self.root.join(stage).join(partition.to_string())
    }

    /// Opens the store of (stage, partition), creating it if needed, and
    /// removes its clean marker (it is written again at the next clean
    /// close). Under exactly-once a store without the marker is wiped
    /// first. The caller then restores it from the changelog
    /// ([`crate::kafka::changelog::Restorer`]).
    pub fn open(&self, stage: &str, partition: i32) -> anyhow::Result<OpenedStore> {
        let dir = self.dir_of(stage, partition);
        let marker = dir.join(CLEAN_MARKER);
        let was_clean = marker.exists();
        let existed = dir.join(super::disk::FILE_NAME).exists();
        let mut wiped = None;
        if self.exactly_once && existed && !was_clean {
            wipe(&dir)?;
            wiped = Some(Wiped::Unclean);
        }
        let store = DiskState::open(&dir, self.options)?;
        if was_clean {
            std::fs::remove_file(&marker)
                .with_context(|| format!("cannot remove {}", marker.display()))?;
        }
        Ok(OpenedStore {
            store,
            was_clean,
            wiped,
        })
    }

    /// Closes `store` and empties its folder, then opens it again empty:
    /// for a store that must be rebuilt from the whole changelog (it is
    /// ahead of the changelog, or under exactly-once a transaction whose
    /// writes it holds was aborted).
    pub fn reopen_empty(&self, store: DiskState) -> anyhow::Result<OpenedStore> {
        let dir = store.path().parent().map(Path::to_path_buf);
        drop(store);
        let Some(dir) = dir else {
            anyhow::bail!("a state file without a folder");
        };
        wipe(&dir)?;
        Ok(OpenedStore {
            store: DiskState::open(&dir, self.options)?,
            was_clean: false,
            wiped: Some(Wiped::Asked),
        })
    }
}

/// Writes the clean marker in `dir` (the store there was just flushed).
pub(super) fn mark_clean(dir: &Path) -> anyhow::Result<()> {
    let marker = dir.join(CLEAN_MARKER);
    std::fs::write(&marker, b"closed cleanly\n")
        .with_context(|| format!("cannot write {}", marker.display()))
}

fn wipe(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot empty {}", dir.display())),
    }
}
