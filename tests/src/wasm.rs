//! Builds the project's Wasm components once and finds them by crate name.
//!
//! Components are built by `scripts/build-wasm.sh` (the same command users
//! run) into `target/wasm/`, a target directory of their own so that the
//! build does not wait on the lock of the `cargo test` that runs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Folder holding the built components, `NAME.wasm` per crate:
/// `target/wasm/components/`, or the folder named by `PARTITA_COMPONENTS`
/// (components built some other way, for example with symbol names kept
/// for profiling; nothing is built then).
pub fn components_dir() -> PathBuf {
    match std::env::var_os("PARTITA_COMPONENTS") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("target/wasm/components"),
    }
}

/// Path of the component built from crate `name` (for example
/// `"passthrough"`), building all components first if this test binary has
/// not done so yet.
pub fn component(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        if std::env::var_os("PARTITA_COMPONENTS").is_some() {
            return Ok(());
        }
        let script = repo_root().join("scripts/build-wasm.sh");
        let out = Command::new("bash")
            .arg(&script)
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed:\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    let path = components_dir().join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.exists(),
        "no component {} after the build",
        path.display()
    );
    path
}
