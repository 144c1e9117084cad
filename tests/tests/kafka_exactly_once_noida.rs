//! Exactly-once proven on a broker that implements Kafka's transactions
//! (noida-db, docs/TESTING.md), which librdkafka's mock cluster does not:
//! `count` with durable state under `guarantee = "exactly-once"`, killed
//! with `kill -9` mid-stream and started again, ends with exactly one
//! output per input read `read_committed` (each key's running count goes
//! 1, 2, 3, ... with no gap and no repeat) and the true totals: nothing of
//! the killed host's open transaction is seen, and the new host resumes
//! from the offsets committed in its last transaction, with its state
//! rebuilt from the committed changelog. A host killed again and again
//! while records flow, some of them dead letters, ends the same way, with
//! exactly one dead letter per bad record.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use partita_tests::kafka::{Record, wait_until};
use partita_tests::mock::consume_committed;
use partita_tests::noida::Noida;
use partita_tests::numbers::{
    assert_exact, count_pipeline, count_pipeline_with, numbers, outputs_by_key, truth,
};
use partita_tests::partita::Partita;
use partita_tests::pipeline::Workspace;

const PARTITIONS: i32 = 2;

/// `count` from `numbers` to `counts` under exactly-once, as the static
/// member `host-a` of its group: a host started again with the same
/// instance id takes the place of the one it replaces at once (noida-db
/// does not expire a killed member, docs/TESTING.md).
fn pipeline(ws: &Workspace, bootstrap: &str) -> std::path::PathBuf {
    count_pipeline(
        ws,
        bootstrap,
        "guarantee = \"exactly-once\"",
        "\"group.instance.id\" = \"host-a\"",
    )
}

/// Waits until the committed outputs reach every input of `0..n`.
fn wait_complete(kafka: &partita_tests::kafka::Kafka, n: usize, host: &mut Partita) {
    let truth = truth(n);
    wait_until(
        Duration::from_secs(240),
        "every key's count to reach its input",
        || {
            host.assert_running()?;
            let by_key = outputs_by_key(&consume_committed(kafka, "counts")?);
            Ok(truth.iter().all(|(key, (count, _))| {
                by_key
                    .get(key)
                    .and_then(|s| s.iter().map(|(c, _)| *c).max())
                    .is_some_and(|c| c >= *count)
            }))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(60)));
}

/// noida-db with `count`'s topics, the first half of `n` numbers, and
/// host 1 running until it has committed 1,000 outputs.
fn first_half(n: usize) -> (Noida, Workspace, std::path::PathBuf, Partita) {
    let noida = Noida::start().unwrap();
    let kafka = noida.kafka();
    for topic in ["numbers", "counts", "g.count.changelog"] {
        kafka.create_topic(topic, PARTITIONS).unwrap();
    }
    kafka.produce("numbers", numbers(0, n / 2)).unwrap();
    let ws = Workspace::new().unwrap();
    let file = pipeline(&ws, &noida.bootstrap());
    let mut host = Partita::run("host 1", &file, &ws.log("host-1")).unwrap();
    wait_until(Duration::from_secs(120), "1,000 committed outputs", || {
        host.assert_running()?;
        Ok(consume_committed(&kafka, "counts")?.len() >= 1_000)
    })
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(40)));
    (noida, ws, file, host)
}

#[test]
fn a_host_killed_mid_stream_ends_with_exact_totals_and_one_output_per_input() {
    let n = 6_000;
    let (mut noida, ws, file, mut host) = first_half(n);
    let kafka = noida.kafka();
    host.kill9().unwrap();
    kafka.produce("numbers", numbers(n / 2, n)).unwrap();

    let mut host = Partita::run("host 2", &file, &ws.log("host-2")).unwrap();
    wait_complete(&kafka, n, &mut host);
    noida.assert_running().unwrap();
    let status = host.stop(Duration::from_secs(30)).unwrap();
    let log = std::fs::read_to_string(ws.log("host-2")).unwrap();
    assert!(status.success(), "clean stop exited with {status}:\n{log}");
    for p in 0..PARTITIONS {
        assert!(
            log.contains(&format!(
                "partition {p}: exactly-once, transactional id g.count.{p}"
            )),
            "host 2 did not take over g.count.{p}:\n{log}"
        );
    }
    // The killed host's stores were not closed cleanly: none is trusted,
    // and one it had written to disk may hold changes of a transaction
    // that never committed, so it is emptied and rebuilt from the
    // committed changelog.
    let restores: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("state restored"))
        .collect();
    assert_eq!(restores.len(), PARTITIONS as usize, "{log}");
    assert!(restores.iter().all(|l| l.contains("clean=false")), "{log}");

    assert_exact(&kafka, n);
}

