//! `partita test` run as a user runs it: the binary on real components and
//! JSONL files, checking stdout, stderr and the exit status, including one
//! test per kind of bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../tests/src/wasm.rs"]
#[allow(dead_code)]
mod wasm;

/// What a run printed and how it ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `partita test COMPONENT --input INPUT ARGS...`, with a compiled
/// cache shared by these tests unless `ARGS` name one.
fn partita_test(component: &Path, input: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_partita"));
    cmd.arg("test").arg(component).arg("--input").arg(input);
    if !args.contains(&"--cache-dir") {
        cmd.arg("--cache-dir")
            .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled"));
    }
    let out = cmd
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run partita");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p
}

fn misbehave() -> PathBuf {
    wasm::component("misbehave")
}

/// Asserts a bad-input failure: status 1 and one line on stderr holding
/// every `needle`.
fn assert_bad_input(run: &Run, needles: &[&str]) {
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert!(
        run.stdout.is_empty(),
        "no output on bad input: {}",
        run.stdout
    );
    assert_eq!(run.stderr.lines().count(), 1, "one line: {:?}", run.stderr);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    for n in needles {
        assert!(run.stderr.contains(n), "{n:?} in {:?}", run.stderr);
    }
}

#[test]
fn outputs_rejections_failures_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(
        dir.path(),
        "records.jsonl",
        concat!(
            r#"{"key":"a","value":"hello","timestamp":1700,"headers":{"h":"1"}}"#,
            "\n",
            r#"{"key":"b","value":"reject"}"#,
            "\n\n",
            r#"{"key":"c","value":"panic"}"#,
            "\n",
            r#"{"key":"c","value":"state"}"#,
            "\n",
            r#"{"key_b64":"AP8=","value":"state","partition":2,"offset":40}"#,
            "\n",
        ),
    );
    let run = partita_test(&misbehave(), &input, &[]);
    assert_eq!(
        run.code, 3,
        "a failed record gives status 3; stderr: {}",
        run.stderr
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            r#"{"output":"out","key":"a","value":"hello","headers":{"h":"1"},"timestamp":1700,"line":1}"#,
            r#"{"output":"out","key":"c","value":"1","headers":{},"timestamp":0,"line":5}"#,
            r#"{"output":"out","key_b64":"AP8=","value":"1","headers":{},"timestamp":0,"line":6}"#,
        ]
    );
    let input_name = input.display().to_string();
    assert!(
        run.stderr
            .contains(&format!("{input_name}:2: rejected: rejected on request")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("{input_name}:4: failed: trapped:"))
            && run
                .stderr
                .contains("panicked at tests/guests/misbehave/src/lib.rs:")
            && run.stderr.contains("panic requested\n"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.lines().last().unwrap() == "records: 5, outputs: 3, rejected: 1, failed: 1",
        "{}",
        run.stderr
    );
}

#[test]
fn output_of_one_run_is_input_of_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(
        dir.path(),
        "in.jsonl",
        "{\"key\":\"k\",\"value\":\"v\",\"headers\":[[\"a\",\"1\"],[\"a\",\"2\"]]}\n",
    );
    let first = partita_test(&misbehave(), &input, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let again = file(dir.path(), "again.jsonl", &first.stdout);
    let second = partita_test(&misbehave(), &again, &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        second.stdout.trim(),
        r#"{"output":"out","key":"k","value":"v","headers":[["a","1"],["a","2"]],"timestamp":0,"line":1}"#
    );
    assert!(
        second
            .stderr
            .ends_with("records: 1, outputs: 1, rejected: 0, failed: 0\n")
    );
}

