//! Partita's engine against a peer, Fluvio's SmartModule engine
//! (`fluvio-smartengine` 0.50.1, wasmtime-based), on the same records in
//! the same process.
//!
//! ```text
//! partita-peer-fluvio --components DIR --modules DIR [--records N] [--rounds R] [--json FILE]
//! ```
//!
//! Two maps, each written for both engines in Rust: the identity (Partita's
//! `passthrough`, a SmartModule returning key and value), and the
//! extraction of a JSON field (`json-field` in both: parse the value as a
//! JSON object with serde_json and keep its field `name`). N records
//! (default 200,000) with a 16-byte key and a 100-byte value go through
//! each engine in batches of 512, R rounds (default 5), alternating
//! engines; the median round counts.
//!
//! Both start from the same owned records and end by walking the outputs.
//! Partita encodes each batch from borrowed records and walks borrowed
//! output views; Fluvio takes owned `Record`s (one copy of key and value
//! per record, as its API requires) and returns owned ones. Fluvio 0.50.1
//! keeps every output buffer of a chain (its memory grows call after
//! call), so each round builds a new chain, outside the timing; Partita's
//! instance is also built outside the timing.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use fluvio_smartengine::{
    DEFAULT_SMARTENGINE_VERSION, SmartEngine, SmartModuleChainBuilder, SmartModuleConfig,
};
use fluvio_smartmodule::Record;
use fluvio_smartmodule::dataplane::smartmodule::SmartModuleInput;
use partita::engine::{Engine, EngineConfig, Instance, InstanceSetup, Limits, RecordOutcome};
use partita_wire::BatchWriter;

/// Records per call, for both engines.
const BATCH: usize = 512;

/// One case: a map written for both engines.
struct Case {
    name: &'static str,
    /// Partita component, in the components folder.
    component: &'static str,
    /// Fluvio SmartModule, in the modules folder.
    module: &'static str,
    /// The value of record `i`, 100 bytes.
    value: fn(usize) -> Vec<u8>,
}

const CASES: [Case; 2] = [
    Case {
        name: "identity",
        component: "passthrough.wasm",
        module: "peer_identity.wasm",
        value: plain_value,
    },
    Case {
        name: "json-field",
        component: "json_field.wasm",
        module: "peer_json_field.wasm",
        value: json_value,
    },
];

fn plain_value(i: usize) -> Vec<u8> {
    format!("{i:0100}").into_bytes()
}

fn json_value(i: usize) -> Vec<u8> {
    let mut v = format!(
        r#"{{"id":{i},"name":"customer-{i:06}","amount":{}.25,"pad":""#,
        i % 1000
    );
    while v.len() < 98 {
        v.push('x');
    }
    v.push_str("\"}");
    v.into_bytes()
}

struct Args {
    components: PathBuf,
    modules: PathBuf,
    records: usize,
    rounds: usize,
    json: Option<PathBuf>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        components: PathBuf::new(),
        modules: PathBuf::new(),
        records: 200_000,
        rounds: 5,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--components" => a.components = value()?.into(),
            "--modules" => a.modules = value()?.into(),
            "--records" => a.records = value()?.parse().context("--records")?,
            "--rounds" => a.rounds = value()?.parse().context("--rounds")?,
            "--json" => a.json = Some(value()?.into()),
            _ => bail!(
                "unknown argument {flag}\nusage: partita-peer-fluvio --components DIR --modules DIR \
                 [--records N] [--rounds R] [--json FILE]"
            ),
        }
    }
    ensure!(
        !a.components.as_os_str().is_empty() && !a.modules.as_os_str().is_empty(),
        "--components and --modules are required"
    );
    ensure!(
        a.records > 0 && a.rounds > 0,
        "--records and --rounds must be above 0"
    );
    Ok(a)
}

/// Records as a Kafka client hands them over.
struct Owned {
    key: Vec<u8>,
    value: Vec<u8>,
}

fn records(case: &Case, n: usize) -> Vec<Owned> {
    (0..n)
        .map(|i| Owned {
            key: format!("key-{i:012}").into_bytes(),
            value: (case.value)(i),
        })
        .collect()
}

fn partita_instance(engine: &Engine, path: &Path) -> anyhow::Result<Instance> {
    let processor = engine.load(path)?;
    let setup = InstanceSetup::standalone("peer", &[], Limits::default());
    Ok(processor.instantiate(setup)?)
}

