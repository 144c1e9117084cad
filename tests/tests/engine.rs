//! The Wasm engine against real components: loading and the compiled
//! cache, the world check, limits, per-record retry, state and tables.
//!
//! Most tests use the `misbehave` guest (tests/guests/misbehave), whose
//! behaviour per record is chosen by the record value.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use partita::engine::{
    Counters, Engine, EngineConfig, Instance, InstanceError, InstanceSetup, Limits, LoadError,
    ProcessError, Processor, RecordOutcome,
};
use partita::tables::{MemoryTables, Tables};
use partita_tests::wasm::component;
use partita_wire::{BatchWriter, Field};

const MEMORY: usize = 32 << 20;
const DEADLINE: Duration = Duration::from_millis(300);

fn engine(cache_dir: Option<&Path>) -> Engine {
    Engine::new(EngineConfig {
        cache_dir: cache_dir.map(Path::to_path_buf),
        epoch_tick: Duration::from_millis(10),
    })
    .expect("engine")
}

/// An engine whose compiled-artifact cache (target/tmp/compiled) is shared
/// by the engine and CLI tests and kept between runs, so that most loads
/// deserialize instead of compiling.
fn shared() -> Engine {
    engine(Some(
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled"),
    ))
}

fn misbehave(engine: &Engine) -> Processor {
    engine
        .load(&component("misbehave"))
        .expect("misbehave loads")
}

fn setup(config: &[(&str, &str)], tables: Arc<dyn Tables>) -> InstanceSetup {
    let limits = Limits {
        memory_bytes: MEMORY,
        deadline: DEADLINE,
        ..Limits::default()
    };
    InstanceSetup {
        partition: 3,
        tables,
        ..InstanceSetup::standalone("test", config, limits)
    }
}

fn instance(config: &[(&str, &str)]) -> Instance {
    let engine = shared();
    misbehave(&engine)
        .instantiate(setup(config, Arc::new(MemoryTables::new())))
        .expect("instantiate")
}

/// A batch of records on topic "input", keyed `k{i}` unless given.
fn batch(records: &[(&str, &str)]) -> BatchWriter {
    let mut b = BatchWriter::new(&["input"]);
    for (i, (key, value)) in records.iter().enumerate() {
        b.push(
            0,
            3,
            i as i64,
            1_000 + i as i64,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            std::iter::empty::<(&[u8], &[u8])>(),
        );
    }
    b
}

/// What became of each record, as text: `ok:VALUE` (the first output's value,
/// resolved against the input), `rejected:REASON` or `failed:ERROR`.
fn run(instance: &mut Instance, records: &[(&str, &str)]) -> (Vec<String>, usize) {
    let b = batch(records);
    let outcome = instance.process(&b);
    let calls = outcome.calls();
    let seen = outcome
        .iter()
        .map(|(record, o)| match o {
            RecordOutcome::Ok(outputs) => {
                let values: Vec<String> = outputs
                    .iter()
                    .map(|out| {
                        let v = out.value.or_input(record.value).unwrap_or_default();
                        String::from_utf8_lossy(v).into_owned()
                    })
                    .collect();
                format!("ok:{}", values.join(","))
            }
            RecordOutcome::Rejected(reason) => format!("rejected:{reason}"),
            RecordOutcome::Failed(e) => format!("failed:{e}"),
        })
        .collect();
    (seen, calls)
}

fn failure(instance: &mut Instance, value: &str) -> ProcessError {
    let b = batch(&[("k", value)]);
    let outcome = instance.process(&b);
    let (_, o) = outcome.iter().next().expect("one record");
    match o {
        RecordOutcome::Failed(e) => e.clone(),
        other => panic!("expected a failure for {value}, got {other:?}"),
    }
}

fn counter(instance: &mut Instance, key: &str) -> Option<String> {
    let v = instance
        .state()
        .get(format!("count:{key}").as_bytes())
        .expect("state get");
    v.map(|v| String::from_utf8(v).expect("utf-8 counter"))
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write test file");
    p
}

