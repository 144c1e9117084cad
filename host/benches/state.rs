//! Local state stores: the candidates for the durable store of a (stage,
//! partition), measured on the operations Partita does.
//!
//! - `put_512`: one all-or-nothing commit of 512 puts of random keys (a
//!   batch's change set) into a store that already holds 200,000 keys.
//! - `get`: a get of a random present key among 200,000.
//! - `restore_1m`: 1,000,000 distinct keys written into an empty store in
//!   commits of 512, as a restore from a changelog does.
//!
//! Keys are 16 bytes, values 16 bytes (what `count` keeps per key). No
//! commit waits for the disk (`fsync`): the changelog is the durable copy
//! and the local store only needs to be atomic; both candidates are run
//! that way.
//!
//! Then the chosen store in the engine, over 1,000,000 records with
//! distinct keys in batches of 512 (`engine_1m`; the timing covers making
//! each record's key, encoding each batch, the call, and walking its
//! outcome): `passthrough`, `count`
//! with the in-memory store, `count` with the durable store ([`DiskState`],
//! 64 MiB), the two `count` cases again over 4,096 keys (the SDK's cache
//! serves the reads), and the durable store's restore of 1,000,000
//! changelog records (`DiskState::apply_changelog`, Kafka reads not
//! included).
//!
//! Run with `cargo bench -p partita --bench state`. Results:
//! `docs/BENCHMARKS.md`, section State.
//!
//! To see guest functions by name in `perf`, build the processors with
//! their names kept and point the bench at them; `PARTITA_PERFMAP` turns on
//! wasmtime's perf map and compiles without the artifact cache (code loaded
//! from the cache is not in the map):
//!
//! ```text
//! RUSTFLAGS="-C strip=none" cargo build --release --target wasm32-wasip2 \
//!     --target-dir /tmp/named -p count -p passthrough
//! PARTITA_COMPONENTS=/tmp/named/wasm32-wasip2/release PARTITA_PERFMAP=1 \
//!     perf record -g cargo bench -p partita --bench state -- engine_1m/count
//! ```

#![allow(missing_docs)] // criterion_group! and criterion_main! generate undocumented items

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use partita::engine::{Engine, EngineConfig, Instance, InstanceSetup, Limits, RecordOutcome};
use partita::state::{DiskOptions, DiskState, MemoryState, StateStore};
use partita_wire::BatchWriter;

#[path = "../../tests/src/wasm.rs"]
#[allow(dead_code)]
mod wasm;

/// Keys already in the store for `put_512` and `get`.
const PREFILL: u64 = 200_000;
/// Writes per commit.
const BATCH: usize = 512;

/// A small deterministic generator (xorshift64*), so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn key(mut n: u64) -> [u8; 16] {
    // Digit by digit rather than with `format!`: this runs inside the
    // engine cases' timing.
    let mut k = *b"key-000000000000";
    for d in k[4..].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

fn value(n: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&n.to_le_bytes());
    v
}

/// The operations measured, over one candidate.
trait Candidate {
    fn name() -> &'static str;
    fn open(dir: &std::path::Path) -> Self;
    fn commit(&self, writes: &[([u8; 16], [u8; 16])]);
    fn get_many(&self, keys: &[[u8; 16]]) -> usize;
}

mod with_redb {
    use redb::{Database, Durability, ReadableDatabase, TableDefinition};

    const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");

    pub struct Redb(Database);

    impl super::Candidate for Redb {
        fn name() -> &'static str {
            "redb"
        }

        fn open(dir: &std::path::Path) -> Self {
            Redb(
                Database::builder()
                    .set_cache_size(64 << 20)
                    .create(dir.join("state.redb"))
                    .unwrap(),
            )
        }

        fn commit(&self, writes: &[([u8; 16], [u8; 16])]) {
            let mut tx = self.0.begin_write().unwrap();
            tx.set_durability(Durability::None).unwrap();
            {
                let mut t = tx.open_table(TABLE).unwrap();
                for (k, v) in writes {
                    t.insert(&k[..], &v[..]).unwrap();
                }
            }
            tx.commit().unwrap();
        }

        fn get_many(&self, keys: &[[u8; 16]]) -> usize {
            let tx = self.0.begin_read().unwrap();
            let t = tx.open_table(TABLE).unwrap();
            keys.iter()
                .filter(|k| t.get(&k[..]).unwrap().is_some())
                .count()
        }
    }
}

mod with_fjall {
    use fjall::{Database, Keyspace, KeyspaceCreateOptions};

    pub struct Fjall {
        db: Database,
        ks: Keyspace,
    }

    impl super::Candidate for Fjall {
        fn name() -> &'static str {
            "fjall"
        }

        fn open(dir: &std::path::Path) -> Self {
            let db = Database::builder(dir)
                .cache_size(64 << 20)
                .worker_threads(1)
                .open()
                .unwrap();
            let ks = db
                .keyspace("state", KeyspaceCreateOptions::default)
                .unwrap();
            Fjall { db, ks }
        }

        fn commit(&self, writes: &[([u8; 16], [u8; 16])]) {
            let mut b = self.db.batch().durability(None);
            for (k, v) in writes {
                b.insert(&self.ks, &k[..], &v[..]);
            }
            b.commit().unwrap();
        }

        fn get_many(&self, keys: &[[u8; 16]]) -> usize {
            keys.iter()
                .filter(|k| self.ks.get(&k[..]).unwrap().is_some())
                .count()
        }
    }
}

