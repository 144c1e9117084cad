//! Each port and its Rust twin get the same records and configuration
//! through `partita test`; their outputs, rejections, summaries and refusals
//! must be byte for byte the same. For count, the state each leaves behind
//! (run through the engine library, in batches) must be the same too.

use std::path::Path;
use std::time::Duration;

use partita::engine::{Engine, EngineConfig, InstanceSetup, Limits, RecordOutcome};
use partita_wire::BatchWriter;

use super::setup::{cache_dir, component, inputs, run};

/// The ports of each Rust processor, by component suffix.
const CSV_TO_JSON_PORTS: [&str; 3] = ["js", "py", "c"];
const COUNT_PORTS: [&str; 2] = ["js", "py"];

/// An init refusal names the processor by its content hash, which differs
/// between twins: keep the reason.
fn without_version(stderr: &str) -> String {
    stderr
        .lines()
        .map(|l| {
            match (
                l.strip_prefix("error: processor "),
                l.find(" refused to start: "),
            ) {
                (Some(_), Some(at)) => {
                    format!("error: processor refused to start: {}", &l[at + 20..])
                }
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the Rust processor `rust` and its `ports` on `input` with `config`
/// and asserts the same results; returns the Rust run's stdout and stderr.
fn same_as_rust(rust: &str, ports: &[&str], input: &Path, config: &[&str]) -> (String, String) {
    let expected = run(rust, input, config, &[]);
    for port in ports {
        let name = format!("{rust}_{port}");
        let got = run(&name, input, config, &[]);
        assert_eq!(
            got.code, expected.code,
            "{name} {config:?}: exit code\n{}",
            got.stderr
        );
        assert_eq!(
            without_version(&got.stderr),
            without_version(&expected.stderr),
            "{name} {config:?}: rejections, failures or summary differ"
        );
        assert_eq!(
            got.stdout, expected.stdout,
            "{name} {config:?}: outputs differ"
        );
    }
    (expected.stdout, expected.stderr)
}

#[test]
fn csv_to_json_ports_write_the_same_outputs_and_rejections_as_rust() {
    let input = inputs().join("csv.jsonl");
    for config in [
        &["columns=id,name,amount", "numeric=amount"][..],
        &[
            "columns=a,b",
            "delimiter=;",
            "numeric=b",
            "skip_header=true",
        ],
        &["columns=t", "delimiter=tab"],
        &[
            "columns=id, name ,amount",
            "numeric=id,amount",
            "delimiter=,",
        ],
    ] {
        let (stdout, stderr) = same_as_rust("csv_to_json", &CSV_TO_JSON_PORTS, &input, config);
        assert!(
            stdout.lines().count() >= 3,
            "{config:?}: too few outputs to compare:\n{stdout}"
        );
        assert!(
            stderr.contains(": rejected: "),
            "{config:?}: no rejection to compare:\n{stderr}"
        );
    }
    let (_, stderr) = same_as_rust(
        "csv_to_json",
        &CSV_TO_JSON_PORTS,
        &input,
        &["columns=id,name,amount", "numeric=amount"],
    );
    for reason in [
        "expected 3 fields, found 2",
        "unterminated quote in field 2",
        "unexpected character after the closing quote of field 2",
        "column `amount` is not a number: `twelve`",
        "record has no value",
        "value is not UTF-8: invalid byte at offset 3",
    ] {
        assert!(
            stderr.contains(reason),
            "no `{reason}` among the rejections:\n{stderr}"
        );
    }
}

#[test]
fn csv_to_json_ports_refuse_bad_configuration_as_rust_does() {
    let input = inputs().join("csv.jsonl");
    for config in [
        &[][..],
        &["columns="],
        &["columns= , "],
        &["columns=a,b,a"],
        &["columns=a,b", "numeric=c"],
        &["columns=a", "delimiter=;;"],
        &["columns=a", "delimiter=\""],
        &["columns=a", "skip_header=yes"],
        &["columns=a", "colums=b"],
    ] {
        let (_, stderr) = same_as_rust("csv_to_json", &CSV_TO_JSON_PORTS, &input, config);
        assert!(
            stderr.contains("refused to start: config key `"),
            "{config:?}:\n{stderr}"
        );
    }
}

#[test]
fn count_ports_write_the_same_totals_and_rejections_as_rust() {
    let input = inputs().join("count.jsonl");
    for config in [
        &[][..],
        &["field=amount"],
        &["cache_entries=2"],
        &["field= amount ", "cache_entries=1"],
    ] {
        let (stdout, stderr) = same_as_rust("count", &COUNT_PORTS, &input, config);
        assert!(
            stdout.lines().count() >= 5,
            "{config:?}: too few outputs to compare:\n{stdout}"
        );
        assert!(
            stderr.contains(": rejected: "),
            "{config:?}: no rejection to compare:\n{stderr}"
        );
    }
    let (_, stderr) = same_as_rust("count", &COUNT_PORTS, &input, &["field=amount"]);
    for reason in [
        "value is not a JSON object: expected `:` at line 1 column 6",
        "value is not a JSON object: invalid type: integer `-3`, expected a map at line 1 column 2",
        "value is not a JSON object: invalid unicode code point at line 1 column 7",
        "field `amount` is not a number: `[1,2.5,{\"a\":\"t\\u0001\",\"b\":1e+21}]`",
        "value has no field `amount`",
    ] {
        assert!(
            stderr.contains(reason),
            "no `{reason}` among the rejections:\n{stderr}"
        );
    }
}

#[test]
fn count_ports_refuse_bad_configuration_as_rust_does() {
    let input = inputs().join("count.jsonl");
    for config in [
        &["cache_entries=ten"][..],
        &["cache_entries=-1"],
        &["cache_entries="],
        &["cache_entries=99999999999"],
        &["fields=a"],
    ] {
        let (_, stderr) = same_as_rust("count", &COUNT_PORTS, &input, config);
        assert!(
            stderr.contains("refused to start: config key `"),
            "{config:?}:\n{stderr}"
        );
    }
}

/// The records of a JSONL input with text keys and values (lines with
/// base64 fields are left out), as (key, value).
fn text_records(path: &Path) -> Vec<(Option<String>, Option<String>)> {
    let text = std::fs::read_to_string(path).expect("read the input");
    text.lines()
        .filter(|l| !l.contains("_b64\""))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let field = |name: &str| v.get(name).and_then(|f| f.as_str()).map(str::to_string);
            (field("key"), field("value"))
        })
        .collect()
}

/// Every `(key, value)` a state store holds, in key order.
type StateEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// What each record became (its first output's value, or the rejection),
/// and every state entry left, for component `name` run in batches of 7.
fn count_through_the_engine(
    engine: &Engine,
    name: &str,
    config: &[(&str, &str)],
) -> (Vec<String>, StateEntries) {
    let processor = engine
        .load(&component(name))
        .unwrap_or_else(|e| panic!("{name} loads: {e}"));
    let mut instance = processor
        .instantiate(InstanceSetup::standalone(
            "count",
            config,
            Limits {
                memory_bytes: 64 << 20,
                deadline: Duration::from_secs(10),
                ..Limits::default()
            },
        ))
        .unwrap_or_else(|e| panic!("{name} starts: {e}"));
    let records = text_records(&inputs().join("count.jsonl"));
    let mut seen = Vec::new();
    for (n, chunk) in records.chunks(7).enumerate() {
        let mut batch = BatchWriter::new(&["input"]);
        for (i, (key, value)) in chunk.iter().enumerate() {
            let offset = (n * 7 + i) as i64;
            let (key, value) = (
                key.as_deref().map(str::as_bytes),
                value.as_deref().map(str::as_bytes),
            );
            batch.push(
                0,
                0,
                offset,
                0,
                key,
                value,
                std::iter::empty::<(&[u8], &[u8])>(),
            );
        }
        let outcome = instance.process(&batch);
        for (record, o) in outcome.iter() {
            seen.push(match o {
                RecordOutcome::Ok(outputs) => outputs
                    .iter()
                    .map(|out| {
                        String::from_utf8_lossy(
                            out.value.or_input(record.value).unwrap_or_default(),
                        )
                        .into_owned()
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                RecordOutcome::Rejected(reason) => format!("rejected: {reason}"),
                RecordOutcome::Failed(e) => format!("failed: {e}"),
            });
        }
    }
    let state = instance
        .state()
        .scan(&[], None, usize::MAX)
        .expect("scan the state");
    (seen, state)
}

#[test]
fn count_ports_leave_the_same_state_as_rust() {
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(cache_dir()),
        epoch_tick: Duration::from_millis(10),
    })
    .expect("engine");
    for config in [&[][..], &[("cache_entries", "3")], &[("field", "amount")]] {
        let (expected, state) = count_through_the_engine(&engine, "count", config);
        assert!(
            state.len() >= 5,
            "{config:?}: the Rust count left only {} keys",
            state.len()
        );
        assert!(
            state.iter().all(|(_, v)| v.len() == 16),
            "{config:?}: state values are 16 bytes"
        );
        for port in COUNT_PORTS {
            let name = format!("count_{port}");
            let (seen, got) = count_through_the_engine(&engine, &name, config);
            assert_eq!(seen, expected, "{name} {config:?}: outcomes differ");
            assert_eq!(got, state, "{name} {config:?}: state differs");
        }
    }
}