#[test]
fn second_load_deserializes_the_cached_artifact() {
    let cache = tempfile::tempdir().unwrap();
    let first = engine(Some(cache.path()));
    let p1 = misbehave(&first);
    assert!(!p1.from_cache(), "the first load compiles");
    assert_eq!(p1.version().len(), 12);
    assert!(p1.content_hash().starts_with(p1.version()));
    let artifact = first
        .cached_artifact_path(p1.content_hash())
        .expect("cache on");
    assert!(
        artifact.is_file(),
        "artifact written to {}",
        artifact.display()
    );

    // A new engine (as after a restart of the host) finds the artifact.
    let second = engine(Some(cache.path()));
    let p2 = misbehave(&second);
    assert!(p2.from_cache(), "the second load deserializes");
    assert_eq!(p2.version(), p1.version());
    let mut inst = p2
        .instantiate(setup(&[], Arc::new(MemoryTables::new())))
        .unwrap();
    assert_eq!(run(&mut inst, &[("a", "hello")]).0, vec!["ok:hello"]);

    // No cache folder: always compiled.
    let uncached = engine(None);
    assert!(!misbehave(&uncached).from_cache());
    assert!(uncached.cached_artifact_path(p1.content_hash()).is_none());
}

#[test]
fn a_corrupt_cached_artifact_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let e = engine(Some(cache.path()));
    let p = misbehave(&e);
    let artifact = e.cached_artifact_path(p.content_hash()).unwrap();
    std::fs::write(&artifact, b"corrupt").unwrap();
    let again = misbehave(&engine(Some(cache.path())));
    assert!(!again.from_cache());
    // ... and the artifact is rewritten, usable by the next load.
    assert!(misbehave(&engine(Some(cache.path()))).from_cache());
}

#[test]
fn a_missing_file_is_named() {
    let err = shared()
        .load(Path::new("/no/such/processor.wasm"))
        .err()
        .expect("fails");
    assert!(matches!(err, LoadError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("/no/such/processor.wasm"), "{err}");
}

#[test]
fn a_core_module_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "core.wasm", b"\0asm\x01\0\0\0");
    let err = shared().load(&path).err().expect("fails");
    assert!(matches!(err, LoadError::NotAComponent { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("core.wasm") && text.contains("core WebAssembly module"),
        "{text}"
    );
}

#[test]
fn garbage_and_truncated_files_are_not_components() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = write_file(dir.path(), "garbage.wasm", b"this is not wasm at all");
    let err = shared().load(&garbage).err().expect("fails");
    assert!(matches!(err, LoadError::NotAComponent { .. }), "{err:?}");
    assert!(
        err.to_string().contains("not a WebAssembly binary"),
        "{err}"
    );

    let full = std::fs::read(component("misbehave")).unwrap();
    let truncated = write_file(dir.path(), "truncated.wasm", &full[..full.len() / 2]);
    let err = shared().load(&truncated).err().expect("fails");
    assert!(matches!(err, LoadError::NotAComponent { .. }), "{err:?}");
    assert!(err.to_string().contains("truncated.wasm"), "{err}");
}

#[test]
fn a_component_of_another_world_is_refused() {
    let err = shared()
        .load(&component("wrong-world"))
        .err()
        .expect("fails");
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("missing export partita:processor/processor@0.1.0"),
        "{text}"
    );
    assert!(
        text.contains("greet"),
        "names what it exports instead: {text}"
    );
}

#[test]
fn an_import_the_host_lacks_is_named() {
    let err = shared()
        .load(&component("foreign-import"))
        .err()
        .expect("fails");
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("unsupported import test:foreign/clock"),
        "{err}"
    );
}

#[test]
fn an_export_of_another_signature_is_refused_at_load() {
    let err = shared()
        .load(&component("mismatched-export"))
        .err()
        .expect("fails");
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err:?}");
    assert!(
        err.to_string().ends_with(
            "export partita:processor/processor@0.1.0#process has type \
             func(list<u8>) -> string, expected func(list<u8>) -> list<u8>"
        ),
        "{err}"
    );
}

#[test]
fn an_import_of_another_signature_is_refused_at_load() {
    let err = shared()
        .load(&component("mismatched-import"))
        .err()
        .expect("fails");
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(
            "import partita:processor/state@0.1.0 does not match what the host provides: \
             instance export `get` has the wrong type"
        ),
        "{text}"
    );
}

