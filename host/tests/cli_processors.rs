//! The example processors (processors/) run through `partita test` as a
//! user runs them: a legacy CSV feed parsed, enriched from a reference
//! table, routed and counted, each stage's output file the next one's input.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../tests/src/wasm.rs"]
#[allow(dead_code)]
mod wasm;

/// Runs `partita test` on processor `name`; returns stdout, stderr, status.
fn partita_test(name: &str, input: &Path, args: &[&str]) -> (String, String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_partita"))
        .arg("test")
        .arg(wasm::component(name))
        .arg("--input")
        .arg(input)
        .arg("--cache-dir")
        .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run partita");
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code().unwrap(),
    )
}

fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const ORDERS: &str = r#"{"key":"C1","value":"1001,C1,EU,12.50","timestamp":1000}
{"key":"C2","value":"1002,C2,US,3","timestamp":2000}
{"key":"C1","value":"1003,C1,EU,abc","timestamp":3000}
{"key":"C3","value":"1004,C3,APAC,7.25","timestamp":4000}
{"key":"C1","value":"1005,C1,EU,0.5","timestamp":5000}
"#;

const CUSTOMERS: &str = r#"{"key":"C1","value":"{\"tier\":\"gold\"}"}
{"key":"C2","value":"{\"tier\":\"silver\"}"}
"#;

/// The `value` field of each output line.
fn values(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("output line is JSON");
            v["value"].as_str().expect("text value").to_string()
        })
        .collect()
}

/// The `output` field of each output line.
fn outputs(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["output"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_legacy_feed_through_every_example_stage() {
    let dir = tempfile::tempdir().unwrap();
    let orders = file(dir.path(), "orders.jsonl", ORDERS);
    let customers = file(dir.path(), "customers.jsonl", CUSTOMERS);

    // passthrough: every record unchanged.
    let (out, err, code) = partita_test("passthrough", &orders, &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines[0],
        r#"{"output":"default","key":"C1","value":"1001,C1,EU,12.50","headers":{},"timestamp":1000,"line":1}"#
    );

    // csv-to-json: parse, reject the bad amount.
    let (parsed, err, code) = partita_test(
        "csv-to-json",
        &orders,
        &[
            "--config",
            "columns=order,customer,region,amount",
            "--config",
            "numeric=amount",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        values(&parsed),
        vec![
            r#"{"order":"1001","customer":"C1","region":"EU","amount":12.50}"#,
            r#"{"order":"1002","customer":"C2","region":"US","amount":3}"#,
            r#"{"order":"1004","customer":"C3","region":"APAC","amount":7.25}"#,
            r#"{"order":"1005","customer":"C1","region":"EU","amount":0.5}"#,
        ]
    );
    assert!(
        err.contains("orders.jsonl:3: rejected: column `amount` is not a number: `abc`"),
        "{err}"
    );
    assert!(
        err.ends_with("records: 5, outputs: 4, rejected: 1, failed: 0\n"),
        "{err}"
    );
    let parsed = file(dir.path(), "parsed.jsonl", &parsed);

    // enrich: add the customer's tier from the table; C3 is unknown.
    let table = format!("customers={}", customers.display());
    let (enriched, err, code) = partita_test(
        "enrich",
        &parsed,
        &[
            "--table",
            &table,
            "--config",
            "table=customers",
            "--config",
            "field=customer",
            "--config",
            "into=info",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        values(&enriched),
        vec![
            r#"{"order":"1001","customer":"C1","region":"EU","amount":12.50,"info":{"tier":"gold"}}"#,
            r#"{"order":"1002","customer":"C2","region":"US","amount":3,"info":{"tier":"silver"}}"#,
            r#"{"order":"1005","customer":"C1","region":"EU","amount":0.5,"info":{"tier":"gold"}}"#,
        ]
    );
    assert!(
        err.contains("parsed.jsonl:3: rejected: no entry for `C3` in table `customers`"),
        "{err}"
    );

    // router: by region, with a default output.
    let (routed, err, code) = partita_test(
        "router",
        &parsed,
        &[
            "--config",
            "field=region",
            "--config",
            "routes=EU=europe,US=americas",
            "--config",
            "default=other",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        outputs(&routed),
        vec!["europe", "americas", "other", "europe"]
    );

    // count: running count and sum of the amount per customer key.
    let (counted, err, code) = partita_test("count", &parsed, &["--config", "field=amount"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        values(&counted),
        vec![
            r#"{"key":"C1","count":1,"sum":12.5}"#,
            r#"{"key":"C2","count":1,"sum":3}"#,
            r#"{"key":"C3","count":1,"sum":7.25}"#,
            r#"{"key":"C1","count":2,"sum":13}"#,
        ]
    );
}

#[test]
fn a_processor_refuses_a_bad_configuration_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let orders = file(dir.path(), "orders.jsonl", ORDERS);
    let (out, err, code) = partita_test("csv-to-json", &orders, &[]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: processor ") && err.contains("refused to start"),
        "{err}"
    );
    assert!(err.contains("columns"), "names the missing key: {err}");
}
