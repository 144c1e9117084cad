//! Hot reload end to end: `partita run` on a real broker (Tansu, started
//! here) with records flowing, its processor file replaced every second,
//! alternating between two versions of the same code so that both are in
//! the compiled cache after the first two swaps.
//!
//! From the host's log it prints, over the swaps after the first two:
//! the pause of each partition (`Instance::replace_processor` as the worker
//! timed it, debug log) and the time from the file change to the new
//! version live on all partitions (info log); p50, p99 and max.
//!
//! Run with a release build of the binary:
//! `cargo build --release -p partita && PARTITA_BIN=$PWD/target/release/partita
//! cargo bench -p partita-tests --bench reload_e2e`. Results in
//! docs/BENCHMARKS.md (Hot reload).

use std::time::Duration;

use partita_tests::broker::Broker;
use partita_tests::partita::Partita;
use partita_tests::pipeline::{Stage, Workspace, pipeline_toml};
use partita_tests::wasm::component;

#[path = "../tests/reload_common.rs"]
#[allow(dead_code)]
mod common;

use common::{Flow, replace, variant, version_of};

const PARTITIONS: i32 = 8;
const SWAPS: usize = 22;
/// Swaps left out of the figures: the two that compile a new version.
const WARM_UP: usize = 2;

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn show(what: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    println!(
        "{what:<34} n {:4}   p50 {:8.3} ms   p99 {:8.3} ms   max {:8.3} ms",
        values.len(),
        percentile(&values, 0.5),
        percentile(&values, 0.99),
        values[values.len() - 1]
    );
}

/// The number before `unit` that follows `after` in `line`.
fn number_after(line: &str, after: &str, unit: &str) -> Option<f64> {
    let rest = line.split(after).nth(1)?;
    rest.split(unit).next()?.trim().parse().ok()
}

fn main() {
    let v2 = std::fs::read(component("tag-v2")).unwrap();
    let versions = [variant(&v2, 1), variant(&v2, 2)];
    let broker = Broker::start().unwrap();
    let kafka = broker.kafka();
    kafka.create_topic("in", PARTITIONS).unwrap();
    kafka.create_topic("out", PARTITIONS).unwrap();
    kafka.create_topic("in.dlq", 1).unwrap();
    let ws = Workspace::new().unwrap();
    let processor = ws.path().join("stage.wasm");
    std::fs::write(&processor, std::fs::read(component("tag-v1")).unwrap()).unwrap();
    let text = pipeline_toml(
        &broker.bootstrap(),
        "bench",
        "commit_interval_ms = 200",
        &[Stage {
            name: "tag",
            processor: &processor,
            input: "in",
            outputs: &[("default", "out")],
            extra: "",
        }],
    );
    let file = ws.write("pipeline.toml", &text).unwrap();
    let log = ws.log("host");
    let args = [
        "run",
        file.to_str().unwrap(),
        "--log",
        "info,partita::pipeline::reload=debug",
    ];
    let mut host = Partita::start("host", &args, &log).unwrap();
    // About 5,000 records/s for the whole run.
    let total = 5_000 * (SWAPS as u64 + 4);
    let flow = Flow::start(&kafka, "in", total, 256, Duration::from_millis(200));
    flow.wait_produced(5_000);
    for i in 0..SWAPS {
        let bytes = &versions[i % 2];
        replace(&processor, bytes);
        let needle = format!("-> {} live on all", version_of(bytes));
        let mut waited = Duration::ZERO;
        loop {
            host.assert_running().unwrap();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.matches(&needle).count() > i / 2 {
                break;
            }
            assert!(waited < Duration::from_secs(60), "swap {i} not live");
            std::thread::sleep(Duration::from_millis(20));
            waited += Duration::from_millis(20);
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    drop(flow);
    host.stop(Duration::from_secs(30)).unwrap();

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Each swap's lines come after its "swapping processor" line.
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("swapping processor"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), SWAPS, "one swap per write");
    let measured = &lines[starts[WARM_UP]..];
    let pauses: Vec<f64> = measured
        .iter()
        .filter(|l| {
            l.contains("DEBUG") && l.contains("partita::pipeline::reload") && l.contains(" -> ")
        })
        .filter_map(|l| number_after(l, " in ", " ms"))
        .collect();
    let live: Vec<f64> = measured
        .iter()
        .filter(|l| l.contains(" live on all "))
        .filter_map(|l| number_after(l, " partitions ", " ms"))
        .collect();
    println!(
        "{PARTITIONS} partitions, {} swaps measured (of {SWAPS}), records flowing",
        SWAPS - WARM_UP
    );
    show("pause of a partition (swap)", pauses);
    show("file change -> live on all", live);
}