#[test]
fn extra_exports_are_allowed() {
    // misbehave also exports test:misbehave/probe (as componentize-py adds
    // an interface of its own); it loads and runs.
    let bytes = std::fs::read(component("misbehave")).unwrap();
    let needle = b"test:misbehave/probe";
    assert!(
        bytes.windows(needle.len()).any(|w| w == needle),
        "the guest exports the probe"
    );
    let mut inst = instance(&[]);
    assert_eq!(run(&mut inst, &[("a", "b")]).0, vec!["ok:b"]);
}

#[test]
fn init_gets_the_config_and_declares_outputs() {
    let inst = instance(&[("outputs", "main,errors")]);
    assert_eq!(inst.outputs(), ["main", "errors"]);
    assert_eq!(inst.version().len(), 12);
}

#[test]
fn init_failures_are_reported_with_the_reason() {
    let e = shared();
    let p = misbehave(&e);
    let tables: Arc<dyn Tables> = Arc::new(MemoryTables::new());
    let init_err = |config: &[(&str, &str)]| match p.instantiate(setup(config, tables.clone())) {
        Err(InstanceError::Init { version, reason }) => {
            assert_eq!(version, p.version());
            reason
        }
        Err(other) => panic!("expected an init error, got {other}"),
        Ok(_) => panic!("expected an init error for {config:?}"),
    };
    assert_eq!(
        init_err(&[("fail_init", "yes")]),
        "init failed as configured"
    );
    assert!(init_err(&[("init", "loop")]).contains("CPU deadline"));
    assert!(init_err(&[("init", "alloc")]).contains("memory cap"));
    let panicked = init_err(&[("init", "panic")]);
    assert!(panicked.contains("unreachable"), "{panicked}");
    assert!(
        panicked.contains("panicked at") && panicked.ends_with("panic requested"),
        "{panicked}"
    );
}

#[test]
fn a_tiny_memory_cap_fails_instantiation() {
    let e = shared();
    let mut s = setup(&[], Arc::new(MemoryTables::new()));
    s.limits.memory_bytes = 64 << 10;
    match misbehave(&e).instantiate(s) {
        Err(InstanceError::Instantiate { reason, .. }) => {
            assert!(reason.contains("memory cap"), "{reason}")
        }
        Err(other) => panic!("expected an instantiation error, got {other}"),
        Ok(_) => panic!("a 64 KiB cap cannot hold the guest"),
    }
}

#[test]
fn a_good_batch_takes_one_call() {
    let mut inst = instance(&[]);
    let (seen, calls) = run(&mut inst, &[("a", "one"), ("b", "reject"), ("c", "three")]);
    assert_eq!(
        seen,
        vec!["ok:one", "rejected:rejected on request", "ok:three"]
    );
    assert_eq!(calls, 1);
    let (seen, calls) = run(&mut inst, &[]);
    assert!(seen.is_empty());
    assert_eq!(calls, 0);
}

#[test]
fn outputs_keep_or_replace_input_fields() {
    let mut inst = instance(&[]);
    let b = batch(&[("k1", "state"), ("k2", "identity")]);
    let outcome = inst.process(&b);
    let all: Vec<_> = outcome.iter().collect();
    let (r0, RecordOutcome::Ok(o0)) = all[0] else {
        panic!("{:?}", all[0].1)
    };
    let out = o0.iter().next().unwrap();
    assert_eq!(out.output, 0);
    assert_eq!(out.key, Field::Keep);
    assert_eq!(out.key.or_input(r0.key), Some(&b"k1"[..]));
    assert_eq!(out.value, Field::Bytes(b"1"));
    assert_eq!(out.timestamp, None);
    let (r1, RecordOutcome::Ok(o1)) = all[1] else {
        panic!("{:?}", all[1].1)
    };
    assert_eq!(r1.offset, 1);
    assert_eq!(r1.timestamp, 1_001);
    assert_eq!(r1.partition, 3);
    assert_eq!(r1.topic, "input");
    assert_eq!(
        o1.iter().next().unwrap().value.or_input(r1.value),
        Some(&b"identity"[..])
    );
}

#[test]
fn an_endless_loop_is_stopped_by_the_deadline_and_the_next_batch_runs() {
    let mut inst = instance(&[]);
    assert_eq!(failure(&mut inst, "loop"), ProcessError::Deadline(DEADLINE));
    assert_eq!(run(&mut inst, &[("a", "after")]).0, vec!["ok:after"]);
}

