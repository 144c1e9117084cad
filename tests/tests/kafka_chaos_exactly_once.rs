//! The chaos run under exactly-once, on noida-db (a broker that implements
//! transactions, docs/TESTING.md): three hosts share two stages over 12
//! partitions, `passthrough` and `count` (20,000 keys, durable state),
//! while records flow the whole time and hosts are killed with `kill -9`
//! or stopped cleanly and started again at random.
//!
//! Each host is a static member of its groups (`group.instance.id`), as
//! in a Kubernetes StatefulSet: noida-db never expires a killed member, so
//! a host comes back under its own name and takes its partitions back at
//! once. Neither a new host joining nor a broker restart is part of this
//! run: the first needs the group to move partitions away from a member
//! that is gone, the second loses everything on this memory-only broker.
//!
//! At the end, read `read_committed`: every input has exactly one
//! passthrough output, in each input partition's order, and every key's
//! running count goes 1, 2, 3, ... without a gap or a repeat and ends at
//! its true count and sum.
//!
//! In the suite it makes four disturbances, about 30 s in all;
//! `scripts/chaos.sh --exactly-once --minutes N` goes on for N more minutes
//! (`PARTITA_CHAOS_MINUTES`; `PARTITA_CHAOS_SEED` replays a run's choices).

use std::collections::{BTreeMap, HashSet};
use std::thread;
use std::time::{Duration, Instant};

use partita_tests::chaos::{self, Flow, Random};
use partita_tests::kafka::{Consumed, wait_until};
use partita_tests::mock::consume_committed;
use partita_tests::noida::Noida;
use partita_tests::numbers::outputs_by_key;
use partita_tests::partita::Partita;
use partita_tests::pipeline::{
    Inputs, Workspace, account, id_of_value, pipeline_toml, toml_path, wait_caught_up,
};
use partita_tests::wasm::component;

const PARTITIONS: i32 = 12;
/// Keys of `count`: record `i` has key `k{i % KEYS}`. Fewer than in the
/// at-least-once run, so that in a run this short each key is counted
/// several times and a wrong restore shows in its running count.
const KEYS: u64 = 20_000;
/// Records produced every 100 ms while the run lasts.
const CHUNK: u64 = 500;
/// Disturbances at least, each followed by this long of records flowing.
const DISTURBANCES: usize = 4;
const BETWEEN: Duration = Duration::from_secs(5);
const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

