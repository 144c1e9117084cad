//! The example processors (processors/) run through the engine, as the
//! Kafka runtime runs them, with their outputs asserted.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use partita::engine::{Engine, EngineConfig, Instance, InstanceSetup, Limits, RecordOutcome};
use partita::tables::MemoryTables;
use partita_tests::wasm::component;
use partita_wire::BatchWriter;

/// An engine whose compiled cache is shared with the other engine tests.
fn engine() -> Engine {
    Engine::new(EngineConfig {
        cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled")),
        epoch_tick: Duration::from_millis(10),
    })
    .expect("engine")
}

fn start(name: &str, config: &[(&str, &str)], tables: MemoryTables) -> Instance {
    let processor = engine().load(&component(name)).expect("processor loads");
    processor
        .instantiate(InstanceSetup {
            tables: Arc::new(tables),
            ..InstanceSetup::standalone(
                name,
                config,
                Limits {
                    memory_bytes: 64 << 20,
                    deadline: Duration::from_secs(2),
                    ..Limits::default()
                },
            )
        })
        .expect("instantiate")
}

/// Runs `(key, value)` records as one batch; each result is
/// `OUTPUT key=KEY value=VALUE` per output, or `rejected: REASON`.
fn run(instance: &mut Instance, records: &[(&str, &str)]) -> Vec<String> {
    let mut batch = BatchWriter::new(&["in"]);
    for (i, (k, v)) in records.iter().enumerate() {
        let headers = [(&b"trace"[..], &b"t1"[..])];
        batch.push(
            0,
            0,
            i as i64,
            100 + i as i64,
            Some(k.as_bytes()),
            Some(v.as_bytes()),
            headers.into_iter(),
        );
    }
    let outcome = instance.process(&batch);
    let names = outcome.output_names();
    let mut seen = Vec::new();
    for (record, result) in outcome.iter() {
        match result {
            RecordOutcome::Ok(outputs) => {
                for o in outputs.iter() {
                    let text = |b: Option<&[u8]>| {
                        String::from_utf8_lossy(b.unwrap_or(b"<none>")).into_owned()
                    };
                    let headers = o.headers.unwrap_or(record.headers);
                    assert_eq!(headers.len(), 1, "headers kept");
                    assert_eq!(
                        o.timestamp.unwrap_or(record.timestamp),
                        record.timestamp,
                        "timestamp kept"
                    );
                    seen.push(format!(
                        "{} key={} value={}",
                        names[o.output as usize],
                        text(o.key.or_input(record.key)),
                        text(o.value.or_input(record.value))
                    ));
                }
            }
            RecordOutcome::Rejected(reason) => seen.push(format!("rejected: {reason}")),
            RecordOutcome::Failed(e) => panic!("record {} failed: {e}", record.offset),
        }
    }
    assert_eq!(outcome.calls(), 1, "a good batch is one call");
    seen
}

#[test]
fn passthrough_forwards_records_unchanged() {
    let mut p = start("passthrough", &[], MemoryTables::new());
    assert_eq!(p.outputs(), ["default"]);
    assert_eq!(
        run(&mut p, &[("a", "1"), ("b", "two")]),
        vec!["default key=a value=1", "default key=b value=two"]
    );
}

#[test]
fn csv_to_json_parses_lines_and_rejects_malformed_ones() {
    let mut p = start(
        "csv-to-json",
        &[("columns", "id,name,amount"), ("numeric", "amount")],
        MemoryTables::new(),
    );
    assert_eq!(
        run(
            &mut p,
            &[
                ("1", "1,Ada,12.50"),
                ("2", "2,\"Hopper, G\",3"),
                ("3", "3,Bob"),
                ("4", "4,Eve,abc")
            ]
        ),
        vec![
            r#"default key=1 value={"id":"1","name":"Ada","amount":12.50}"#,
            r#"default key=2 value={"id":"2","name":"Hopper, G","amount":3}"#,
            "rejected: expected 3 fields, found 2",
            "rejected: column `amount` is not a number: `abc`",
        ]
    );
}

