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
            "{path} holds neither processor.js nor processor.py"
        )),
        "{err}"
    );

    // A JavaScript processor must share a parent folder (other than /)
    // with the checkout, for the engine to read the helper at build time.
    let outside = tempfile::Builder::new()
        .tempdir_in("/tmp")
        .expect("temporary folder");
    std::fs::write(
        outside.path().join("processor.js"),
        "export default class P {}\n",
    )
    .expect("write");
    let path = outside.path().to_str().expect("UTF-8 path");
    if !repo_root().starts_with("/tmp") {
        let (code, err) = build_script(&["--js-only", path]);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains("must share a parent folder other than /"),
            "{err}"
        );
    }
}

#[test]
fn a_javascript_syntax_error_fails_the_build_with_the_engine_s_message() {
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
    assert!(err.contains("SyntaxError"), "{err}");
    let name = dir
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .replace('-', "_");
    let wasm = partita_tests::wasm::components_dir().join(format!("{name}_js.wasm"));
    assert!(
        !wasm.exists(),
        "no component is left behind: {}",
        wasm.display()
    );
}