/// One round through Partita; the outputs' value bytes, to compare.
fn partita_round(instance: &mut Instance, records: &[Owned]) -> anyhow::Result<(Duration, usize)> {
    let mut batch = BatchWriter::new(&["in"]);
    let mut bytes = 0;
    let started = Instant::now();
    for (b, chunk) in records.chunks(BATCH).enumerate() {
        batch.clear();
        for (i, r) in chunk.iter().enumerate() {
            let offset = (b * BATCH + i) as i64;
            batch.push(
                0,
                0,
                offset,
                0,
                Some(&r.key),
                Some(&r.value),
                std::iter::empty(),
            );
        }
        let outcome = instance.process(&batch);
        for ((record, result), input) in outcome.iter().zip(chunk) {
            match result {
                RecordOutcome::Ok(outputs) => {
                    for o in outputs.iter() {
                        let value = o.value.or_input(Some(&input.value));
                        bytes += black_box(value.map_or(0, <[u8]>::len));
                    }
                }
                other => bail!("Partita: record {} failed: {other:?}", record.offset),
            }
        }
    }
    Ok((started.elapsed(), bytes))
}

/// One round through a new Fluvio chain; the outputs' value bytes.
fn fluvio_round(
    engine: &SmartEngine,
    module: &[u8],
    records: &[Owned],
) -> anyhow::Result<(Duration, usize)> {
    let mut builder = SmartModuleChainBuilder::default();
    let config = SmartModuleConfig::builder()
        .smartmodule_names(&["peer".to_string()])
        .build()?;
    builder.add_smart_module(config, module.to_vec());
    let mut chain = builder.initialize(engine)?;
    let mut bytes = 0;
    let started = Instant::now();
    for chunk in records.chunks(BATCH) {
        let input: Vec<Record> = chunk
            .iter()
            .map(|r| Record::new_key_value(r.key.clone(), r.value.clone()))
            .collect();
        let input = SmartModuleInput::try_from_records(input, DEFAULT_SMARTENGINE_VERSION)?;
        let output = chain.process(input)?;
        if let Some(e) = output.error {
            bail!("Fluvio: {e:?}");
        }
        ensure!(
            output.successes.len() == chunk.len(),
            "Fluvio returned {} of {} records",
            output.successes.len(),
            chunk.len()
        );
        for r in &output.successes {
            bytes += black_box(r.value().len());
        }
    }
    Ok((started.elapsed(), bytes))
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let cache = tempfile::tempdir()?;
    let partita = Engine::new(EngineConfig {
        cache_dir: Some(cache.path().into()),
        epoch_tick: Duration::from_millis(10),
    })?;
    let fluvio = SmartEngine::new();
    println!(
        "{:<12} {:>16} {:>16} {:>14} {:>14} {:>15}",
        "map", "Partita ns/rec", "Fluvio ns/rec", "Partita rec/s", "Fluvio rec/s", "Partita/Fluvio"
    );
    let mut rows = Vec::new();
    for case in &CASES {
        let records = records(case, args.records);
        let component = args.components.join(case.component);
        let module_path = args.modules.join(case.module);
        let module = std::fs::read(&module_path)
            .with_context(|| format!("cannot read {}", module_path.display()))?;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            let mut instance = partita_instance(&partita, &component)
                .with_context(|| format!("cannot start {}", component.display()))?;
            let (t, ours_bytes) = partita_round(&mut instance, &records)?;
            ours.push(t);
            let (t, their_bytes) = fluvio_round(&fluvio, &module, &records)?;
            theirs.push(t);
            ensure!(
                ours_bytes == their_bytes,
                "{}: the engines' outputs differ ({ours_bytes} and {their_bytes} value bytes)",
                case.name
            );
        }
        let per_record = |d: Duration| d.as_secs_f64() * 1e9 / args.records as f64;
        let (ours, theirs) = (per_record(median(ours)), per_record(median(theirs)));
        println!(
            "{:<12} {:>16.1} {:>16.1} {:>14.0} {:>14.0} {:>15.1}",
            case.name,
            ours,
            theirs,
            1e9 / ours,
            1e9 / theirs,
            theirs / ours
        );
        rows.push(serde_json::json!({
            "map": case.name,
            "partita_ns_per_record": ours,
            "fluvio_ns_per_record": theirs,
            "ratio": theirs / ours,
        }));
    }
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "records": args.records,
            "rounds": args.rounds,
            "batch": BATCH,
            "value_bytes": 100,
            "peer": "fluvio-smartengine 0.50.1",
            "cases": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
