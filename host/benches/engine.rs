//! Engine throughput: records through a Wasm processor versus the same work
//! done natively in this process, and the cost of loading a component.
//!
//! Every case takes the same owned records (as a Kafka client hands them
//! over) and ends with the same borrowed output views (as a producer reads
//! them). The Wasm path encodes a batch, calls the processor once, validates
//! its results and walks them; the native path calls a Rust identity over
//! borrowed views. The difference per record is the host's overhead.
//!
//! Run with `cargo bench -p partita --bench engine`; the components are
//! built first by `scripts/build-wasm.sh`. Results: `docs/BENCHMARKS.md`.

#![allow(missing_docs)] // criterion_group! and criterion_main! generate undocumented items

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use partita::engine::{Engine, EngineConfig, Instance, InstanceSetup, Limits, RecordOutcome};
use partita_wire::{BatchWriter, Field};

#[path = "../../tests/src/wasm.rs"]
#[allow(dead_code)]
mod wasm;

/// One record as a Kafka client would hand it over.
struct Owned {
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    offset: i64,
}

/// Record shapes of the benchmark: value size and headers.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    value_len: usize,
    headers: bool,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "100B",
        value_len: 100,
        headers: false,
    },
    Shape {
        name: "1KB",
        value_len: 1024,
        headers: false,
    },
    Shape {
        name: "100B+3h",
        value_len: 100,
        headers: true,
    },
];

fn records(n: usize, shape: Shape, distinct_keys: usize) -> Vec<Owned> {
    (0..n)
        .map(|i| Owned {
            key: format!("key-{:012}", i % distinct_keys).into_bytes(),
            value: if shape.value_len == 100 {
                // A number, so that `count` has something to sum.
                format!("{:0>100}", i % 1000).into_bytes()
            } else {
                (0..shape.value_len)
                    .map(|j| b'a' + ((i + j) % 26) as u8)
                    .collect()
            },
            headers: if shape.headers {
                vec![
                    ("content-type".into(), b"application/json".to_vec()),
                    ("trace-id".into(), format!("{i:016x}").into_bytes()),
                    ("source".into(), b"legacy-batch".to_vec()),
                ]
            } else {
                Vec::new()
            },
            offset: i as i64,
        })
        .collect()
}

fn encode(batch: &mut BatchWriter, records: &[Owned]) {
    batch.clear();
    for r in records {
        batch.push(
            0,
            0,
            r.offset,
            1_700_000_000_000 + r.offset,
            Some(&r.key),
            Some(&r.value),
            r.headers.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())),
        );
    }
}

/// Walks every output of a processed batch the way a producer reads it.
fn drain(instance: &mut Instance, batch: &BatchWriter) -> usize {
    let outcome = instance.process(batch);
    let mut bytes = 0;
    for (input, result) in outcome.iter() {
        match result {
            RecordOutcome::Ok(outputs) => {
                for o in outputs.iter() {
                    bytes += o.key.or_input(input.key).map_or(0, <[u8]>::len);
                    bytes += o.value.or_input(input.value).map_or(0, <[u8]>::len);
                    bytes += o.headers.unwrap_or(input.headers).len();
                }
            }
            other => panic!("record {} did not pass: {other:?}", input.offset),
        }
    }
    bytes
}

/// The native baseline: a zero-copy identity over borrowed views.
fn native_identity(records: &[Owned]) -> usize {
    let mut bytes = 0;
    for r in records {
        let (key, value) = black_box((Field::Keep, Field::Keep));
        bytes += key.or_input(Some(&r.key)).map_or(0, <[u8]>::len);
        bytes += value.or_input(Some(&r.value)).map_or(0, <[u8]>::len);
        bytes += r.headers.len();
    }
    bytes
}

fn engine(cache: Option<PathBuf>) -> Engine {
    Engine::new(EngineConfig {
        cache_dir: cache,
        epoch_tick: Duration::from_millis(10),
    })
    .expect("engine")
}

fn instance(engine: &Engine, name: &str, config: &[(&str, &str)]) -> Instance {
    let processor = engine.load(&wasm::component(name)).expect("load");
    processor
        .instantiate(InstanceSetup::standalone(
            name,
            config,
            Limits {
                memory_bytes: 256 << 20,
                deadline: Duration::from_secs(10),
                ..Limits::default()
            },
        ))
        .expect("instantiate")
}

fn throughput(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("tempdir");
    let engine = engine(Some(cache.path().into()));
    let mut passthrough = instance(&engine, "passthrough", &[]);
    for shape in SHAPES {
        let mut group = c.benchmark_group(format!("records/{}", shape.name));
        for size in [1usize, 64, 512] {
            let recs = records(size, shape, size);
            let mut batch = BatchWriter::new(&["in"]);
            group.throughput(Throughput::Elements(size as u64));
            group.bench_with_input(BenchmarkId::new("native", size), &recs, |b, recs| {
                b.iter(|| black_box(native_identity(recs)))
            });
            group.bench_with_input(BenchmarkId::new("passthrough", size), &recs, |b, recs| {
                b.iter(|| {
                    encode(&mut batch, recs);
                    black_box(drain(&mut passthrough, &batch))
                })
            });
        }
        group.finish();
    }
}

fn state(c: &mut Criterion) {
    let cache = tempfile::tempdir().expect("tempdir");
    let engine = engine(Some(cache.path().into()));
    let mut passthrough = instance(&engine, "passthrough", &[]);
    let mut count = instance(&engine, "count", &[]);
    let mut group = c.benchmark_group("state");
    // 512-record batches over 4,096 keys: every key is read and written
    // once per eight batches.
    let recs = records(512, SHAPES[0], 4096);
    let mut batch = BatchWriter::new(&["in"]);
    group.throughput(Throughput::Elements(recs.len() as u64));
    group.bench_function("passthrough/512", |b| {
        b.iter(|| {
            encode(&mut batch, &recs);
            black_box(drain(&mut passthrough, &batch))
        })
    });
    group.bench_function("count/512", |b| {
        b.iter(|| {
            encode(&mut batch, &recs);
            black_box(drain(&mut count, &batch))
        })
    });
    group.finish();
}

fn load(c: &mut Criterion) {
    let path = wasm::component("count");
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.bench_function("compile (no cache)", |b| {
        let engine = engine(None);
        b.iter(|| black_box(engine.load(&path).expect("load")))
    });
    let cache = tempfile::tempdir().expect("tempdir");
    let engine = engine(Some(cache.path().into()));
    engine.load(&path).expect("first load fills the cache");
    group.bench_function("cached artifact", |b| {
        b.iter(|| black_box(engine.load(&path).expect("load")))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = throughput, state, load
}
criterion_main!(benches);
