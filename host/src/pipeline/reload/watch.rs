//! Watching the stages' processor files with `notify`.
//!
//! The folder of each file is watched, not the file: editors, `cp` and
//! `cargo build` often write a new file and rename it over the old one,
//! which a watch on the old file's inode would miss. Events on other files
//! of the folder are ignored, and so are reads (the host's own reads of
//! the file would otherwise trigger reloads).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Instant;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use super::coordinator::Event;

/// Which stages use which file name, per watched folder.
type Watched = BTreeMap<PathBuf, BTreeMap<OsString, Vec<usize>>>;

/// Starts watching the folders of `files` (stage index → processor file),
/// sending [`Event::Changed`] to `events` for each change of one of them.
/// Folders that cannot be watched are logged and skipped (SIGHUP still
/// reloads them).
pub(crate) fn watch(files: &[(usize, &Path)], events: Sender<Event>) -> Option<RecommendedWatcher> {
    let mut watched: Watched = BTreeMap::new();
    for (stage, file) in files {
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
            tracing::warn!("cannot watch {}: no folder or file name", file.display());
            continue;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let dir = match std::fs::canonicalize(dir) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("cannot watch {}: {e}", dir.display());
                continue;
            }
        };
        watched
            .entry(dir)
            .or_default()
            .entry(name.to_os_string())
            .or_default()
            .push(*stage);
    }
    let dirs: Vec<PathBuf> = watched.keys().cloned().collect();
    let handler = move |result: notify::Result<notify::Event>| match result {
        Ok(event) => {
            if !is_change(&event.kind) {
                return;
            }
            let now = Instant::now();
            for path in &event.paths {
                for stage in stages_of(&watched, path) {
                    let _ = events.send(Event::Changed { stage, at: now });
                }
            }
        }
        Err(e) => tracing::warn!("watching processor files: {e}"),
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(
                "cannot watch processor files ({e}); send SIGHUP to reload them instead"
            );
            return None;
        }
    };
    for dir in dirs {
        match watcher.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => tracing::debug!("watching {} for processor changes", dir.display()),
            Err(e) => tracing::warn!(
                "cannot watch {} ({e}); send SIGHUP to reload its processors",
                dir.display()
            ),
        }
    }
    Some(watcher)
}

/// True for the events that may change a file's content or replace it.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Any | EventKind::Other => true,
    }
}

/// The stages whose processor file is `path`.
fn stages_of(watched: &Watched, path: &Path) -> Vec<usize> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    watched
        .get(dir)
        .and_then(|names| names.get(name))
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};

    #[test]
    fn reads_are_not_changes() {
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(is_change(&EventKind::Remove(RemoveKind::File)));
    }

    #[test]
    fn events_map_to_the_stages_using_the_file() {
        let mut watched: Watched = BTreeMap::new();
        let names = watched.entry(PathBuf::from("/p")).or_default();
        names.insert("a.wasm".into(), vec![0, 2]);
        names.insert("b.wasm".into(), vec![1]);
        assert_eq!(stages_of(&watched, Path::new("/p/a.wasm")), [0, 2]);
        assert_eq!(stages_of(&watched, Path::new("/p/b.wasm")), [1]);
        assert!(stages_of(&watched, Path::new("/p/.a.wasm.tmp")).is_empty());
        assert!(stages_of(&watched, Path::new("/q/a.wasm")).is_empty());
    }
}
