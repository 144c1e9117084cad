//! `partita new NAME --lang rust|js|python`: each project it writes, in a
//! folder outside the checkout, passes its own unit test, builds into a
//! component as its README says, and `partita test` runs that component
//! over the project's sample records with no edit. Bad arguments exit 2
//! and write nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use partita_tests::partita::partita_binary;
use partita_tests::wasm::{components_dir, repo_root};

fn run(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `partita new NAME --lang LANG --dir PARENT`: the project's folder.
fn new_project(parent: &Path, name: &str, lang: &str) -> PathBuf {
    let out = run(
        "partita new",
        Command::new(partita_binary().unwrap())
            .args(["new", name, "--lang", lang, "--dir"])
            .arg(parent),
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let project = parent.join(name);
    assert_eq!(Path::new(&printed), project);
    project
}

/// `partita test COMPONENT --input records.jsonl` in `project`: the two
/// shouted values and the rejected empty one.
fn check_component(project: &Path, component: &Path) {
    let out = run(
        "partita test",
        Command::new(partita_binary().unwrap())
            .current_dir(project)
            .arg("test")
            .arg(component)
            .args(["--input", "records.jsonl"]),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let values: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["value"].to_string())
        .collect();
    assert_eq!(values, ["\"HELLO!\"", "\"PARTITA!\""], "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("records.jsonl:3: rejected: empty value"),
        "{stderr}"
    );
}

/// As a JavaScript or Python project's README says: the build script run
/// from the project's folder, then `partita test` of the component it
/// wrote (`file`, removed afterwards).
fn build_and_check(project: &Path, file: &str) {
    run(
        "build-polyglot.sh .",
        Command::new("bash")
            .current_dir(project)
            .arg(repo_root().join("scripts/build-polyglot.sh"))
            .arg("."),
    );
    let component = components_dir().join(file);
    check_component(project, &component);
    let _ = std::fs::remove_file(component);
}

fn outside() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("partita-new-")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    assert!(!dir.path().starts_with(repo_root()));
    dir
}

#[test]
fn a_new_rust_processor_tests_builds_and_runs_as_written() {
    let parent = outside();
    let project = new_project(parent.path(), "shout-rust", "rust");
    // A target folder inside the checkout's, kept between runs (the SDK
    // and wit-bindgen compile once).
    let target = repo_root().join("target/scaffold");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let cargo = |args: &[&str]| {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&project)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .args(args);
        cmd
    };
    let tested = run("cargo test", &mut cargo(&["test", "--quiet"]));
    let text = String::from_utf8_lossy(&tested.stdout);
    assert!(text.contains("test result: ok. 1 passed"), "{text}");
    run(
        "cargo build",
        &mut cargo(&["build", "--quiet", "--release", "--target", "wasm32-wasip2"]),
    );
    check_component(
        &project,
        &target.join("wasm32-wasip2/release/shout_rust.wasm"),
    );
}

#[test]
fn a_new_javascript_processor_tests_builds_and_runs_as_written() {
    let parent = outside();
    let project = new_project(parent.path(), "shout-new-js", "js");
    run(
        "npm install",
        Command::new("npm").current_dir(&project).args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ]),
    );
    let tested = run(
        "npm test",
        Command::new("npm").current_dir(&project).arg("test"),
    );
    let text = String::from_utf8_lossy(&tested.stdout);
    assert!(text.contains("# pass 1"), "{text}");
    build_and_check(&project, "shout_new_js_js.wasm");
}

#[test]
fn a_new_python_processor_tests_builds_and_runs_as_written() {
    let parent = outside();
    let project = new_project(parent.path(), "shout-new-py", "python");
    let tested = run(
        "python3 -m unittest",
        Command::new("python3")
            .current_dir(&project)
            .env("PYTHONPATH", repo_root().join("guest-sdk/python"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .args(["-m", "unittest"]),
    );
    let text = String::from_utf8_lossy(&tested.stderr);
    assert!(text.contains("Ran 1 test"), "{text}");
    build_and_check(&project, "shout_new_py_py.wasm");
}

#[test]
fn bad_arguments_exit_2_and_write_nothing() {
    let parent = outside();
    let partita = |args: &[&str]| {
        Command::new(partita_binary().unwrap())
            .current_dir(parent.path())
            .args(args)
            .output()
            .unwrap()
    };
    let cases: [(&[&str], &str); 3] = [
        (
            &["new", "Shout", "--lang", "rust"],
            "error: NAME `Shout`: must start with a lowercase letter",
        ),
        (
            &["new", "a/b", "--lang", "js"],
            "error: NAME `a/b`: may hold only lowercase letters, digits, `-` and `_`",
        ),
        (
            &["new", "shout", "--lang", "rust", "--partita", "/"],
            "error: --partita: / is not a Partita checkout (no guest-sdk/Cargo.toml)",
        ),
    ];
    for (args, message) in cases {
        let out = partita(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim(), message, "{args:?}");
    }
    assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    // A folder that exists already is left alone.
    std::fs::create_dir(parent.path().join("taken")).unwrap();
    let out = partita(&["new", "taken", "--lang", "python"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("taken exists already"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_dir(parent.path().join("taken"))
            .unwrap()
            .count(),
        0
    );
}
