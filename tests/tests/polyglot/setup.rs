//! Builds the JavaScript, Python and C components once per test run and runs
//! `partita test` on them.
//!
//! Compiling a 12 to 18 MB component (a whole language runtime) takes
//! seconds, so every run of `partita test` in these tests uses the cache of
//! compiled components that `partita run` uses (`$PARTITA_CACHE/compiled`,
//! default `~/.cache/partita/compiled`), warmed once, one component at a
//! time, before any test uses it; the pipeline test then finds them
//! compiled.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use partita_tests::partita::partita_binary;
use partita_tests::wasm::{component as rust_component, components_dir, repo_root};

/// The test guests of this binary, built next to processors/js and
/// processors/python.
const GUESTS: [&str; 2] = [
    "tests/tests/polyglot/guests/js/misbehave",
    "tests/tests/polyglot/guests/python/misbehave",
];

/// Every component these tests load, by file name without `.wasm`.
const COMPONENTS: [&str; 9] = [
    "csv_to_json",
    "csv_to_json_js",
    "csv_to_json_py",
    "csv_to_json_c",
    "count",
    "count_js",
    "count_py",
    "misbehave_js",
    "misbehave_py",
];

/// Folder of the test inputs.
pub fn inputs() -> PathBuf {
    repo_root().join("tests/tests/polyglot/inputs")
}

/// The compiled-artifact cache shared by these tests and `partita run`.
pub fn cache_dir() -> PathBuf {
    partita::cli::compiled_cache_dir()
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("polyglot-cache"))
}

fn build_script(args: &[&str]) {
    let script = repo_root().join("scripts/build-polyglot.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .current_dir(repo_root())
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

/// Builds every component (the Rust twins too), then compiles each one into
/// the shared cache; done once per test binary.
fn ready() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        rust_component("csv-to-json");
        rust_component("count");
        build_script(&[]);
        build_script(&GUESTS);
        let dir = tempfile::tempdir().expect("temporary folder");
        let input = dir.path().join("one.jsonl");
        std::fs::write(&input, "{\"value\":\"warm up\"}\n").expect("write the warm-up input");
        for name in COMPONENTS {
            // The output does not matter (a missing config is refused
            // after compiling); only the compiled artifact in the cache.
            let _ = partita_test(name, &input, &[], &[]);
        }
    });
}

/// Path of component `name` (for example `"csv_to_json_js"`), built and
/// compiled on first use.
pub fn component(name: &str) -> PathBuf {
    ready();
    let path = components_dir().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "no component {} after the build",
        path.display()
    );
    path
}

/// What one run of `partita test` printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Exit code.
    pub code: Option<i32>,
    /// The outputs, one JSON line each.
    pub stdout: String,
    /// Rejections, failures, the summary or the error, one per line.
    pub stderr: String,
}

/// Runs `partita test` on component `name` with `input`, `config` entries
/// (`key=value`) and extra `flags`, logging off so that only per-record
/// lines reach stderr.
pub fn partita_test(name: &str, input: &Path, config: &[&str], flags: &[&str]) -> Run {
    let path = components_dir().join(format!("{name}.wasm"));
    let mut cmd = Command::new(partita_binary().expect("the partita binary builds"));
    cmd.arg("test")
        .arg(&path)
        .arg("--input")
        .arg(input)
        .arg("--cache-dir")
        .arg(cache_dir());
    cmd.args(["--log", "off"]).args(flags).env("NO_COLOR", "1");
    for c in config {
        cmd.args(["--config", c]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run partita test: {e}"));
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `partita test` on component `name` after the components are ready.
pub fn run(name: &str, input: &Path, config: &[&str], flags: &[&str]) -> Run {
    component(name);
    partita_test(name, input, config, flags)
}