#[test]
fn endless_recursion_traps_on_the_guest_s_stack_and_the_next_batch_runs() {
    let mut inst = instance(&[]);
    match failure(&mut inst, "recurse") {
        ProcessError::Trap(reason) => {
            assert!(reason.contains("call stack exhausted"), "{reason}")
        }
        other => panic!("expected a trap, got {other}"),
    }
    assert_eq!(run(&mut inst, &[("a", "after")]).0, vec!["ok:after"]);
}

#[test]
fn a_processor_can_neither_read_host_files_nor_open_connections() {
    let mut inst = instance(&[]);
    let (seen, _) = run(&mut inst, &[("a", "read-file"), ("b", "connect")]);
    assert!(
        seen[0].starts_with("rejected:no file: "),
        "a host file was readable: {}",
        seen[0]
    );
    assert!(
        seen[1].starts_with("rejected:no network: "),
        "a connection opened: {}",
        seen[1]
    );
}

#[test]
fn unbounded_allocation_is_stopped_by_the_memory_cap_and_the_next_batch_runs() {
    let mut inst = instance(&[]);
    assert_eq!(failure(&mut inst, "alloc"), ProcessError::Memory(MEMORY));
    assert_eq!(run(&mut inst, &[("a", "after")]).0, vec!["ok:after"]);
}

#[test]
fn only_the_poison_records_fail() {
    let mut inst = instance(&[]);
    let (seen, calls) = run(
        &mut inst,
        &[
            ("a", "first"),
            ("b", "panic"),
            ("c", "reject"),
            ("d", "loop"),
            ("e", "last"),
        ],
    );
    assert_eq!(seen[0], "ok:first");
    assert!(
        seen[1].starts_with(
            "failed:trapped: wasm trap: wasm `unreachable` instruction executed; \
             the processor wrote: thread '<unnamed>'"
        ) && seen[1].contains("panicked at tests/guests/misbehave/src/lib.rs:")
            && seen[1].ends_with("panic requested"),
        "{}",
        seen[1]
    );
    assert_eq!(seen[2], "rejected:rejected on request");
    assert_eq!(
        seen[3],
        format!("failed:{}", ProcessError::Deadline(DEADLINE))
    );
    assert_eq!(seen[4], "ok:last");
    assert_eq!(calls, 1 + 5, "one batch call, then one call per record");
    // The instance that replaced the failed ones keeps working.
    assert_eq!(
        run(&mut inst, &[("a", "x"), ("b", "y")]),
        (vec!["ok:x".into(), "ok:y".into()], 1)
    );
}

#[test]
fn state_of_a_successful_call_is_committed() {
    let mut inst = instance(&[]);
    let b = batch(&[("a", "state"), ("a", "state"), ("b", "state")]);
    let outcome = inst.process(&b);
    let changes: Vec<_> = outcome
        .changes()
        .iter()
        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(
        changes,
        vec![
            (b"count:a".to_vec(), Some(b"2".to_vec())),
            (b"count:b".to_vec(), Some(b"1".to_vec()))
        ]
    );
    drop(outcome);
    assert_eq!(counter(&mut inst, "a").as_deref(), Some("2"));
    assert_eq!(run(&mut inst, &[("a", "state")]).0, vec!["ok:3"]);
}

#[test]
fn state_of_a_failed_call_is_dropped() {
    let mut inst = instance(&[]);
    run(&mut inst, &[("a", "state")]);
    // The batch call fails (put-panic): its two writes are dropped. Retried
    // alone, `state` succeeds and `put-panic` fails again, dropping its write.
    let b = batch(&[("a", "state"), ("a", "put-panic")]);
    let outcome = inst.process(&b);
    assert_eq!(outcome.calls(), 3);
    let changes: Vec<_> = outcome
        .changes()
        .iter()
        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(changes, vec![(b"count:a".to_vec(), Some(b"2".to_vec()))]);
    drop(outcome);
    assert_eq!(counter(&mut inst, "a").as_deref(), Some("2"));
}