#[test]
fn a_paused_host_is_fenced_by_its_replacement_and_writes_nothing_more() {
    let n = 6_000;
    let (noida, ws, file, mut zombie) = first_half(n);
    let kafka = noida.kafka();
    // Host 1 stops in its tracks (a long GC pause, a frozen VM): its
    // transaction stays open while a replacement takes its place.
    signal(&mut zombie, "STOP");
    kafka.produce("numbers", numbers(n / 2, n)).unwrap();
    let mut host = Partita::run("host 2", &file, &ws.log("host-2")).unwrap();
    wait_complete(&kafka, n, &mut host);
    // Host 1 wakes up fenced (its group membership and its transactional
    // producers taken over): it writes nothing more and stops by itself
    // with an error.
    signal(&mut zombie, "CONT");
    let mut status = None;
    wait_until(Duration::from_secs(60), "the fenced host to stop", || {
        status = zombie.child().try_exit()?;
        Ok(status.is_some())
    })
    .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", zombie.log_tail(40)));
    let status = status.unwrap();
    let log = std::fs::read_to_string(ws.log("host-1")).unwrap();
    assert!(!status.success(), "the fenced host exited cleanly:\n{log}");
    assert!(log.to_lowercase().contains("fenced"), "{log}");
    let status = host.stop(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "host 2: {status}\n{}", host.log_tail(40));
    assert_exact(&kafka, n);
}

#[test]
fn a_host_killed_again_and_again_while_records_flow_ends_exact_with_one_dead_letter_per_bad_record()
{
    const CHUNKS: usize = 80;
    const CHUNK: usize = 50;
    let n = CHUNKS * CHUNK;
    let mut noida = Noida::start().unwrap();
    let kafka = noida.kafka();
    for topic in ["numbers", "counts", "g.count.changelog", "numbers.dlq"] {
        kafka.create_topic(topic, PARTITIONS).unwrap();
    }
    let ws = Workspace::new().unwrap();
    let file = count_pipeline_with(
        &ws,
        &noida.bootstrap(),
        "guarantee = \"exactly-once\"",
        "\"group.instance.id\" = \"host-a\"",
        "on_error = \"dlq\"",
    );
    // Chunks of numbers, each followed by a record `count` rejects, every
    // 100 ms: about 8 s of records, through both kills.
    let producer = {
        let kafka = kafka.clone();
        thread::spawn(move || -> anyhow::Result<()> {
            for c in 0..CHUNKS {
                kafka.produce("numbers", numbers(c * CHUNK, (c + 1) * CHUNK))?;
                kafka.produce("numbers", [Record::new(&format!("bad{c}"), "twelve")])?;
                thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        })
    };
    let committed = || consume_committed(&kafka, "counts").map(|o| o.len());
    let mut host = Partita::run("host 1", &file, &ws.log("host-1")).unwrap();
    let mut seen = 0;
    for next in 2..=3 {
        // Each host is killed once it has committed 500 more outputs, with
        // a transaction most likely open.
        wait_until(
            Duration::from_secs(120),
            "500 more committed outputs",
            || {
                host.assert_running()?;
                Ok(committed()? >= seen + 500)
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}\nhost log:\n{}", host.log_tail(40)));
        host.kill9().unwrap();
        seen = committed().unwrap();
        let name = format!("host-{next}");
        host = Partita::run(&name, &file, &ws.log(&name)).unwrap();
    }
    producer.join().expect("producer thread").unwrap();
    wait_complete(&kafka, n, &mut host);
    noida.assert_running().unwrap();
    let status = host.stop(Duration::from_secs(30)).unwrap();
    assert!(
        status.success(),
        "clean stop: {status}\n{}",
        host.log_tail(40)
    );

    assert_exact(&kafka, n);
    let mut dead: BTreeMap<String, usize> = BTreeMap::new();
    for d in consume_committed(&kafka, "numbers.dlq").unwrap() {
        *dead.entry(d.key_str()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = (0..CHUNKS).map(|c| (format!("bad{c}"), 1)).collect();
    assert_eq!(dead, expected, "committed dead letters, by key");
    // The offsets also hold what the killed hosts' open transactions wrote
    // (hidden from read_committed readers) and the transaction markers.
    let offsets = |topic| kafka.count(topic).unwrap();
    eprintln!(
        "two kills: {n} outputs committed in {} offsets, {CHUNKS} dead letters in {}",
        offsets("counts"),
        offsets("numbers.dlq")
    );
}

fn signal(host: &mut Partita, name: &str) {
    let pid = host.child().pid().to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}
