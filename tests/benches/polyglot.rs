//! Processors in JavaScript, Python and C next to Rust, in one process: the
//! component size, the time to compile it (first load) and to load it from
//! the compiled cache, the time to start an instance (instantiate and
//! `init`), the smallest memory cap it starts under, and records per second
//! through `csv-to-json` and `count` (C has only csv-to-json), with each
//! language's ratio to Rust.
//!
//! Run with `cargo bench -p partita-tests --bench polyglot`; it builds the
//! components first (`scripts/build-wasm.sh`, `scripts/build-polyglot.sh`).
//! Results: `docs/BENCHMARKS.md`, section "Languages".

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use partita::engine::{
    Engine, EngineConfig, Instance, InstanceSetup, Limits, Processor, RecordOutcome,
};
use partita_tests::wasm::{component as rust_component, components_dir, repo_root};
use partita_wire::BatchWriter;

/// Records per batch, the host's default.
const BATCH: usize = 512;
/// How long each throughput measurement runs, after a warm-up batch.
const RUN_FOR: Duration = Duration::from_secs(3);
/// Memory cap for the throughput runs.
const MEMORY: usize = 64 << 20;

/// Each language: its name, its components' suffix, and whether it has a
/// port of `count`.
const LANGUAGES: [(&str, &str, bool); 4] = [
    ("Rust", "", true),
    ("JavaScript", "_js", true),
    ("Python", "_py", true),
    ("C", "_c", false),
];

fn engine(cache: &Path) -> Engine {
    Engine::new(EngineConfig {
        cache_dir: Some(cache.to_path_buf()),
        epoch_tick: Duration::from_millis(10),
    })
    .expect("engine")
}

fn setup(config: &[(&str, &str)], memory: usize) -> InstanceSetup {
    InstanceSetup::standalone(
        "bench",
        config,
        Limits {
            memory_bytes: memory,
            deadline: Duration::from_secs(30),
            ..Limits::default()
        },
    )
}

fn build() {
    rust_component("csv-to-json");
    rust_component("count");
    let script = repo_root().join("scripts/build-polyglot.sh");
    let status = Command::new("bash")
        .arg(&script)
        .status()
        .expect("run build-polyglot.sh");
    assert!(status.success(), "{} failed", script.display());
}