#[test]
fn state_writes_beyond_the_memory_cap_stop_the_call_and_keep_the_state() {
    // A deadline long enough that only the memory cap can stop the call
    // (copying each 1 MiB value takes a while in a debug build).
    let mut inst = misbehave(&shared())
        .instantiate(InstanceSetup {
            limits: Limits {
                memory_bytes: MEMORY,
                deadline: Duration::from_secs(30),
                ..Limits::default()
            },
            ..setup(&[], Arc::new(MemoryTables::new()))
        })
        .expect("instantiate");
    run(&mut inst, &[("a", "state")]);
    // 512 KiB values under ever new keys: small in the guest, unbounded in
    // the host unless capped.
    let e = failure(&mut inst, "state-bomb");
    assert_eq!(e, ProcessError::Memory(MEMORY), "{e}");
    assert!(
        inst.state()
            .get(b"bomb:\0\0\0\0\0\0\0\0")
            .unwrap()
            .is_none()
    );
    assert_eq!(run(&mut inst, &[("a", "state")]).0, vec!["ok:2"]);
}

#[test]
fn an_output_or_a_state_write_past_max_record_bytes_fails_its_record_alone() {
    let mut inst = instance(&[]);
    let (seen, calls) = run(
        &mut inst,
        &[
            ("a", "state"),
            ("b", "big-output"),
            ("c", "big-state"),
            ("d", "big-write-batch"),
            ("a", "state"),
        ],
    );
    assert_eq!(calls, 6, "the batch, then each record alone");
    assert_eq!(seen[0], "ok:1");
    assert_eq!(
        seen[1],
        "failed:an output of 2000000 bytes is larger than max_record_bytes (1000000)"
    );
    let write = "failed:a state write of 2000005 bytes is larger than max_record_bytes (1000000)";
    assert_eq!(seen[2], write);
    assert_eq!(seen[3], write, "a write-batch is held to the same limit");
    assert_eq!(seen[4], "ok:2", "the records around them keep their state");
    assert_eq!(counter(&mut inst, "b"), None, "its state write was dropped");
    assert!(inst.state().get(b"big:c").unwrap().is_none());

    // Raised, the same records pass.
    let mut roomy = misbehave(&shared())
        .instantiate(InstanceSetup {
            limits: Limits {
                max_record_bytes: 4_000_000,
                ..Limits::default()
            },
            ..setup(&[], Arc::new(MemoryTables::new()))
        })
        .expect("instantiate");
    let (seen, _) = run(&mut roomy, &[("b", "big-output"), ("c", "big-state")]);
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|s| s.starts_with("ok:")), "{seen:?}");
}

#[test]
fn a_record_with_too_many_outputs_fails_alone_and_writes_nothing() {
    let mut inst = instance(&[]);
    let (seen, calls) = run(&mut inst, &[("a", "state"), ("b", "flood"), ("c", "state")]);
    assert_eq!(calls, 4, "the batch, then each record alone");
    assert_eq!(seen[0], "ok:1");
    assert_eq!(
        seen[1],
        "failed:emitted 10001 outputs for one record, more than max_record_outputs (10000)"
    );
    assert_eq!(seen[2], "ok:1");
    assert_eq!(counter(&mut inst, "b"), None, "its state write was dropped");
}

/// An instance of `misbehave` under `limits`.
fn capped(limits: Limits, config: &[(&str, &str)]) -> Instance {
    misbehave(&shared())
        .instantiate(InstanceSetup {
            limits,
            ..setup(config, Arc::new(MemoryTables::new()))
        })
        .expect("instantiate")
}

#[test]
fn the_caps_on_one_record_are_settings_and_hold_for_timers_too() {
    let limits = Limits {
        max_record_bytes: 4_000_000,
        max_record_outputs: 20_000,
        max_record_output_bytes: 1_000_000,
        ..Limits::default()
    };
    let mut inst = capped(limits, &[("timer", "emit")]);
    let (seen, _) = run(
        &mut inst,
        &[("a", "flood"), ("b", "big-output"), ("c", "state")],
    );
    assert!(seen[0].starts_with("ok:"), "10,001 outputs are allowed now");
    assert_eq!(
        seen[1],
        "failed:emitted 2000000 bytes of outputs for one record, \
         more than max_record_output_bytes (1000000)"
    );
    assert_eq!(seen[2], "ok:1");
    assert_eq!(counter(&mut inst, "b"), None, "its state write was dropped");

    // A timer call's outputs count as one record's: key and value, 34
    // bytes, over 10.
    let mut timer = capped(
        Limits {
            max_record_output_bytes: 10,
            ..Limits::default()
        },
        &[("timer", "emit")],
    );
    assert_eq!(
        timer.on_timer(5_000, 6_000).err(),
        Some(ProcessError::OutputsTooLarge {
            bytes: 34,
            limit: 10
        })
    );
    assert_eq!(counter(&mut timer, "timer"), None, "its write was dropped");
}

