//! The engine's epoch ticker thread lives exactly as long as something made
//! from the engine: no thread is leaked per engine.
//!
//! Alone in its test binary, so that no other test's engine adds threads.

use std::path::Path;
use std::time::Duration;

use partita::engine::{Engine, EngineConfig, InstanceSetup, Limits};
use partita_tests::wasm::component;

/// Threads of this process named like the ticker (Linux names threads in
/// /proc/self/task/TID/comm).
fn ticker_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "partita-epoch")
        .count()
}

#[test]
fn the_ticker_stops_when_the_last_user_of_the_engine_drops() {
    let path = component("misbehave");
    assert_eq!(ticker_threads(), 0);
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled")),
        epoch_tick: Duration::from_millis(10),
    })
    .unwrap();
    assert_eq!(ticker_threads(), 1);
    let clone = engine.clone();
    assert_eq!(ticker_threads(), 1, "clones share one ticker");

    let processor = engine.load(&path).unwrap();
    let instance = processor
        .instantiate(InstanceSetup::standalone(
            "s",
            &[],
            Limits {
                memory_bytes: 32 << 20,
                deadline: Duration::from_secs(1),
                ..Limits::default()
            },
        ))
        .unwrap();
    drop((engine, clone, processor));
    assert_eq!(
        ticker_threads(),
        1,
        "a live instance keeps its deadlines ticking"
    );
    drop(instance);
    assert_eq!(
        ticker_threads(),
        0,
        "dropping the last user joins the thread"
    );
}