fn prefilled<C: Candidate>(dir: &std::path::Path) -> C {
    let c = C::open(dir);
    let mut writes = Vec::with_capacity(BATCH);
    for n in 0..PREFILL {
        writes.push((key(n), value(n)));
        if writes.len() == BATCH {
            c.commit(&writes);
            writes.clear();
        }
    }
    c.commit(&writes);
    c
}

fn candidate<C: Candidate>(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store: C = prefilled(dir.path());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    let mut g = c.benchmark_group("state_store");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(BenchmarkId::new("put_512", C::name()), |b| {
        b.iter_batched(
            || {
                (0..BATCH)
                    .map(|_| {
                        let n = rng.next() % 1_000_000;
                        (key(n), value(n))
                    })
                    .collect::<Vec<_>>()
            },
            |writes| store.commit(&writes),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function(BenchmarkId::new("get_512", C::name()), |b| {
        b.iter_batched(
            || {
                (0..BATCH)
                    .map(|_| key(rng.next() % PREFILL))
                    .collect::<Vec<_>>()
            },
            |keys| black_box(store.get_many(&keys)),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
    drop(store);

    let mut g = c.benchmark_group("state_store");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function(BenchmarkId::new("restore_1m", C::name()), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let started = Instant::now();
                let store = C::open(dir.path());
                let mut writes = Vec::with_capacity(BATCH);
                for n in 0..1_000_000u64 {
                    writes.push((key(n.wrapping_mul(2_654_435_761) % 1_000_000_007), value(n)));
                    if writes.len() == BATCH {
                        store.commit(&writes);
                        writes.clear();
                    }
                }
                store.commit(&writes);
                drop(store);
                total += started.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn candidates(c: &mut Criterion) {
    candidate::<with_redb::Redb>(c);
    candidate::<with_fjall::Fjall>(c);
}

/// Records of the engine cases: distinct keys, a number as the value.
/// `PARTITA_STATE_RECORDS` sets fewer, for `scripts/bench.sh --smoke`.
fn records() -> usize {
    std::env::var("PARTITA_STATE_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000)
}

fn engine_instance(engine: &Engine, name: &str, state: Box<dyn StateStore>) -> Instance {
    let processor = engine.load(&wasm::component(name)).expect("load");
    let mut setup = InstanceSetup::standalone(
        name,
        &[],
        Limits {
            memory_bytes: 512 << 20,
            deadline: Duration::from_secs(10),
            ..Limits::default()
        },
    );
    setup.state = state;
    processor.instantiate(setup).expect("instantiate")
}

/// The values of the engine cases, the numbers 0 to 999 as text, made
/// before the timing starts.
fn engine_values() -> Vec<Vec<u8>> {
    (0..1000).map(|n: u32| n.to_string().into_bytes()).collect()
}

/// Runs `records` records over `keys` distinct keys through `instance` in
/// batches of `BATCH` (record `i`: key `i % keys`, value `values[i %
/// 1000]`); returns the time taken.
fn run_all(instance: &mut Instance, records: usize, keys: usize, values: &[Vec<u8>]) -> Duration {
    let mut batch = BatchWriter::new(&["in"]);
    let started = Instant::now();
    for first in (0..records).step_by(BATCH) {
        batch.clear();
        for i in first..(first + BATCH).min(records) {
            batch.push(
                0,
                0,
                i as i64,
                1_700_000_000_000,
                Some(&key((i % keys) as u64)),
                Some(&values[i % values.len()]),
                std::iter::empty(),
            );
        }
        let outcome = instance.process(&batch);
        for (record, result) in outcome.iter() {
            match result {
                RecordOutcome::Ok(outputs) => {
                    black_box(outputs.len());
                }
                other => panic!("record {} did not pass: {other:?}", record.offset),
            }
        }
    }
    started.elapsed()
}

fn engine_1m(c: &mut Criterion) {
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig {
        cache_dir: std::env::var_os("PARTITA_PERFMAP")
            .is_none()
            .then(|| cache.path().into()),
        epoch_tick: Duration::from_millis(10),
    })
    .expect("engine");
    let mut g = c.benchmark_group("engine_1m");
    // One pass over the million records per sample.
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    let records = records();
    g.throughput(Throughput::Elements(records as u64));
    // (benchmark, processor, distinct keys, durable store). Over 4,096 keys
    // the SDK's cache serves the reads.
    let cases = [
        ("passthrough", "passthrough", records, false),
        ("count/memory", "count", records, false),
        ("count/durable", "count", records, true),
        ("count_4096_keys/memory", "count", 4096, false),
        ("count_4096_keys/durable", "count", 4096, true),
    ];
    let values = engine_values();
    assert_eq!(&key(123_456), b"key-000000123456");
    for (name, processor, keys, durable) in cases {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let dir = tempfile::tempdir().unwrap();
                        let state: Box<dyn StateStore> = if durable {
                            Box::new(DiskState::open(dir.path(), DiskOptions::default()).unwrap())
                        } else {
                            Box::new(MemoryState::new())
                        };
                        run_all(
                            &mut engine_instance(&engine, processor, state),
                            records,
                            keys,
                            &values,
                        )
                    })
                    .sum()
            })
        });
    }
    g.bench_function("restore/durable", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let started = Instant::now();
                let mut store = DiskState::open(dir.path(), DiskOptions::default()).unwrap();
                for n in 0..records as u64 {
                    store
                        .apply_changelog(
                            &key(n.wrapping_mul(2_654_435_761) % 1_000_000_007),
                            Some(&value(n)),
                            n as i64,
                        )
                        .unwrap();
                }
                store.flush().unwrap();
                total += started.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, candidates, engine_1m);
criterion_main!(benches);