#[test]
fn a_batch_past_its_caps_runs_again_record_by_record_and_only_the_records_past_them_fail() {
    // Outputs: the state guest's output is its count, one byte.
    let mut inst = capped(
        Limits {
            max_batch_outputs: 3,
            ..Limits::default()
        },
        &[],
    );
    let five: Vec<_> = ["a", "b", "c", "d", "e"].map(|k| (k, "state")).into();
    let (seen, calls) = run(&mut inst, &five);
    assert_eq!(calls, 1 + 5, "the batch, then each record alone");
    assert_eq!(&seen[..3], ["ok:1", "ok:1", "ok:1"]);
    assert_eq!(
        seen[3],
        "failed:would take the batch's outputs to 4, more than max_batch_outputs (3); \
         lower batch_size or raise max_batch_outputs"
    );
    assert_eq!(
        seen[4], seen[3],
        "a failed record adds nothing to the batch"
    );
    assert_eq!(counter(&mut inst, "d"), None, "its state write was dropped");
    assert_eq!(counter(&mut inst, "c").as_deref(), Some("1"));
    // Each batch has its own budget.
    assert_eq!(
        run(&mut inst, &five[3..]),
        (vec!["ok:1".into(), "ok:1".into()], 1)
    );

    // Bytes of outputs: three outputs of 2 MB against 5 MB.
    let mut inst = capped(
        Limits {
            max_record_bytes: 4_000_000,
            max_batch_output_bytes: 5_000_000,
            ..Limits::default()
        },
        &[],
    );
    let (seen, calls) = run(
        &mut inst,
        &[
            ("a", "big-output"),
            ("b", "big-output"),
            ("c", "big-output"),
            ("d", "state"),
        ],
    );
    assert_eq!(calls, 1 + 4);
    assert_eq!(seen[0].len(), "ok:".len() + 2_000_000);
    assert_eq!(seen[1], seen[0]);
    assert_eq!(
        seen[2],
        "failed:would take the batch's bytes of outputs to 6000000, more than \
         max_batch_output_bytes (5000000); lower batch_size or raise max_batch_output_bytes"
    );
    assert_eq!(seen[3], "ok:1", "a record that fits still passes");
    assert_eq!(counter(&mut inst, "c"), None);

    // Bytes of state writes: each `state` record puts "count:K" = "1", 8
    // bytes; 20 allow two of them.
    let mut inst = capped(
        Limits {
            max_batch_state_bytes: 20,
            ..Limits::default()
        },
        &[],
    );
    let (seen, calls) = run(&mut inst, &five[..3]);
    assert_eq!(calls, 1 + 3);
    assert_eq!(&seen[..2], ["ok:1", "ok:1"]);
    assert_eq!(
        seen[2],
        "failed:would take the batch's bytes of state writes to 24, more than \
         max_batch_state_bytes (20); lower batch_size or raise max_batch_state_bytes"
    );
    assert_eq!(counter(&mut inst, "c"), None);
    assert_eq!(counter(&mut inst, "b").as_deref(), Some("1"));
    let again = batch(&five[..3]);
    let outcome = inst.process(&again);
    assert_eq!(
        outcome.changes().len(),
        2,
        "the changelog gets the writes of the records that passed"
    );
}

#[test]
fn processor_counters_count_only_calls_that_return() {
    let counters = Arc::new(Counters::new());
    let mut inst = misbehave(&shared())
        .instantiate(InstanceSetup {
            counters: counters.clone(),
            ..setup(&[], Arc::new(MemoryTables::new()))
        })
        .expect("instantiate");
    // The batch traps after counting twice; retried record by record, `a`
    // counts once and the panicking record not at all.
    let (seen, calls) = run(&mut inst, &[("a", "count"), ("b", "count-panic")]);
    assert_eq!(calls, 3);
    assert!(seen[1].starts_with("failed:"), "{seen:?}");
    run(&mut inst, &[("a", "count"), ("c", "count")]);
    assert_eq!(
        counters.snapshot(),
        [
            (("calls".to_string(), "a".to_string()), 2),
            (("calls".to_string(), "c".to_string()), 1)
        ]
    );
    let (seen, _) = run(&mut inst, &[("-", "bad-counter")]);
    assert_eq!(
        seen,
        [
            "rejected:counter name \"Bad-Name\": use 1 to 64 characters of a-z, 0-9 and _, starting with a letter"
        ]
    );
}

