//! Partita embedded in another program: a two-stage pipeline built in code
//! from component bytes (legacy CSV orders parsed to JSON, then a running
//! count and sum per customer), run against a broker until a deadline,
//! then its state and metrics read from code. Once the first orders are
//! parsed, the parsing stage is hot-swapped from code for another
//! component (`ReloadTrigger::swap`), its records neither lost nor
//! repeated.
//!
//! ```sh
//! cargo run -p partita --example embed -- BOOTSTRAP COMPONENTS_DIR SECONDS
//! ```
//!
//! It reads topic `embed.orders` (CSV lines `id,customer,amount`, keyed by
//! customer) and writes `embed.json` and `embed.totals`, creating missing
//! topics. `COMPONENTS_DIR` holds `csv_to_json.wasm`,
//! `csv_to_json_round_to_cents.wasm` and `count.wasm`
//! (`scripts/build-wasm.sh` writes them to `target/wasm/components`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use partita::config::{KafkaConfig, Pipeline, ProcessorSource, Stage, StateConfig};
use partita::metrics::Metrics;
use partita::pipeline::reload::ReloadTrigger;
use partita::pipeline::{self, RunOptions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, components, seconds] = args.as_slice() else {
        anyhow::bail!("usage: embed BOOTSTRAP COMPONENTS_DIR SECONDS");
    };
    let components = PathBuf::from(components);
    let seconds: u64 = seconds.parse()?;
    let read = |file: &str| -> anyhow::Result<Vec<u8>> {
        std::fs::read(components.join(file))
            .map_err(|e| anyhow::anyhow!("{}: {e}", components.join(file).display()))
    };
    let component = |file: &str| -> anyhow::Result<ProcessorSource> {
        Ok(ProcessorSource::bytes(file, read(file)?))
    };
    let fixed = read("csv_to_json_round_to_cents.wasm")?;

    let mut kafka = KafkaConfig::new(bootstrap.as_str(), "embed");
    kafka.create_topics = true;
    kafka.commit_interval = Duration::from_millis(200);
    let state_dir = std::env::temp_dir().join(format!("partita-embed-{}", std::process::id()));
    let pipeline = Pipeline::builder(kafka)
        .state(StateConfig {
            dir: state_dir.clone(),
            ..StateConfig::default()
        })
        .stage(
            Stage::new("parse")
                .processor(component("csv_to_json.wasm")?)
                .input("embed.orders")
                .output("default", "embed.json")
                .config("columns", "id,customer,amount")
                .config("numeric", "amount"),
        )
        .stage(
            Stage::new("totals")
                .processor(component("count.wasm")?)
                .input("embed.json")
                .output("default", "embed.totals")
                .config("field", "amount"),
        )
        .build()?;

    let metrics = Arc::new(Metrics::default());
    let trigger = ReloadTrigger::new();
    let options = RunOptions {
        metrics: Some(metrics.clone()),
        // Swaps processors from code (and reloads files, as SIGHUP does).
        reload: trigger.clone(),
        // The processors come from bytes: no files to watch.
        watch_files: false,
        ..RunOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let (watched, swapped) = (metrics.clone(), metrics.clone());
    runtime.block_on(async move {
        // What a running pipeline looks like from code, once a second.
        let report = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                for (stage, t) in watched.totals() {
                    eprintln!(
                        "{stage}: version {}, {} in, {} out, owns partitions {:?}",
                        t.version,
                        t.records_in,
                        t.records_out,
                        watched.owned_partitions(&stage)
                    );
                }
            }
        });
        // Once the first orders are parsed, swap the parsing stage's
        // processor; the workers take it at their next batch boundary.
        let swap = tokio::spawn(async move {
            let parsed = || {
                let totals = swapped.totals();
                totals.iter().any(|(s, t)| s == "parse" && t.records_in > 0)
            };
            while !parsed() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match trigger
                .swap("parse", "csv_to_json_round_to_cents.wasm", fixed)
                .await
            {
                Ok(version) => eprintln!("parse: swapped to version {version}"),
                Err(e) => eprintln!("parse: not swapped: {e}"),
            }
        });
        let result = pipeline::run(
            pipeline,
            options,
            tokio::time::sleep(Duration::from_secs(seconds)),
        )
        .await;
        report.abort();
        swap.abort();
        result
    })?;
    for (stage, t) in metrics.totals() {
        println!(
            "{stage}: {} records in, {} out, version {}",
            t.records_in, t.records_out, t.version
        );
    }
    let _ = std::fs::remove_dir_all(state_dir);
    Ok(())
}
