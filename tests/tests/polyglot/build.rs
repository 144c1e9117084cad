//! Builds the JavaScript and Python components once per test run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use partita_tests::wasm::{components_dir, repo_root};

/// Runs `scripts/build-polyglot.sh` with `args`; panics with its output if
/// it fails.
pub fn run_script(args: &[&str]) {
    let script = repo_root().join("scripts/build-polyglot.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {} failed:\n{}",
        script.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Path of component `name` (for example `"csv_to_json_js"`), building every
/// processor of processors/js and processors/python first if this test
/// binary has not done so yet.
pub fn component(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| run_script(&[]));
    let path = components_dir().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "no component {} after the build",
        path.display()
    );
    path
}

/// Path of the component built from the test processor in folder `dir`
/// (relative to tests/tests/polyglot/guests), built on first use.
pub fn guest(dir: &str, name: &str) -> PathBuf {
    let src: &Path = &repo_root().join("tests/tests/polyglot/guests").join(dir);
    run_script(&[src.to_str().expect("UTF-8 path")]);
    let path = components_dir().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "no component {} after the build",
        path.display()
    );
    path
}
