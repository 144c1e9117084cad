//! Hot-swap cost at the engine level: the pause a partition sees when its
//! processor is swapped, with the new version's compiled code already in
//! the cache (as the reload coordinator leaves it).
//!
//! For `count` (Rust) and, when built, its Python and JavaScript ports,
//! alternating between two versions of the same code (the second one has
//! a custom section appended, so another content hash):
//!
//! - `load`: `Engine::load_bytes` of a version whose artifact is cached
//!   (off the hot path: the coordinator's side);
//! - `swap`: `Instance::replace_processor` (instantiate and `init` the new
//!   version around the partition's state), the part a worker waits for;
//! - `first batch` after a swap and `steady batch`, 500 records each: the
//!   extra time of the first batch on a fresh instance is part of the
//!   pause too.
//!
//! Prints p50 and p99 of each, in milliseconds. Run with
//! `cargo bench -p partita --bench reload`; results in docs/BENCHMARKS.md.

use std::path::Path;
use std::time::{Duration, Instant};

use partita::engine::{Engine, EngineConfig, Instance, InstanceSetup, Limits, Processor};
use partita_wire::BatchWriter;

#[path = "../../tests/src/wasm.rs"]
#[allow(dead_code)]
mod wasm;

const BATCH: usize = 500;
const KEYS: usize = 1000;

/// The same code under another content hash.
fn variant(bytes: &[u8]) -> Vec<u8> {
    let name = b"partita-bench";
    let mut out = bytes.to_vec();
    out.extend_from_slice(&[0, name.len() as u8 + 2, name.len() as u8]);
    out.extend_from_slice(name);
    out.push(1);
    out
}

fn batch(round: usize) -> BatchWriter {
    let mut b = BatchWriter::new(&["in"]);
    for i in 0..BATCH {
        let n = round * BATCH + i;
        let key = format!("key-{:06}", n % KEYS);
        let value = (n % 1000).to_string();
        b.push(
            0,
            0,
            n as i64,
            0,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            std::iter::empty(),
        );
    }
    b
}

fn run(instance: &mut Instance, b: &BatchWriter) -> Duration {
    let started = Instant::now();
    let outcome = instance.process(b);
    let n = outcome.iter().count();
    assert_eq!(n, BATCH);
    started.elapsed()
}

/// p50 and p99 in milliseconds.
fn percentiles(mut d: Vec<Duration>) -> (f64, f64) {
    d.sort_unstable();
    let at = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

fn bench(engine: &Engine, name: &str, path: &Path, swaps: usize) {
    let a = std::fs::read(path).unwrap();
    let b = variant(&a);
    // Compile both once: from then on they come from the cache.
    engine.load_bytes(path, &a).unwrap();
    engine.load_bytes(path, &b).unwrap();
    let versions = [a, b];
    let limits = Limits {
        memory_bytes: 512 << 20,
        deadline: Duration::from_secs(10),
        ..Limits::default()
    };
    let first: Processor = engine.load_bytes(path, &versions[0]).unwrap();
    let mut instance = first
        .instantiate(InstanceSetup::standalone("bench", &[], limits))
        .unwrap();
    // Warm up: state for every key, a few batches.
    for round in 0..4 {
        run(&mut instance, &batch(round));
    }
    let (mut loads, mut pauses, mut firsts, mut steadies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..swaps {
        let bytes = &versions[(i + 1) % 2];
        let started = Instant::now();
        let processor = engine.load_bytes(path, bytes).unwrap();
        loads.push(started.elapsed());
        assert!(processor.from_cache());
        let started = Instant::now();
        instance.replace_processor(&processor).unwrap();
        pauses.push(started.elapsed());
        firsts.push(run(&mut instance, &batch(4 + 2 * i)));
        steadies.push(run(&mut instance, &batch(5 + 2 * i)));
    }
    let show = |what: &str, d: Vec<Duration>| {
        let (p50, p99) = percentiles(d);
        println!("{name:>9} {what:<13} p50 {p50:8.3} ms   p99 {p99:8.3} ms");
    };
    show("load (cached)", loads);
    show("swap", pauses);
    show("first batch", firsts);
    show("steady batch", steadies);
}

fn main() {
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        epoch_tick: Duration::from_millis(10),
    })
    .unwrap();
    println!("{BATCH} records per batch, {KEYS} keys of state; times per swap");
    bench(&engine, "count", &wasm::component("count"), 1000);
    for port in ["count_py", "count_js"] {
        let path = wasm::components_dir().join(format!("{port}.wasm"));
        if path.is_file() {
            bench(&engine, port, &path, 100);
        } else {
            println!("{port:>9} not built (scripts/build-polyglot.sh): skipped");
        }
    }
}
