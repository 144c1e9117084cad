//! `window-sum` through the engine, as `partita run` drives it: records in
//! batches, then `on-timer` calls whose outputs and state changes are
//! checked, including a timer call after a restart of the instance.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use partita::engine::{Engine, EngineConfig, Instance, InstanceSetup, Limits, RecordOutcome};
use partita::tables::MemoryTables;
use partita_tests::wasm::component;
use partita_wire::{BatchWriter, Field};

fn engine() -> Engine {
    Engine::new(EngineConfig {
        cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled")),
        epoch_tick: Duration::from_millis(10),
    })
    .expect("engine")
}

fn limits() -> Limits {
    Limits {
        memory_bytes: 64 << 20,
        deadline: Duration::from_secs(2),
        ..Limits::default()
    }
}

const CONFIG: &[(&str, &str)] = &[("window_ms", "1000"), ("grace_ms", "500")];

fn start(state: Option<Box<dyn partita::state::StateStore>>) -> Instance {
    let processor = engine()
        .load(&component("window-sum"))
        .expect("processor loads");
    let mut setup = InstanceSetup {
        tables: Arc::new(MemoryTables::new()),
        ..InstanceSetup::standalone("win", CONFIG, limits())
    };
    if let Some(state) = state {
        setup.state = state;
    }
    processor.instantiate(setup).expect("instantiate")
}

/// Runs `(key, timestamp, value)` records as one batch; the rejection
/// reasons, in order (`None` for an accepted record).
fn run(instance: &mut Instance, records: &[(&str, i64, &str)]) -> Vec<Option<String>> {
    let mut batch = BatchWriter::new(&["amounts"]);
    for (i, (k, ts, v)) in records.iter().enumerate() {
        batch.push(
            0,
            0,
            i as i64,
            *ts,
            Some(k.as_bytes()),
            Some(v.as_bytes()),
            std::iter::empty(),
        );
    }
    let outcome = instance.process(&batch);
    outcome
        .iter()
        .map(|(_, result)| match result {
            RecordOutcome::Ok(outputs) => {
                assert!(outputs.is_empty(), "window-sum emits only from timers");
                None
            }
            RecordOutcome::Rejected(reason) => Some(reason.to_string()),
            RecordOutcome::Failed(e) => panic!("failed: {e}"),
        })
        .collect()
}

/// The timer's outputs as `KEY@TIMESTAMP VALUE`.
fn timer(instance: &mut Instance, stream_time: i64) -> Vec<String> {
    let outputs = instance.on_timer(stream_time, 0).expect("on-timer works");
    outputs
        .iter()
        .map(|o| {
            let bytes = |f: Field<'_>| match f {
                Field::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                other => format!("{other:?}"),
            };
            format!(
                "{}@{} {}",
                bytes(o.key),
                o.timestamp.expect("timestamped at the window end"),
                bytes(o.value)
            )
        })
        .collect()
}

#[test]
fn windows_are_emitted_by_on_timer_once_stream_time_passes_end_plus_grace() {
    let mut w = start(None);
    assert_eq!(
        run(
            &mut w,
            &[("a", 100, "1"), ("b", 200, "2"), ("a", 1_200, "5")]
        ),
        [None, None, None]
    );
    assert_eq!(timer(&mut w, 1_200), Vec::<String>::new());
    assert_eq!(run(&mut w, &[("a", 900, "3")]), [None], "within grace");
    assert_eq!(timer(&mut w, 1_499), Vec::<String>::new());
    assert_eq!(
        timer(&mut w, 1_500),
        [
            r#"a@1000 {"key":"a","window_start":0,"window_end":1000,"sum":4,"count":2}"#,
            r#"b@1000 {"key":"b","window_start":0,"window_end":1000,"sum":2,"count":1}"#,
        ]
    );
    assert_eq!(
        w.last_changes().len(),
        2,
        "the timer's deletes are its state changes"
    );
    assert_eq!(timer(&mut w, 1_500), Vec::<String>::new(), "once");
    // Stream time 1500 from the batch above makes [0, 1000) late.
    assert_eq!(run(&mut w, &[("b", 1_500, "1")]), [None]);
    assert_eq!(
        run(&mut w, &[("a", 999, "7")]),
        [Some(
            "late: window [0, 1000) closed at stream time 1500 (grace 500 ms)".to_string()
        )]
    );
}

#[test]
fn open_windows_and_stream_time_survive_a_restart() {
    let mut w = start(None);
    run(&mut w, &[("a", 100, "1"), ("a", 1_600, "2")]);
    let state = w.into_state();
    let mut again = start(Some(state));
    // The host's stream time is unknown after a restart (-1); the
    // processor's own, kept in state, closes [0, 1000).
    assert_eq!(
        timer(&mut again, -1),
        [r#"a@1000 {"key":"a","window_start":0,"window_end":1000,"sum":1,"count":1}"#]
    );
    assert_eq!(
        timer(&mut again, 2_500),
        [r#"a@2000 {"key":"a","window_start":1000,"window_end":2000,"sum":2,"count":1}"#]
    );
}

#[test]
fn more_windows_than_one_state_scan_returns_all_close_in_one_call() {
    let mut w = start(None);
    let keys: Vec<String> = (0..2_500).map(|i| format!("k{i:05}")).collect();
    let records: Vec<(&str, i64, &str)> = keys.iter().map(|k| (k.as_str(), 10, "1")).collect();
    assert!(run(&mut w, &records).iter().all(Option::is_none));
    let closed = timer(&mut w, 1_500);
    assert_eq!(closed.len(), keys.len());
    for (k, line) in keys.iter().zip(&closed) {
        assert_eq!(
            line,
            &format!(
                r#"{k}@1000 {{"key":"{k}","window_start":0,"window_end":1000,"sum":1,"count":1}}"#
            )
        );
    }
    assert_eq!(w.last_changes().len(), keys.len(), "each window deleted");
    assert_eq!(timer(&mut w, 1_500), Vec::<String>::new());
}