#[test]
fn config_tables_and_timer() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(
        dir.path(),
        "in.jsonl",
        "{\"key\":\"ada\",\"value\":\"table\",\"timestamp\":5}\n{\"key\":\"x\",\"value\":\"second-output\",\"timestamp\":9}\n",
    );
    let names = file(
        dir.path(),
        "names.jsonl",
        "{\"key\":\"ada\",\"value\":\"Ada Lovelace\"}\n",
    );
    let args = [
        "--config",
        "outputs=main,side",
        "--config",
        "timer=emit",
        "--table",
        &format!("names={}", names.display()),
        "--timer",
    ];
    let run = partita_test(&misbehave(), &input, &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert_eq!(
        lines[0],
        r#"{"output":"main","key":"ada","value":"Ada Lovelace","headers":{},"timestamp":5,"line":1}"#
    );
    assert_eq!(
        lines[1],
        r#"{"output":"side","key":"x","value":"second-output","headers":{},"timestamp":9,"line":2}"#
    );
    assert!(
        lines[2].starts_with(r#"{"output":"main","key":"timer","value":"stream=9 wall="#),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].ends_with(r#" calls=1","headers":{},"timestamp":9,"timer":true}"#),
        "{}",
        lines[2]
    );
}

#[test]
fn limits_come_from_flags() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(
        dir.path(),
        "in.jsonl",
        "{\"value\":\"loop\"}\n{\"value\":\"alloc\"}\n{\"value\":\"ok\"}\n",
    );
    let run = partita_test(
        &misbehave(),
        &input,
        &[
            "--deadline-ms",
            "200",
            "--memory-mb",
            "16",
            "--batch-size",
            "2",
        ],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(":1: failed: exceeded the CPU deadline of 200ms"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(":2: failed: exceeded the memory cap of 16777216 bytes"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout.lines().count(), 1);
    assert!(
        run.stderr
            .ends_with("records: 3, outputs: 1, rejected: 0, failed: 2\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_compiled_component_is_cached_in_the_given_folder() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("compiled");
    let input = file(dir.path(), "in.jsonl", "{\"value\":\"v\"}\n");
    let run = partita_test(
        &misbehave(),
        &input,
        &["--cache-dir", cache.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let artifacts: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert!(artifacts[0].to_string_lossy().ends_with(".cwasm"));
}

#[test]
fn bad_input_missing_component_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(dir.path(), "in.jsonl", "{\"value\":\"v\"}\n");
    let run = partita_test(&dir.path().join("nope.wasm"), &input, &[]);
    assert_bad_input(&run, &["cannot read", "nope.wasm"]);
}

#[test]
fn bad_input_missing_input_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = partita_test(&misbehave(), &dir.path().join("missing.jsonl"), &[]);
    assert_bad_input(
        &run,
        &["cannot read input file", "missing.jsonl", "No such file"],
    );
}

#[test]
fn bad_input_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(dir.path(), "in.jsonl", "{\"value\":\"v\"}\n");
    let garbage = file(dir.path(), "garbage.wasm", "not wasm");
    assert_bad_input(
        &partita_test(&garbage, &input, &[]),
        &[
            "garbage.wasm is not a WebAssembly component",
            "not a WebAssembly binary",
        ],
    );
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    assert_bad_input(
        &partita_test(&core, &input, &[]),
        &[
            "core.wasm is not a WebAssembly component",
            "core WebAssembly module",
        ],
    );
}

#[test]
fn bad_input_component_of_another_world() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(dir.path(), "in.jsonl", "{\"value\":\"v\"}\n");
    let run = partita_test(&wasm::component("wrong-world"), &input, &[]);
    assert_bad_input(
        &run,
        &[
            "wrong_world.wasm does not implement the partita:processor@0.1.0 stage world",
            "missing export",
        ],
    );
    let run = partita_test(&wasm::component("foreign-import"), &input, &[]);
    assert_bad_input(&run, &["unsupported import test:foreign/clock"]);
    let run = partita_test(&wasm::component("mismatched-export"), &input, &[]);
    assert_bad_input(
        &run,
        &["export partita:processor/processor@0.1.0#process has type func(list<u8>) -> string"],
    );
}

#[test]
fn bad_input_malformed_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(
        dir.path(),
        "records.jsonl",
        "{\"value\":\"v\"}\n{\"value\": \"v\",}\n",
    );
    let run = partita_test(&misbehave(), &input, &[]);
    assert_bad_input(&run, &["records.jsonl:2: malformed JSON:", "at column"]);
    let input = file(dir.path(), "fields.jsonl", "\n\n{\"vaule\":\"v\"}\n");
    let run = partita_test(&misbehave(), &input, &[]);
    assert_bad_input(&run, &["fields.jsonl:3: unknown field \"vaule\""]);
}

#[test]
fn bad_input_malformed_config_argument() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(dir.path(), "in.jsonl", "{\"value\":\"v\"}\n");
    let run = partita_test(&misbehave(), &input, &["--config", "columns"]);
    assert_bad_input(
        &run,
        &["malformed --config argument \"columns\": expected KEY=VALUE"],
    );
}

#[test]
fn bad_input_malformed_table_argument() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(dir.path(), "in.jsonl", "{\"value\":\"v\"}\n");
    let run = partita_test(&misbehave(), &input, &["--table", "names.jsonl"]);
    assert_bad_input(
        &run,
        &["malformed --table argument \"names.jsonl\": expected NAME=FILE"],
    );
}

#[test]
fn bad_input_missing_or_malformed_table_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(dir.path(), "in.jsonl", "{\"value\":\"v\"}\n");
    let missing = format!("names={}", dir.path().join("absent.jsonl").display());
    let run = partita_test(&misbehave(), &input, &["--table", &missing]);
    assert_bad_input(
        &run,
        &["cannot read table file", "absent.jsonl", "No such file"],
    );
    let bad = file(
        dir.path(),
        "bad.jsonl",
        "{\"key\":\"a\",\"value\":\"1\"}\nnot json\n",
    );
    let run = partita_test(
        &misbehave(),
        &input,
        &["--table", &format!("names={}", bad.display())],
    );
    assert_bad_input(&run, &["bad.jsonl:2: malformed JSON"]);
}

#[test]
fn bad_input_processor_refuses_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(dir.path(), "in.jsonl", "{\"value\":\"v\"}\n");
    let run = partita_test(&misbehave(), &input, &["--config", "fail_init=1"]);
    assert_bad_input(&run, &["refused to start: init failed as configured"]);
}

#[test]
fn a_bad_command_line_is_told_apart_from_failed_records() {
    let out = Command::new(env!("CARGO_BIN_EXE_partita"))
        .args(["test", "x.wasm"])
        .output()
        .expect("run partita");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--input <FILE>"));
}

#[test]
fn no_cache_compiles_without_touching_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let input = file(dir.path(), "in.jsonl", "{\"value\":\"v\"}\n");
    let cache = dir.path().join("xdg");
    let out = Command::new(env!("CARGO_BIN_EXE_partita"))
        .arg("test")
        .arg(misbehave())
        .arg("--input")
        .arg(&input)
        .arg("--no-cache")
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .expect("run partita");
    assert_eq!(out.status.code(), Some(0));
    assert!(!cache.exists(), "nothing written under XDG_CACHE_HOME");

    // Without --no-cache the default folder is $XDG_CACHE_HOME/partita/compiled.
    let out = Command::new(env!("CARGO_BIN_EXE_partita"))
        .arg("test")
        .arg(misbehave())
        .arg("--input")
        .arg(&input)
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .expect("run partita");
    assert_eq!(out.status.code(), Some(0));
    let compiled = cache.join("partita/compiled");
    assert_eq!(std::fs::read_dir(&compiled).unwrap().count(), 1);
}
