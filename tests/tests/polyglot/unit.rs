//! The helpers' and the ports' own tests, in their own languages: node's
//! test runner for JavaScript, unittest for Python.

use std::path::Path;
use std::process::Command;

use partita_tests::wasm::repo_root;

fn check(what: &str, mut cmd: Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// The number after `label` in `text` (`# pass 24`, `Ran 23 tests`).
fn count_after(text: &str, label: &str) -> usize {
    let at = text
        .rfind(label)
        .unwrap_or_else(|| panic!("no `{label}` in:\n{text}"));
    text[at + label.len()..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after `{label}` in:\n{text}"))
}

#[test]
fn javascript_helper_and_ports_pass_their_node_tests() {
    let root = repo_root();
    let mut cmd = Command::new("node");
    cmd.current_dir(&root).arg("--test");
    for file in [
        "guest-sdk/js/test/wire.test.js",
        "guest-sdk/js/test/sdk.test.js",
    ] {
        cmd.arg(file);
    }
    for port in ["csv-to-json", "count"] {
        cmd.arg(format!("processors/js/{port}/processor.test.js"));
    }
    let text = check("node --test", cmd);
    assert_eq!(count_after(&text, "# fail"), 0, "{text}");
    assert!(
        count_after(&text, "# pass") >= 40,
        "fewer node tests than expected ran:\n{text}"
    );
}

fn unittest(dir: &Path, extra_path: &Path, start: &str) -> usize {
    let mut cmd = Command::new("python3");
    cmd.current_dir(dir)
        .env("PYTHONPATH", extra_path)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-m", "unittest", "discover", "-s", start, "-p", "test_*.py"]);
    let text = check(&format!("python3 -m unittest in {}", dir.display()), cmd);
    assert!(text.contains("\nOK"), "{text}");
    count_after(&text, "Ran ")
}

#[test]
fn python_helper_and_ports_pass_their_unittests() {
    let root = repo_root();
    let sdk = root.join("guest-sdk/python");
    let mut ran = unittest(&sdk, &sdk, "tests");
    for port in ["csv-to-json", "count"] {
        ran += unittest(&root.join("processors/python").join(port), &sdk, ".");
    }
    assert!(ran >= 40, "only {ran} Python tests ran");
}

/// Runs scripts/build-polyglot.sh with `args`; its exit code and stderr.
fn build_script(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/build-polyglot.sh"))
        .args(args)
        .output()
        .expect("run build-polyglot.sh");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_build_script_says_what_is_wrong() {
    let (code, err) = build_script(&["--bogus"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown option --bogus"), "{err}");

    let empty = tempfile::tempdir().expect("temporary folder");
    let path = empty.path().to_str().expect("UTF-8 path");
    let (code, err) = build_script(&[path]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{path} holds none of processor.js, processor.py and processor.c"
        )),
        "{err}"
    );
}

/// Where build-polyglot.sh writes the component of the processor in `dir`
/// written in the language of `suffix` (`js`, `c`): `NAME_SUFFIX.wasm`, `-`
/// in its folder's name as `_`.
fn component_of(dir: &Path, suffix: &str) -> std::path::PathBuf {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .replace('-', "_");
    partita_tests::wasm::components_dir().join(format!("{name}_{suffix}.wasm"))
}

/// A processor folder outside the checkout, as a user keeps one.
fn outside(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(std::env::temp_dir())
        .expect("temporary folder");
    assert!(!dir.path().starts_with(repo_root()), "outside the checkout");
    dir
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write");
    }
}

/// Runs `partita test COMPONENT --input records.jsonl` in `dir`: stdout.
fn partita_test(dir: &Path, component: &Path) -> String {
    let mut cmd = Command::new(partita_tests::partita::partita_binary().expect("partita binary"));
    cmd.current_dir(dir)
        .arg("test")
        .arg(component)
        .args(["--input", "records.jsonl"]);
    check("partita test", cmd)
}

const RECORDS: &str = "{\"key\":\"a\",\"value\":\"hi\"}\n{\"key\":\"b\",\"value\":\"\"}\n";

#[test]
fn a_javascript_processor_anywhere_imports_the_helper_by_its_package_name() {
    let dir = outside("shout-js-");
    write(
        dir.path(),
        &[
            (
                "processor.js",
                "import { Reject } from '@partita/processor';\n\
                 import { shout } from './shout.js';\n\
                 export default class Shout {\n\
                   process(record, out) {\n\
                     const text = record.valueString();\n\
                     if (text === '') throw new Reject('empty value');\n\
                     out.value(shout(text));\n\
                   }\n\
                 }\n",
            ),
            (
                "shout.js",
                "export function shout(t) { return t.toUpperCase() + '!'; }\n",
            ),
            (
                "processor.test.js",
                "import assert from 'node:assert/strict';\n\
                 import { test } from 'node:test';\n\
                 import { Harness } from '@partita/processor/testing';\n\
                 import Shout from './processor.js';\n\
                 test('shouts', () => {\n\
                   const [r] = new Harness(Shout, []).run([{ key: 'a', value: 'hi' }]);\n\
                   assert.equal(r.outputs[0].valueString(), 'HI!');\n\
                 });\n",
            ),
            ("records.jsonl", RECORDS),
        ],
    );
    // Built without installing anything in its folder.
    let path = dir.path().to_str().expect("UTF-8 path");
    let (code, err) = build_script(&["--js-only", path]);
    assert_eq!(code, Some(0), "{err}");
    let wasm = component_of(dir.path(), "js");
    let out = partita_test(dir.path(), &wasm);
    let _ = std::fs::remove_file(&wasm);
    assert!(out.contains("\"value\":\"HI!\""), "{out}");

    // Its node test finds the helper once it is installed as a package.
    let mut npm = Command::new("npm");
    npm.current_dir(dir.path())
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .arg(repo_root().join("guest-sdk/js"));
    check("npm install guest-sdk/js", npm);
    let mut node = Command::new("node");
    node.current_dir(dir.path()).arg("--test");
    let text = check("node --test", node);
    assert_eq!(count_after(&text, "# pass"), 1, "{text}");
}

#[test]
fn the_python_helper_installs_with_pip_for_a_processor_s_tests_anywhere() {
    let dir = outside("shout-py-");
    write(
        dir.path(),
        &[(
            "test_shout.py",
            "import unittest\n\
             import partita\n\
             from partita import Reject\n\
             from partita.testing import Harness, TestRecord\n\n\
             class Shout(partita.Processor):\n\
             \x20   def process(self, record, out):\n\
             \x20       text = record.value_str()\n\
             \x20       if text == \"\":\n\
             \x20           raise Reject(\"empty value\")\n\
             \x20       out.value(text.upper() + \"!\")\n\n\
             class ShoutTest(unittest.TestCase):\n\
             \x20   def test_shouts(self):\n\
             \x20       [r] = Harness(Shout, []).run([TestRecord(key=\"a\", value=\"hi\")])\n\
             \x20       self.assertEqual(r.outputs[0].value, b\"HI!\")\n",
        )],
    );
    let venv = dir.path().join("venv");
    let mut make = Command::new("python3");
    make.args(["-m", "venv"]).arg(&venv);
    check("python3 -m venv", make);
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.current_dir(dir.path())
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(repo_root().join("guest-sdk/python"));
    check("pip install guest-sdk/python", pip);
    // Not from the checkout: from the virtualenv.
    let mut python = Command::new(venv.join("bin/python"));
    python
        .current_dir(dir.path())
        .env_remove("PYTHONPATH")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-c", "import partita; print(partita.__file__)"]);
    let at = check("import partita", python);
    assert!(at.trim().starts_with(&*venv.to_string_lossy()), "{at}");
    let mut test = Command::new(venv.join("bin/python"));
    test.current_dir(dir.path())
        .env_remove("PYTHONPATH")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-m", "unittest", "test_shout"]);
    let text = check("python -m unittest", test);
    assert!(text.contains("\nOK"), "{text}");
}

#[test]
fn a_javascript_syntax_error_fails_the_build_naming_file_and_line() {
    let dir = tempfile::Builder::new()
        .prefix("broken-")
        .tempdir_in(repo_root().join("target"))
        .expect("temporary folder under target/");
    std::fs::write(
        dir.path().join("processor.js"),
        "export default class Broken {\n  process( {\n}\n",
    )
    .expect("write");
    let (code, err) = build_script(&["--js-only", dir.path().to_str().expect("UTF-8 path")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("[ERROR] Expected \")\""), "{err}");
    assert!(err.contains("processor.js:4:0"), "{err}");
    let wasm = component_of(dir.path(), "js");
    assert!(
        !wasm.exists(),
        "no component is left behind: {}",
        wasm.display()
    );
}

/// A C processor that uses what the helper offers beyond csv-to-json (the
/// C port): named outputs, keys, headers, state, logging, on-timer.
const TALLY_C: &str = r#"#include <stdlib.h>
#include "partita.h"

static const char *const outputs[] = {"tally", "audit"};

bool processor_init(const pt_config *config) {
    if (!pt_config_check_keys(config, NULL, 0)) return false;
    pt_set_outputs(outputs, 2);
    return true;
}

void processor_process(const pt_record *record, pt_emitter *out) {
    if (record->key.ptr == NULL) { pt_reject(out, "record %lld has no key", (long long)record->offset); return; }
    pt_str text;
    if (!pt_value_str(record, out, &text)) return;
    uint32_t n = 0;
    pt_owned old;
    if (pt_state_get(record->key, &old)) {
        for (size_t i = 0; i < old.len; i++) n = n * 10 + (old.ptr[i] - '0');
        pt_owned_free(&old);
    }
    n += 1;
    char digits[12];
    size_t len = 0;
    for (uint32_t v = n; v; v /= 10) len++;
    for (uint32_t v = n, i = len; v; v /= 10) digits[--i] = (char)('0' + v % 10);
    pt_str count = {(const uint8_t *)digits, len};
    pt_state_put(record->key, count);
    pt_emit(out, 0, NULL, &count);
    pt_str source;
    if (pt_header(record, pt_cstr("source"), &source)) {
        pt_log(PT_INFO, "audited %.*s from %.*s", PT_FMT(record->key), PT_FMT(source));
        pt_str none = {NULL, 0};
        pt_emit(out, 1, &none, &source);
    }
}

void processor_on_timer(int64_t stream_time, int64_t wall_time, pt_emitter *out) {
    (void)stream_time;
    (void)wall_time;
    pt_emit_value(out, "tick", 4);
}
"#;

#[test]
fn a_c_processor_anywhere_builds_with_the_helper_and_keeps_state() {
    let dir = outside("tally-c-");
    write(
        dir.path(),
        &[
            ("processor.c", TALLY_C),
            (
                "records.jsonl",
                "{\"key\":\"a\",\"value\":\"x\"}\n\
                 {\"key\":\"a\",\"value\":\"y\",\"headers\":{\"source\":\"legacy\"}}\n\
                 {\"value\":\"z\"}\n\
                 {\"key\":\"b\",\"value_b64\":\"/w==\"}\n\
                 {\"key\":\"a\",\"value\":\"w\"}\n",
            ),
        ],
    );
    let path = dir.path().to_str().expect("UTF-8 path");
    let (code, err) = build_script(&["--c-only", path]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("warning:"), "the build warns:\n{err}");
    let wasm = component_of(dir.path(), "c");

    let mut cmd = Command::new(partita_tests::partita::partita_binary().expect("partita binary"));
    cmd.current_dir(dir.path())
        .arg("test")
        .arg(&wasm)
        .args(["--input", "records.jsonl", "--timer", "--log", "info"])
        .env("NO_COLOR", "1");
    let out = cmd.output().expect("run partita test");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let outputs: Vec<String> = stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            format!("{} {} {}", v["output"], v["key"], v["value"])
        })
        .collect();
    assert_eq!(
        outputs,
        [
            "\"tally\" \"a\" \"1\"",
            "\"tally\" \"a\" \"2\"",
            "\"audit\" null \"legacy\"",
            "\"tally\" \"a\" \"3\"",
            "\"tally\" null \"tick\"",
        ],
        "{stdout}"
    );
    assert!(stderr.contains("rejected: record 2 has no key"), "{stderr}");
    assert!(
        stderr.contains("rejected: value is not UTF-8: invalid byte at offset 0"),
        "{stderr}"
    );
    assert!(stderr.contains("audited a from legacy"), "{stderr}");

    // A key it does not take refuses it, naming the key.
    let mut cmd = Command::new(partita_tests::partita::partita_binary().expect("partita binary"));
    cmd.current_dir(dir.path()).arg("test").arg(&wasm).args([
        "--input",
        "records.jsonl",
        "--config",
        "limit=3",
    ]);
    let out = cmd.output().expect("run partita test");
    let _ = std::fs::remove_file(&wasm);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "refused to start: config key `limit`: unknown key (this processor takes no configuration)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_c_compile_error_fails_the_build_naming_file_and_line() {
    let dir = outside("broken-c-");
    write(
        dir.path(),
        &[(
            "processor.c",
            "#include \"partita.h\"\nbool processor_init(const pt_config *c) { return c != NULL }\n",
        )],
    );
    let (code, err) = build_script(&["--c-only", dir.path().to_str().expect("UTF-8 path")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("processor.c:2:"), "{err}");
    assert!(err.contains("error: expected ';'"), "{err}");
    assert!(err.contains("error: building broken_c_"), "{err}");
    let wasm = component_of(dir.path(), "c");
    assert!(
        !wasm.exists(),
        "no component is left behind: {}",
        wasm.display()
    );
}
