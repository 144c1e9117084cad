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