#[test]
fn hosts_killed_and_stopped_at_random_under_exactly_once_leave_exact_outputs() {
    let (minutes, seed) = chaos::settings();
    println!("chaos, exactly-once: seed {seed} (PARTITA_CHAOS_SEED={seed} replays the choices)");
    let mut random = Random::new(seed);

    let mut noida = Noida::start().unwrap();
    let kafka = noida.kafka();
    for topic in ["in", "in.out", "counts", "g.count.changelog"] {
        kafka.create_topic(topic, PARTITIONS).unwrap();
    }
    kafka.create_topic("in.dlq", 1).unwrap();
    let (pass, count) = (component("passthrough"), component("count"));
    let ws = Workspace::new().unwrap();
    // One pipeline file per host: its own state folder and member name.
    let files: Vec<_> = HOSTS
        .iter()
        .map(|name| {
            let kafka_extra = format!(
                "commit_interval_ms = 200\nguarantee = \"exactly-once\"\n\n[kafka.consumer]\n\
                 \"session.timeout.ms\" = 6000\n\"heartbeat.interval.ms\" = 1000\n\
                 \"group.instance.id\" = \"{name}\"\n"
            );
            let text = pipeline_toml(
                &noida.bootstrap(),
                "g",
                &kafka_extra,
                &chaos::stages(&pass, &count),
            );
            let state = toml_path(&ws.path().join(format!("state-{name}")));
            ws.write(
                &format!("{name}.toml"),
                &format!("{text}\n[state]\ndir = {state}\n"),
            )
            .unwrap()
        })
        .collect();
    // Each host's log files, one per start.
    let mut logs: Vec<Vec<std::path::PathBuf>> = vec![Vec::new(); HOSTS.len()];
    let mut started = 0;
    let mut start = |i: usize| {
        started += 1;
        let log = ws.log(&format!("{}-{started}", HOSTS[i]));
        logs[i].push(log.clone());
        Partita::run(HOSTS[i], &files[i], &log).unwrap()
    };
    let mut hosts: Vec<Partita> = (0..HOSTS.len()).map(&mut start).collect();
    let tails = |hosts: &[Partita]| {
        hosts
            .iter()
            .zip(HOSTS)
            .map(|(h, name)| format!("--- {name}:\n{}", h.log_tail(30)))
            .collect::<Vec<_>>()
            .join("\n")
    };

    let flow = Flow::start(&kafka, "in", KEYS, CHUNK);
    wait_until(Duration::from_secs(120), "the first 2,000 outputs", || {
        for h in &mut hosts {
            h.assert_running()?;
        }
        Ok(kafka.count("in.out")? >= 2_000 && kafka.count("counts")? >= 2_000)
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tails(&hosts)));

    let mut done = Vec::new();
    let until = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    while done.len() < DISTURBANCES || Instant::now() < until {
        let i = random.below(HOSTS.len());
        let what = if random.below(3) == 0 {
            let status = hosts[i].stop(Duration::from_secs(60)).unwrap();
            assert!(
                status.success(),
                "{}: {status}\n{}",
                HOSTS[i],
                hosts[i].log_tail(40)
            );
            format!("stop {} cleanly, restarted", HOSTS[i])
        } else {
            hosts[i].kill9().unwrap();
            format!("kill -9 {}, restarted", HOSTS[i])
        };
        hosts[i] = start(i);
        println!("chaos, exactly-once: {what}");
        done.push(what);
        thread::sleep(BETWEEN);
        for h in &mut hosts {
            h.assert_running()
                .unwrap_or_else(|e| panic!("after `{}`: {e:#}", done.join("`, `")));
        }
    }
    let produced = flow.stop().unwrap();
    wait_caught_up(
        &kafka,
        &[("g.pass", "in"), ("g.count", "in")],
        Duration::from_secs(300),
        || {
            for h in &mut hosts {
                h.assert_running()?;
            }
            noida.assert_running()
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", tails(&hosts)));
    for (h, name) in hosts.iter_mut().zip(HOSTS) {
        let status = h.stop(Duration::from_secs(60)).unwrap();
        assert!(status.success(), "{name}: {status}\n{}", h.log_tail(40));
    }

    // The hosts shared the partitions: each took some of count's, each
    // through its partition's own transactional producer.
    let mut taken = BTreeMap::new();
    for (name, files) in HOSTS.iter().zip(&logs) {
        let text: String = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .collect();
        let partitions: Vec<i32> = (0..PARTITIONS)
            .filter(|p| {
                text.contains(&format!(
                    "partition {p}: exactly-once, transactional id g.count.{p}"
                ))
            })
            .collect();
        assert!(!partitions.is_empty(), "{name} took no partition of count");
        taken.insert(*name, partitions);
    }

    // Exactly one passthrough output per input, in order.
    let id_of = |c: &Consumed| c.value.as_deref().and_then(id_of_value);
    let stored = kafka.consume_all("in").unwrap();
    let (inputs, copies) = Inputs::from_topic(&stored, id_of);
    assert_eq!(copies, 0, "the producer stored no input twice");
    let expected: HashSet<u64> = (0..produced).collect();
    let outputs = consume_committed(&kafka, "in.out").unwrap();
    let report = account(&inputs, &expected, &outputs, id_of);
    assert!(report.complete(), "passthrough: {report}");
    assert_eq!(report.duplicate_count(), 0, "passthrough: {report}");

    // Every key's running count exact.
    let mut truth: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for i in 0..produced {
        let t = truth.entry(format!("k{}", i % KEYS)).or_default();
        t.0 += 1;
        t.1 += i;
    }
    let counts = consume_committed(&kafka, "counts").unwrap();
    assert_eq!(
        counts.len() as u64,
        produced,
        "one committed count per input"
    );
    let by_key = outputs_by_key(&counts);
    for (key, (n, sum)) in &truth {
        let seq = &by_key[key];
        let seen: Vec<u64> = seq.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            seen,
            (1..=*n).collect::<Vec<u64>>(),
            "running counts of {key}"
        );
        assert_eq!(seq.last(), Some(&(*n, *sum)), "final totals of {key}");
    }
    println!(
        "chaos, exactly-once: {} disturbances ({}); {produced} records, {} keys: every \
         input once in passthrough, every count exact; count's partitions taken: {taken:?}",
        done.len(),
        done.join(", "),
        truth.len()
    );
}