fn path_of(name: &str) -> PathBuf {
    components_dir().join(format!("{name}.wasm"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Legacy order lines, some quoted, about 40 bytes each.
fn csv_batch(round: usize) -> BatchWriter {
    let mut b = BatchWriter::new(&["orders"]);
    for i in 0..BATCH {
        let n = round * BATCH + i;
        let name = if n.is_multiple_of(5) {
            format!("\"Doe, Jane {n}\"")
        } else {
            format!("Customer {}", n % 977)
        };
        let line = format!("{n},{name},{}.{:02},EUR", n % 10_000, n % 100);
        let key = format!("order-{n}");
        b.push(
            0,
            0,
            n as i64,
            1_700_000_000_000 + n as i64,
            Some(key.as_bytes()),
            Some(line.as_bytes()),
            std::iter::empty::<(&[u8], &[u8])>(),
        );
    }
    b
}

/// Amounts under 1,000 distinct keys.
fn count_batch(round: usize) -> BatchWriter {
    let mut b = BatchWriter::new(&["amounts"]);
    for i in 0..BATCH {
        let n = round * BATCH + i;
        let key = format!("customer-{}", n % 1000);
        let value = format!("{}.{:02}", n % 500, n % 100);
        b.push(
            0,
            0,
            n as i64,
            0,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            std::iter::empty::<(&[u8], &[u8])>(),
        );
    }
    b
}

/// Records per second through `instance`, every record accepted with one
/// output.
fn throughput(instance: &mut Instance, make: fn(usize) -> BatchWriter) -> f64 {
    let batches: Vec<BatchWriter> = (0..16).map(make).collect();
    let check = |instance: &mut Instance, b: &BatchWriter| {
        let outcome = instance.process(b);
        let ok = outcome
            .iter()
            .filter(|(_, o)| matches!(o, RecordOutcome::Ok(outs) if outs.len() == 1))
            .count();
        assert_eq!(ok, BATCH, "every record should give one output");
    };
    check(instance, &batches[0]);
    let start = Instant::now();
    let mut records = 0;
    let mut i = 0;
    while start.elapsed() < RUN_FOR || i < 3 {
        let outcome = instance.process(&batches[i % batches.len()]);
        assert_eq!(outcome.calls(), 1, "the batch ran in one call");
        records += outcome.len();
        i += 1;
    }
    records as f64 / start.elapsed().as_secs_f64()
}

/// The smallest memory cap, in MiB, under which the processor starts.
fn smallest_cap(processor: &Processor, config: &[(&str, &str)]) -> usize {
    (1..=64)
        .find(|mib| processor.instantiate(setup(config, mib << 20)).is_ok())
        .unwrap_or(usize::MAX)
}

struct Row {
    language: &'static str,
    size: u64,
    compile: Duration,
    cached: Duration,
    start: Duration,
    cap: usize,
    csv: f64,
    count: Option<f64>,
}

fn measure(language: &'static str, suffix: &str, has_count: bool) -> Row {
    let csv_config: &[(&str, &str)] = &[
        ("columns", "id,name,amount,currency"),
        ("numeric", "amount"),
    ];
    let csv = path_of(&format!("csv_to_json{suffix}"));
    let count = path_of(&format!("count{suffix}"));
    let size = std::fs::metadata(&csv).expect("component").len();

    let cache = tempfile::tempdir().expect("cache folder");
    let t = Instant::now();
    let processor = engine(cache.path()).load(&csv).expect("load");
    let compile = t.elapsed();
    assert!(!processor.from_cache());
    let cached = median(
        (0..5)
            .map(|_| {
                let e = engine(cache.path());
                let t = Instant::now();
                let p = e.load(&csv).expect("cached load");
                let d = t.elapsed();
                assert!(p.from_cache(), "the second load reads the cache");
                d
            })
            .collect(),
    );
    let processor = engine(cache.path()).load(&csv).expect("cached load");
    let start = median(
        (0..20)
            .map(|_| {
                let t = Instant::now();
                let i = processor
                    .instantiate(setup(csv_config, MEMORY))
                    .expect("instantiate");
                let d = t.elapsed();
                drop(i);
                d
            })
            .collect(),
    );
    let cap = smallest_cap(&processor, csv_config);
    let mut instance = processor
        .instantiate(setup(csv_config, MEMORY))
        .expect("instantiate");
    let csv_rate = throughput(&mut instance, csv_batch);

    let count_rate = has_count.then(|| {
        let count_processor = engine(cache.path()).load(&count).expect("load count");
        let mut instance = count_processor
            .instantiate(setup(&[], MEMORY))
            .expect("instantiate count");
        throughput(&mut instance, count_batch)
    });
    Row {
        language,
        size,
        compile,
        cached,
        start,
        cap,
        csv: csv_rate,
        count: count_rate,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    build();
    let rows: Vec<Row> = LANGUAGES
        .iter()
        .map(|(language, suffix, has_count)| measure(language, suffix, *has_count))
        .collect();
    let rust = &rows[0];
    let rust_count = rust.count.expect("Rust has count");
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "—".to_string());
    println!(
        "| language | component | compile (first load) | cached load | start (instantiate + init) | smallest memory cap | csv-to-json records/s | vs Rust | count records/s | vs Rust |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.2} MB | {:.2} s | {:.1} ms | {:.2} ms | {} MiB | {:.0} | {:.3} | {} | {} |",
            r.language,
            r.size as f64 / 1e6,
            r.compile.as_secs_f64(),
            r.cached.as_secs_f64() * 1e3,
            r.start.as_secs_f64() * 1e3,
            r.cap,
            r.csv,
            r.csv / rust.csv,
            or_dash(r.count.map(|c| format!("{c:.0}"))),
            or_dash(r.count.map(|c| format!("{:.3}", c / rust_count))),
        );
    }
    for r in &rows {
        println!(
            "{}: {:.2} µs per csv-to-json record, {} µs per count record",
            r.language,
            1e6 / r.csv,
            or_dash(r.count.map(|c| format!("{:.2}", 1e6 / c)))
        );
    }
}
