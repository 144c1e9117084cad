//! The on-disk cache of compiled components.
//!
//! A compiled artifact is stored under a name made of the component file's
//! content hash and a hash of everything that makes an artifact usable by
//! this engine (wasmtime's version and the engine's compilation settings,
//! from `precompile_compatibility_hash`). A changed file or a new wasmtime
//! thus gets a new name and never reads a stale artifact. Files are written
//! to a temporary name and renamed into place, so a reader never sees half
//! an artifact, even with several hosts sharing the folder.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

/// A [`Hasher`] feeding blake3, so that the engine's compatibility hash gives
/// the same name in every process (std's default hasher is randomly keyed).
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        let h = self.0.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&h.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Short hex fingerprint of what makes an artifact loadable by `engine`.
pub(crate) fn engine_fingerprint(engine: &wasmtime::Engine) -> String {
    let mut h = Blake3Hasher(blake3::Hasher::new());
    // Covers wasmtime's version and every setting that changes the code.
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The artifact cache in one folder.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    fingerprint: String,
}

impl ArtifactCache {
    /// A cache in `dir` (created on first store) for artifacts of `engine`.
    pub(crate) fn new(dir: PathBuf, engine: &wasmtime::Engine) -> Self {
        ArtifactCache {
            dir,
            fingerprint: engine_fingerprint(engine),
        }
    }

    /// Where the artifact of a component whose content hash is `hash` lives.
    pub(crate) fn path_for(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}-{}.cwasm", self.fingerprint))
    }

    /// The cached component for `hash`, if a usable artifact is there.
    pub(crate) fn load(&self, engine: &wasmtime::Engine, hash: &str) -> Option<Component> {
        let path = self.path_for(hash);
        if !path.is_file() {
            return None;
        }
        match deserialize(engine, &path) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable compiled artifact: {e:#}");
                None
            }
        }
    }

    /// Stores the compiled `component` for `hash`. Failures only cost a
    /// compilation next time, so they are logged, not returned.
    pub(crate) fn store(&self, hash: &str, component: &Component) {
        if let Err(e) = self.try_store(hash, component) {
            tracing::warn!(dir = %self.dir.display(), "cannot cache compiled component: {e:#}");
        }
    }

    fn try_store(&self, hash: &str, component: &Component) -> anyhow::Result<()> {
        let bytes = component.serialize().map_err(anyhow::Error::from)?;
        std::fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile_in(&self.dir)?;
        tmp.1.write_all(&bytes)?;
        tmp.1.sync_all()?;
        drop(tmp.1);
        let target = self.path_for(hash);
        std::fs::rename(&tmp.0, &target).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp.0);
        })?;
        Ok(())
    }
}

/// A new file with a unique name in `dir`, for writing then renaming.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".partial-{}-{n}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Loads a compiled artifact from the host's own cache.
#[allow(unsafe_code)]
fn deserialize(engine: &wasmtime::Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: `deserialize_file` trusts its input to be an artifact that
    // wasmtime produced. This file is one: it was written by `store` above,
    // from `Component::serialize` of an engine with the same compatibility
    // fingerprint (part of its name), into the host's own cache folder, under
    // a temporary name and renamed into place only once complete. wasmtime
    // still checks its header, version and engine settings on load.
    unsafe { Component::deserialize_file(engine, path) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_hex() {
        let engine = wasmtime::Engine::default();
        let a = engine_fingerprint(&engine);
        assert_eq!(a, engine_fingerprint(&engine));
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    /// An empty component: the 8-byte header alone is a valid component.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn stored_artifacts_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let engine = wasmtime::Engine::default();
        let cache = ArtifactCache::new(dir.path().join("nested/compiled"), &engine);
        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        cache.store("abc", &component);
        assert!(cache.path_for("abc").is_file(), "folders created on store");
        assert!(cache.load(&engine, "abc").is_some());
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("nested/compiled"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn an_unwritable_cache_only_costs_a_compilation() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, b"x").unwrap();
        let engine = wasmtime::Engine::default();
        let cache = ArtifactCache::new(file.clone(), &engine);
        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        cache.store("abc", &component); // logged, not fatal
        assert!(cache.load(&engine, "abc").is_none());
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }

    #[test]
    fn garbage_artifact_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let engine = wasmtime::Engine::default();
        let cache = ArtifactCache::new(dir.path().to_path_buf(), &engine);
        std::fs::write(cache.path_for("abc"), b"not an artifact").unwrap();
        assert!(cache.load(&engine, "abc").is_none());
        assert!(cache.load(&engine, "missing").is_none());
    }
}