#[test]
fn enrich_adds_fields_from_a_reference_table() {
    let tables = MemoryTables::new();
    tables.upsert(
        "customers",
        b"C1".to_vec(),
        Some(br#"{"tier":"gold"}"#.to_vec()),
    );
    let mut p = start(
        "enrich",
        &[
            ("table", "customers"),
            ("field", "customer"),
            ("into", "info"),
        ],
        tables.clone(),
    );
    assert_eq!(
        run(
            &mut p,
            &[
                ("o1", r#"{"customer":"C1","n":1}"#),
                ("o2", r#"{"customer":"C2"}"#)
            ]
        ),
        vec![
            r#"default key=o1 value={"customer":"C1","n":1,"info":{"tier":"gold"}}"#,
            "rejected: no entry for `C2` in table `customers`",
        ]
    );
    // Reference data that changes is seen by the next batch.
    tables.upsert(
        "customers",
        b"C2".to_vec(),
        Some(br#"{"tier":"new"}"#.to_vec()),
    );
    assert_eq!(
        run(&mut p, &[("o2", r#"{"customer":"C2"}"#)]),
        vec![r#"default key=o2 value={"customer":"C2","info":{"tier":"new"}}"#]
    );
}

#[test]
fn count_keeps_running_totals_in_state_across_batches() {
    let mut p = start("count", &[], MemoryTables::new());
    assert_eq!(
        run(&mut p, &[("a", "2"), ("b", "5"), ("a", "0.5"), ("a", "x")]),
        vec![
            r#"default key=a value={"key":"a","count":1,"sum":2}"#,
            r#"default key=b value={"key":"b","count":1,"sum":5}"#,
            r#"default key=a value={"key":"a","count":2,"sum":2.5}"#,
            "rejected: value is not a number: `x`",
        ]
    );
    assert_eq!(
        run(&mut p, &[("b", "1")]),
        vec![r#"default key=b value={"key":"b","count":2,"sum":6}"#]
    );
    // The totals are in the host's state: 16 bytes per key.
    let state = p.state().get(b"a").unwrap().expect("a is counted");
    assert_eq!(state.len(), 16);
    assert_eq!(u64::from_le_bytes(state[..8].try_into().unwrap()), 2);
    assert_eq!(f64::from_le_bytes(state[8..].try_into().unwrap()), 2.5);
}

#[test]
fn count_state_survives_a_restart_of_the_instance() {
    let mut p = start("count", &[], MemoryTables::new());
    run(&mut p, &[("a", "1")]);
    let state = p.into_state();
    // A new engine and instance, as after a restart of the host.
    let mut again = engine()
        .load(&component("count"))
        .unwrap()
        .instantiate(InstanceSetup {
            stage: "count".into(),
            partition: 0,
            config: Vec::new(),
            state,
            tables: Arc::new(MemoryTables::new()),
            limits: Limits {
                memory_bytes: 64 << 20,
                deadline: Duration::from_secs(2),
                ..Limits::default()
            },
            counters: Default::default(),
        })
        .unwrap();
    assert_eq!(
        run(&mut again, &[("a", "1")]),
        vec![r#"default key=a value={"key":"a","count":2,"sum":2}"#]
    );
}

#[test]
fn router_sends_records_to_named_outputs() {
    let mut p = start(
        "router",
        &[
            ("field", "region"),
            ("routes", "EU=europe,US=americas,CA=americas"),
            ("default", "rest"),
        ],
        MemoryTables::new(),
    );
    assert_eq!(p.outputs(), ["europe", "americas", "rest"]);
    assert_eq!(
        run(
            &mut p,
            &[
                ("1", r#"{"region":"EU"}"#),
                ("2", r#"{"region":"CA"}"#),
                ("3", r#"{"region":"XX"}"#)
            ]
        ),
        vec![
            r#"europe key=1 value={"region":"EU"}"#,
            r#"americas key=2 value={"region":"CA"}"#,
            r#"rest key=3 value={"region":"XX"}"#,
        ]
    );
}