#[test]
fn reads_and_scans_see_the_writes_of_the_same_call() {
    let mut inst = instance(&[]);
    run(&mut inst, &[("z", "state")]);
    let (seen, _) = run(
        &mut inst,
        &[
            ("a", "state"),
            ("b", "state"),
            ("a", "state"),
            ("-", "scan"),
        ],
    );
    assert_eq!(
        seen,
        vec!["ok:1", "ok:1", "ok:2", "ok:count:a=2;count:b=1;count:z=1;"]
    );
}

#[test]
fn write_batch_applies_puts_and_deletes_and_refuses_malformed_buffers() {
    let mut inst = instance(&[]);
    run(&mut inst, &[("a", "state")]);
    assert_eq!(
        run(&mut inst, &[("a", "write-batch")]).0,
        vec!["ok:written"]
    );
    assert_eq!(counter(&mut inst, "a"), None, "deleted by the write-batch");
    assert_eq!(inst.state().get(b"wb:a").unwrap(), Some(b"1".to_vec()));
    let (seen, _) = run(&mut inst, &[("a", "bad-write-batch")]);
    assert!(
        seen[0].starts_with("rejected:malformed writes buffer"),
        "{}",
        seen[0]
    );
}

#[test]
fn malformed_results_fail_only_the_record_that_produced_them() {
    let mut inst = instance(&[]);
    let (seen, calls) = run(
        &mut inst,
        &[("a", "fine"), ("b", "malformed"), ("c", "second-output")],
    );
    assert_eq!(calls, 4);
    assert_eq!(seen[0], "ok:fine");
    assert!(
        seen[1].starts_with("failed:returned a malformed buffer"),
        "{}",
        seen[1]
    );
    assert!(seen[2].contains("output index out of range"), "{}", seen[2]);

    // With two outputs declared, output index 1 is valid.
    let mut two = instance(&[("outputs", "main,side")]);
    assert_eq!(
        run(&mut two, &[("c", "second-output")]).0,
        vec!["ok:second-output"]
    );
}

#[test]
fn tables_are_looked_up_by_name_and_key() {
    let tables = MemoryTables::new();
    tables.upsert("names", b"ada".to_vec(), Some(b"Ada Lovelace".to_vec()));
    let e = shared();
    let mut inst = misbehave(&e)
        .instantiate(setup(&[], Arc::new(tables.clone())))
        .unwrap();
    let (seen, _) = run(&mut inst, &[("ada", "table"), ("bob", "table")]);
    assert_eq!(seen, vec!["ok:Ada Lovelace", "rejected:not in table names"]);
    // Updates are seen by running instances.
    tables.upsert("names", b"bob".to_vec(), Some(b"Bob".to_vec()));
    assert_eq!(run(&mut inst, &[("bob", "table")]).0, vec!["ok:Bob"]);
}

