//! `partita run` with `guarantee = "exactly-once"` against librdkafka's
//! mock cluster in a child process (`mock-kafka`): Tansu has no
//! transactions.
//!
//! `count` with durable state reads numbers keyed over ten keys from two
//! partitions. Under exactly-once every input gets exactly one output (the
//! running counts of each key go 1, 2, 3, ... with no gap or repeat) and
//! the last output of each key has the true count and sum; each worker
//! used its own transactional producer. Under at-least-once the same run
//! commits its offsets through the consumer group, as before.
//!
//! A crash is tested on a broker with transactions instead
//! (`kafka_exactly_once_noida`): the mock cluster keeps no offsets
//! committed in a transaction and shows aborted records to
//! `read_committed` readers (docs/TESTING.md).

use std::path::Path;
use std::time::Duration;

use partita_tests::kafka::wait_until;
use partita_tests::mock::MockKafka;
use partita_tests::numbers::{assert_exact, count_pipeline, numbers, outputs_by_key, truth};
use partita_tests::partita::Partita;
use partita_tests::pipeline::Workspace;

const PARTITIONS: i32 = 2;

fn mock_kafka() -> MockKafka {
    MockKafka::start(
        Path::new(env!("CARGO_BIN_EXE_mock-kafka")),
        &[
            ("numbers", PARTITIONS),
            ("counts", PARTITIONS),
            ("g.count.changelog", PARTITIONS),
        ],
    )
    .unwrap()
}

/// The pipeline file, with `extra` lines in `[kafka]`.
fn pipeline(ws: &Workspace, bootstrap: &str, extra: &str) -> std::path::PathBuf {
    count_pipeline(ws, bootstrap, extra, "")
}

#[test]
fn exactly_once_count_gives_one_output_per_input_and_exact_totals() {
    let n = 2_000;
    let mock = mock_kafka();
    let kafka = mock.kafka();
    kafka.produce("numbers", numbers(0, n)).unwrap();
    let ws = Workspace::new().unwrap();
    let file = pipeline(&ws, mock.bootstrap(), "guarantee = \"exactly-once\"");
    let mut host = Partita::run("host", &file, &ws.log("host")).unwrap();
    wait_until(Duration::from_secs(120), "an output per input", || {
        host.assert_running()?;
        Ok(kafka.count("counts")? >= n as i64)
    })
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(40)));
    let status = host.stop(Duration::from_secs(30)).unwrap();
    let log = std::fs::read_to_string(ws.log("host")).unwrap();
    assert!(status.success(), "clean stop exited with {status}:\n{log}");

    assert_exact(&kafka, n);
    for p in 0..PARTITIONS {
        assert!(
            log.contains(&format!(
                "partition {p}: exactly-once, transactional id g.count.{p}"
            )),
            "no transactional producer for partition {p}:\n{log}"
        );
    }
}

#[test]
fn at_least_once_count_commits_offsets_through_the_group_as_before() {
    let n = 1_000;
    let mock = mock_kafka();
    let kafka = mock.kafka();
    let positions = kafka.produce("numbers", numbers(0, n)).unwrap();
    let ws = Workspace::new().unwrap();
    let file = pipeline(&ws, mock.bootstrap(), "");
    let mut host = Partita::run("host", &file, &ws.log("host")).unwrap();
    let mut ends = vec![0i64; PARTITIONS as usize];
    for p in &positions {
        ends[p.partition as usize] = ends[p.partition as usize].max(p.offset + 1);
    }
    wait_until(Duration::from_secs(120), "every input committed", || {
        host.assert_running()?;
        let committed: Vec<i64> = kafka
            .committed("g.count", "numbers")?
            .iter()
            .map(|c| c.unwrap_or(0))
            .collect();
        Ok(committed == ends)
    })
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(40)));
    let status = host.stop(Duration::from_secs(30)).unwrap();
    let log = std::fs::read_to_string(ws.log("host")).unwrap();
    assert!(status.success(), "clean stop exited with {status}:\n{log}");
    assert!(!log.contains("transactional id"), "{log}");
    let outputs = kafka.consume_all("counts").unwrap();
    assert_eq!(outputs.len(), n);
    let by_key = outputs_by_key(&outputs);
    for (key, totals) in truth(n) {
        assert_eq!(by_key[&key].last(), Some(&totals), "final totals of {key}");
    }
}