#[test]
fn on_timer_returns_outputs_and_commits_state() {
    let mut quiet = instance(&[]);
    assert_eq!(
        quiet
            .on_timer(5_000, 6_000)
            .expect("timer runs")
            .iter()
            .count(),
        0
    );
    assert!(quiet.last_changes().is_empty());

    let mut inst = instance(&[("timer", "emit")]);
    {
        let outputs = inst.on_timer(5_000, 6_000).expect("timer runs");
        let all: Vec<_> = outputs.iter().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].key, Field::Bytes(b"timer"));
        assert_eq!(all[0].value, Field::Bytes(b"stream=5000 wall=6000 calls=1"));
    }
    assert_eq!(counter(&mut inst, "timer").as_deref(), Some("1"));
    let changes: Vec<_> = inst.last_changes().iter().collect();
    assert_eq!(changes, vec![(&b"count:timer"[..], Some(&b"1"[..]))]);

    let mut panicky = instance(&[("timer", "panic")]);
    run(&mut panicky, &[("a", "state")]);
    assert!(!panicky.last_changes().is_empty());
    match panicky.on_timer(1, 2) {
        Err(ProcessError::Trap(reason)) => {
            assert!(reason.contains("unreachable"), "{reason}");
            assert!(reason.ends_with("panic requested"), "{reason}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(
        counter(&mut panicky, "timer"),
        None,
        "the failed timer's write is dropped"
    );
    assert!(panicky.last_changes().is_empty());
    assert_eq!(counter(&mut panicky, "a").as_deref(), Some("1"));
    assert_eq!(run(&mut panicky, &[("a", "after")]).0, vec!["ok:after"]);

    let mut looping = instance(&[("timer", "loop")]);
    assert_eq!(
        looping.on_timer(1, 2).err(),
        Some(ProcessError::Deadline(DEADLINE))
    );
}

#[test]
fn a_processor_that_cannot_restart_fails_the_remaining_records() {
    let mut inst = instance(&[]);
    // After this record commits, every later `init` fails.
    assert_eq!(
        run(&mut inst, &[("a", "arm-init-failure")]).0,
        vec!["ok:arm-init-failure"]
    );
    let (seen, calls) = run(&mut inst, &[("a", "panic"), ("b", "fine")]);
    assert_eq!(calls, 1, "no instance to retry on");
    for s in &seen {
        assert!(s.starts_with("failed:cannot restart the processor"), "{s}");
        assert!(s.contains("init failed: the state holds fail-init"), "{s}");
    }
    // The state survived in the broken instance.
    assert_eq!(inst.state().get(b"fail-init").unwrap(), Some(b"1".to_vec()));
    assert!(inst.on_timer(1, 2).is_err());
}

#[test]
fn replace_processor_keeps_state_and_refuses_code_whose_init_fails() {
    let e = shared();
    let p = misbehave(&e);
    let mut inst = p
        .instantiate(setup(&[], Arc::new(MemoryTables::new())))
        .unwrap();
    run(&mut inst, &[("a", "state"), ("a", "state")]);
    let again = e.load(&component("misbehave")).unwrap();
    inst.replace_processor(&again).expect("swap");
    assert_eq!(run(&mut inst, &[("a", "state")]).0, vec!["ok:3"]);

    run(&mut inst, &[("x", "arm-init-failure")]);
    match inst.replace_processor(&again) {
        Err(InstanceError::Init { reason, .. }) => {
            assert!(reason.contains("fail-init"), "{reason}")
        }
        other => panic!("expected an init failure, got {:?}", other.err()),
    }
    // The running code and its state are untouched.
    assert_eq!(run(&mut inst, &[("a", "state")]).0, vec!["ok:4"]);
    let mut state = inst.into_state();
    assert_eq!(state.get(b"count:a").unwrap(), Some(b"4".to_vec()));
}

#[test]
fn log_lines_do_not_disturb_processing() {
    let mut inst = instance(&[]);
    assert_eq!(run(&mut inst, &[("a", "log")]).0, vec!["ok:log"]);
}

#[test]
fn engine_types_move_between_threads() {
    fn send<T: Send>() {}
    fn shared<T: Send + Sync>() {}
    shared::<Engine>();
    shared::<Processor>();
    send::<Instance>();
    // An instance runs on another thread than the one that made it.
    let mut inst = instance(&[]);
    let seen = std::thread::spawn(move || run(&mut inst, &[("a", "moved")]).0)
        .join()
        .unwrap();
    assert_eq!(seen, vec!["ok:moved"]);
}

#[test]
fn instances_of_one_processor_run_in_parallel_with_their_own_state() {
    let e = shared();
    let p = misbehave(&e);
    let workers: Vec<_> = (0..4)
        .map(|partition| {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut s = setup(&[], Arc::new(MemoryTables::new()));
                s.partition = partition;
                let mut inst = p.instantiate(s).unwrap();
                let mut last = Vec::new();
                // Partition p counts p + 1 records under one key.
                for _ in 0..=partition {
                    last = run(&mut inst, &[("k", "state")]).0;
                }
                (partition, last, counter(&mut inst, "k"))
            })
        })
        .collect();
    for w in workers {
        let (partition, last, stored) = w.join().unwrap();
        let expected = (partition + 1).to_string();
        assert_eq!(last, vec![format!("ok:{expected}")]);
        assert_eq!(stored, Some(expected));
    }
}
