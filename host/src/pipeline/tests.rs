//! Tests of the Kafka machinery of a run against librdkafka's in-process
//! mock cluster, with a native stand-in for the processor (so that they
//! test the workers, commits, dead letters and rebalances, not the
//! engine), plus a run of real components through [`run`].
//!
//! The broker tests (tests/) run the `partita` binary against a real
//! broker; these are the quick ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use partita_wire::{Batch, BatchWriter, OutputSpec, RecordRef, ResultWriter, Results};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::oneshot;

mod timers;

use super::runner::{BatchRunner, RunnerFactory};
use super::*;
use crate::config::{BatchLimits, OnError, StageLocations};
use crate::engine::{Limits, ProcessError, RecordOutcome};
use crate::metrics::Metrics;

/// A native processor: value `reject` is rejected, `trap` fails with a
/// trap, anything else goes to output 0 as `VALUE!` (key, headers and
/// timestamp kept) and, when `copy` is an output, to output 1 unchanged.
struct Fake {
    outputs: Vec<String>,
}

const TRAP: &str = "trapped: unreachable";

impl BatchRunner for Fake {
    fn outputs(&self) -> &[String] {
        &self.outputs
    }

    fn version(&self) -> &str {
        "fakeversion1"
    }

    fn run(&mut self, batch: &BatchWriter, each: &mut dyn FnMut(RecordRef<'_>, RecordOutcome<'_>)) {
        let parsed = Batch::parse(batch.as_bytes()).unwrap();
        let records: Vec<RecordRef<'_>> = parsed.records().map(|r| r.unwrap()).collect();
        let mut w = ResultWriter::default();
        let mut values = Vec::new();
        for r in &records {
            let mut v = r.value.unwrap_or_default().to_vec();
            v.push(b'!');
            values.push(v);
        }
        for (r, v) in records.iter().zip(&values) {
            w.begin();
            match r.value {
                Some(b"reject") => w.reject("rejected on request"),
                _ => {
                    w.output(&OutputSpec {
                        output: 0,
                        value: Some(Some(v)),
                        ..OutputSpec::default()
                    });
                    if self.outputs.len() > 1 {
                        w.output(&OutputSpec {
                            output: 1,
                            ..OutputSpec::default()
                        });
                    }
                }
            }
        }
        let buf = w.finish();
        let results = Results::parse(&buf, records.len(), self.outputs.len() as u32).unwrap();
        let trap = ProcessError::Trap("unreachable".into());
        for (r, result) in records.into_iter().zip(results.iter()) {
            let outcome = match (r.value, result) {
                (Some(b"trap"), _) => RecordOutcome::Failed(&trap),
                (_, partita_wire::RecordResult::Ok(o)) => RecordOutcome::Ok(o),
                (_, partita_wire::RecordResult::Rejected(reason)) => {
                    RecordOutcome::Rejected(reason)
                }
            };
            each(r, outcome);
        }
    }
}

struct FakeRunners {
    outputs: Vec<String>,
}

impl RunnerFactory for FakeRunners {
    fn version(&self) -> String {
        "fakeversion1".into()
    }

    fn start(&self, _partition: i32) -> anyhow::Result<Box<dyn BatchRunner>> {
        Ok(Box::new(Fake {
            outputs: self.outputs.clone(),
        }))
    }
}

fn kafka(bootstrap: String, group: &str) -> KafkaConfig {
    KafkaConfig {
        // Often, so that tests see the lag gauge soon.
        lag_interval: Duration::from_millis(200),
        commit_interval: Duration::from_millis(100),
        ..KafkaConfig::new(bootstrap, group)
    }
}

fn stage(name: &str, input: &str, outputs: &[(&str, &str)], on_error: OnError) -> StageConfig {
    StageConfig {
        name: name.into(),
        processor: "fake.wasm".into(),
        candidate: None,
        inputs: vec![input.into()],
        outputs: outputs
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
        config: vec![],
        tables: vec![],
        timer_interval: crate::config::DEFAULT_TIMER_INTERVAL,
        on_error,
        limits: Limits {
            memory_bytes: 1 << 20,
            deadline: Duration::from_secs(1),
            ..Limits::default()
        },
        batch: BatchLimits {
            max_records: 7,
            max_bytes: 1 << 20,
            max_wait: Duration::from_millis(5),
        },
        reload: Default::default(),
        at: StageLocations::default(),
    }
}

fn fake(stage: StageConfig) -> (StageConfig, Arc<dyn RunnerFactory>) {
    let outputs = stage.outputs.iter().map(|(n, _)| n.clone()).collect();
    (stage, Arc::new(FakeRunners { outputs }))
}

/// Produces `values[i]` with key `k{i}`, header `n = i` and timestamp
/// `1000 + i`, to partition `i % partitions`.
fn produce(bootstrap: &str, topic: &str, partitions: i32, values: &[String]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for (i, v) in values.iter().enumerate() {
        let key = format!("k{i}");
        let n = i.to_string();
        let headers = OwnedHeaders::new().insert(Header {
            key: "n",
            value: Some(&n),
        });
        let r = BaseRecord::<str, str>::to(topic)
            .partition(i as i32 % partitions)
            .key(&key)
            .payload(v)
            .headers(headers)
            .timestamp(1000 + i as i64);
        producer.send(r).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// One consumed record.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    partition: i32,
    key: String,
    value: String,
    headers: Vec<(String, String)>,
    timestamp: Option<i64>,
}

/// Reads `count` records of `topic` (all partitions, from the start),
/// failing after 60 s.
fn consume(bootstrap: &str, topic: &str, partitions: i32, count: usize) -> Vec<Got> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let mut out = Vec::new();
    while out.len() < count {
        assert!(
            Instant::now() < end,
            "only {} of {count} records on {topic}: {out:?}",
            out.len()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let text =
                |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), text(h.value)))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Got {
                partition: m.partition(),
                key: text(m.key()),
                value: text(m.payload()),
                headers,
                timestamp: m.timestamp().to_millis(),
            });
        }
    }
    out
}

/// The high watermarks of `topic`'s partitions.
pub(crate) fn high_watermarks(bootstrap: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .collect()
}

/// The committed offsets of `group` on `topic`'s partitions.
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let c = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    c.elements()
        .iter()
        .map(|e| e.offset().to_raw().unwrap_or(-1))
        .collect()
}

/// Waits (60 s at most) until `check` holds.
pub(crate) fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A run of `stages` in the background, stopped by [`Running::stop`].
pub(crate) struct Running {
    stop: Option<oneshot::Sender<()>>,
    done: std::thread::JoinHandle<Result<(), RunError>>,
    pub(crate) metrics: Arc<Metrics>,
}

impl Running {
    pub(crate) fn start(
        kafka: KafkaConfig,
        stages: Vec<(StageConfig, Arc<dyn RunnerFactory>)>,
    ) -> Running {
        let (tx, rx) = oneshot::channel();
        let metrics = Metrics::new();
        let m = metrics.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(run_stages(
                &kafka,
                stages,
                m,
                Duration::from_secs(60),
                async {
                    let _ = rx.await;
                },
            ))
        });
        Running {
            stop: Some(tx),
            done,
            metrics,
        }
    }

    pub(crate) fn stop(mut self) -> Result<(), RunError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.done.join().unwrap()
    }

    /// Waits for the run to end by itself.
    pub(crate) fn wait(self) -> Result<(), RunError> {
        let end = Instant::now() + Duration::from_secs(60);
        while !self.done.is_finished() {
            assert!(Instant::now() < end, "the run did not stop by itself");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.done.join().unwrap()
    }

    /// The sum of metric `name` over the series of `stage`.
    fn counter(&self, name: &str, stage: &str) -> u64 {
        let text = self.metrics.render();
        let prefix = format!("{name}{{stage=\"{stage}\"");
        text.lines()
            .filter(|l| {
                l.strip_prefix(&prefix)
                    .is_some_and(|rest| rest.starts_with([',', '}']))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

fn values(n: usize, poison: impl Fn(usize) -> Option<&'static str>) -> Vec<String> {
    (0..n)
        .map(|i| poison(i).map_or_else(|| format!("v{i}"), str::to_string))
        .collect()
}

#[test]
fn records_flow_in_order_with_key_headers_and_timestamp_kept_and_are_committed() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    cluster.create_topic("in", 3, 1).unwrap();
    cluster.create_topic("out", 3, 1).unwrap();
    let n = 300;
    produce(&bs, "in", 3, &values(n, |_| None));
    let run = Running::start(
        kafka(bs.clone(), "g"),
        vec![fake(stage("s", "in", &[("default", "out")], OnError::Stop))],
    );
    let got = consume(&bs, "out", 3, n);
    wait_for("commits", || {
        committed(&bs, "g.s", "in", 3) == [100, 100, 100]
    });
    wait_for("the lag gauge", || {
        let text = run.metrics.render();
        (0..3).all(|p| {
            text.contains(&format!(
                "partita_consumer_lag{{stage=\"s\",topic=\"in\",partition=\"{p}\",owned=\"true\"}} 0\n"
            ))
        })
    });
    assert_eq!(run.counter("partita_records_in_total", "s"), n as u64);
    assert_eq!(run.counter("partita_records_out_total", "s"), n as u64);
    run.stop().unwrap();

    // Every record once, with its key, headers and timestamp.
    let mut by_key: HashMap<String, Got> = HashMap::new();
    for g in &got {
        assert!(
            by_key.insert(g.key.clone(), g.clone()).is_none(),
            "duplicate {g:?}"
        );
    }
    for i in 0..n {
        let g = &by_key[&format!("k{i}")];
        assert_eq!(g.value, format!("v{i}!"));
        assert_eq!(g.headers, [("n".to_string(), i.to_string())]);
        assert_eq!(g.timestamp, Some(1000 + i as i64));
    }
    // Records of one input partition that land in one output partition
    // keep their input order.
    let mut order: BTreeMap<(i64, i32), Vec<i64>> = BTreeMap::new();
    for g in &got {
        let i = g.timestamp.unwrap() - 1000;
        order.entry((i % 3, g.partition)).or_default().push(i);
    }
    for ((input, output), seq) in order {
        let mut sorted = seq.clone();
        sorted.sort_unstable();
        assert_eq!(
            seq, sorted,
            "input partition {input} into output partition {output} out of order"
        );
    }
}

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[test]
fn many_partitions_take_turns_on_a_thread_per_core() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    let partitions = 48;
    cluster.create_topic("wide", partitions, 1).unwrap();
    cluster.create_topic("wide.out", partitions, 1).unwrap();
    let n = 960;
    produce(&bs, "wide", partitions, &values(n, |_| None));
    let run = Running::start(
        kafka(bs.clone(), "g"),
        vec![fake(stage(
            "wide",
            "wide",
            &[("default", "wide.out")],
            OnError::Stop,
        ))],
    );
    let got = consume(&bs, "wide.out", partitions, n);
    assert_eq!(got.len(), n);
    wait_for("every partition committed", || {
        committed(&bs, "g.wide", "wide", partitions) == vec![20; partitions as usize]
    });
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    assert!(
        threads_named("wide-w") <= cores,
        "{}",
        threads_named("wide-w")
    );
    assert!(threads_named("wide-start") <= super::pool::STARTERS);
    let per_partition = (0..partitions)
        .map(|p| threads_named(&format!("wide-{p}\n")))
        .sum::<usize>();
    assert_eq!(per_partition, 0, "no thread per partition");
    run.stop().unwrap();
}

#[test]
fn rejected_and_failed_records_go_to_the_dead_letter_topic_with_headers() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    for t in ["in", "out", "in.dlq"] {
        cluster.create_topic(t, 2, 1).unwrap();
    }
    let n = 100;
    let poison = |i: usize| match i % 10 {
        3 => Some("reject"),
        7 => Some("trap"),
        _ => None,
    };
    produce(&bs, "in", 2, &values(n, poison));
    let s = stage(
        "s",
        "in",
        &[("default", "out")],
        OnError::Dlq { topic: None },
    );
    let run = Running::start(kafka(bs.clone(), "g"), vec![fake(s)]);
    let out = consume(&bs, "out", 2, 80);
    let dlq = consume(&bs, "in.dlq", 2, 20);
    wait_for("commits", || committed(&bs, "g.s", "in", 2) == [50, 50]);
    assert_eq!(run.counter("partita_records_rejected_total", "s"), 10);
    assert_eq!(run.counter("partita_records_failed_total", "s"), 10);
    assert_eq!(run.counter("partita_dlq_total", "s"), 20);
    assert_eq!(run.counter("partita_records_out_total", "s"), 80);
    run.stop().unwrap();

    assert!(out.iter().all(|g| g.value.starts_with('v')));
    for d in &dlq {
        let i: usize = d.key[1..].parse().unwrap();
        let (kind, error) = if i % 10 == 3 {
            ("rejected", "rejected on request")
        } else {
            ("trap", TRAP)
        };
        assert_eq!(d.value, poison(i).unwrap(), "the original value");
        assert_eq!(d.timestamp, Some(1000 + i as i64), "the original timestamp");
        let expected: Vec<(String, String)> = [
            ("n", i.to_string()),
            ("partita.error", error.to_string()),
            ("partita.error.kind", kind.to_string()),
            ("partita.stage", "s".to_string()),
            ("partita.processor.version", "fakeversion1".to_string()),
            ("partita.source.topic", "in".to_string()),
            ("partita.source.partition", (i % 2).to_string()),
            ("partita.source.offset", (i / 2).to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(d.headers, expected, "headers of {}", d.key);
    }
}

#[test]
fn skipped_records_are_counted_and_not_produced() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    cluster.create_topic("in", 1, 1).unwrap();
    cluster.create_topic("out", 1, 1).unwrap();
    produce(
        &bs,
        "in",
        1,
        &values(20, |i| (i % 5 == 0).then_some("reject")),
    );
    let run = Running::start(
        kafka(bs.clone(), "g"),
        vec![fake(stage("s", "in", &[("default", "out")], OnError::Skip))],
    );
    wait_for("commits", || committed(&bs, "g.s", "in", 1) == [20]);
    assert_eq!(run.counter("partita_records_skipped_total", "s"), 4);
    assert_eq!(run.counter("partita_records_out_total", "s"), 16);
    run.stop().unwrap();
    let out = consume(&bs, "out", 1, 16);
    assert!(out.iter().all(|g| g.value != "reject!"));
}

#[test]
fn on_error_stop_commits_up_to_the_failing_record_and_fails_the_run() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    cluster.create_topic("in", 1, 1).unwrap();
    cluster.create_topic("out", 1, 1).unwrap();
    produce(&bs, "in", 1, &values(30, |i| (i == 17).then_some("trap")));
    let run = Running::start(
        kafka(bs.clone(), "g"),
        vec![fake(stage("s", "in", &[("default", "out")], OnError::Stop))],
    );
    let err = run.wait().unwrap_err();
    assert!(err.while_running(), "{err}");
    assert!(!err.retryable(), "a new run stops at the same record");
    let text = err.chain();
    assert!(
        text.contains("stage \"s\", partition 0: stopped at in/0 offset 17"),
        "{text}"
    );
    assert!(text.contains(TRAP), "{text}");
    assert_eq!(
        committed(&bs, "g.s", "in", 1),
        [17],
        "the failing record is the next to read"
    );
    let out = consume(&bs, "out", 1, 17);
    assert_eq!(out.last().unwrap().value, "v16!");
}

#[test]
fn stages_chain_through_a_topic() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    for t in ["in", "mid", "out", "copy"] {
        cluster.create_topic(t, 2, 1).unwrap();
    }
    produce(&bs, "in", 2, &values(50, |_| None));
    let stages = vec![
        fake(stage("a", "in", &[("default", "mid")], OnError::Skip)),
        fake(stage(
            "b",
            "mid",
            &[("default", "out"), ("copy", "copy")],
            OnError::Skip,
        )),
    ];
    let run = Running::start(kafka(bs.clone(), "g"), stages);
    let out = consume(&bs, "out", 2, 50);
    let copy = consume(&bs, "copy", 2, 50);
    run.stop().unwrap();
    let mut values: Vec<&str> = out.iter().map(|g| g.value.as_str()).collect();
    values.sort_unstable();
    let mut expected: Vec<String> = (0..50).map(|i| format!("v{i}!!")).collect();
    expected.sort_unstable();
    assert_eq!(values, expected);
    assert!(
        copy.iter()
            .all(|g| g.value.ends_with("!") && !g.value.ends_with("!!")),
        "output 1 keeps the value"
    );
}

#[test]
fn a_second_member_takes_over_every_partition_when_the_first_stops() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    cluster.create_topic("in", 4, 1).unwrap();
    cluster.create_topic("out", 4, 1).unwrap();
    produce(&bs, "in", 4, &values(200, |_| None));
    let s = || vec![fake(stage("s", "in", &[("default", "out")], OnError::Skip))];
    // The mock cluster waits for a member that left to time out before it
    // rebalances (a real broker does not): keep that wait short.
    let mut k = kafka(bs.clone(), "g");
    k.consumer
        .push(("session.timeout.ms".into(), "6000".into()));
    k.consumer
        .push(("heartbeat.interval.ms".into(), "500".into()));
    let first = Running::start(k.clone(), s());
    let second = Running::start(k, s());
    consume(&bs, "out", 4, 200);
    wait_for("commits", || {
        committed(&bs, "g.s", "in", 4) == [50, 50, 50, 50]
    });
    first.stop().unwrap();
    produce(&bs, "in", 4, &values(100, |_| None));
    wait_for("the second member to commit the new records", || {
        committed(&bs, "g.s", "in", 4) == [75, 75, 75, 75]
    });
    let in_second = second.counter("partita_records_in_total", "s");
    second.stop().unwrap();
    assert!(in_second >= 100, "the second member processed {in_second}");
    // Every input has an output (duplicates are allowed by at-least-once:
    // read the whole topic).
    let total = high_watermarks(&bs, "out", 4).iter().sum::<i64>() as usize;
    assert!(total >= 300, "{total} outputs");
    let out = consume(&bs, "out", 4, total);
    let keys: std::collections::HashSet<&str> = out.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(
        keys.len(),
        200,
        "keys k0..k199, the second batch reusing k0..k99"
    );
}

#[test]
fn the_run_resumes_when_a_lost_broker_comes_back() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    cluster.create_topic("in", 2, 1).unwrap();
    cluster.create_topic("out", 2, 1).unwrap();
    produce(&bs, "in", 2, &values(40, |_| None));
    let run = Running::start(
        kafka(bs.clone(), "g"),
        vec![fake(stage("s", "in", &[("default", "out")], OnError::Skip))],
    );
    consume(&bs, "out", 2, 40);
    wait_for("commits", || committed(&bs, "g.s", "in", 2) == [20, 20]);
    cluster.broker_down(1).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    cluster.broker_up(1).unwrap();
    produce(&bs, "in", 2, &values(40, |_| None));
    wait_for("commits after the broker returned", || {
        committed(&bs, "g.s", "in", 2) == [40, 40]
    });
    run.stop().unwrap();
    let out = consume(&bs, "out", 2, 80);
    assert_eq!(out.len(), 80);
}

#[test]
fn a_stop_while_idle_leaves_the_group_and_returns_ok() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    cluster.create_topic("in", 1, 1).unwrap();
    cluster.create_topic("out", 1, 1).unwrap();
    let run = Running::start(
        kafka(bs.clone(), "g"),
        vec![fake(stage("s", "in", &[("default", "out")], OnError::Skip))],
    );
    wait_for("the assignment", || {
        run.metrics
            .render()
            .contains("partita_records_in_total{stage=\"s\",partition=\"0\"}")
    });
    run.stop().unwrap();
    assert_eq!(
        committed(&bs, "g.s", "in", 1),
        [-1001],
        "nothing read, nothing committed"
    );
}

#[test]
fn run_checks_loads_tables_and_runs_real_components() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    // The mock cluster cannot create topics: the stage's state changelog
    // is made here.
    for t in ["in", "out", "in.dlq", "ref.names", "g.m.changelog"] {
        cluster.create_topic(t, 1, 1).unwrap();
    }
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    producer
        .send(
            BaseRecord::<str, str>::to("ref.names")
                .key("k2")
                .payload("Alice"),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let values: Vec<String> = ["ok", "reject", "table", "panic", "loop", "ok"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    produce(&bs, "in", 1, &values);

    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[kafka]\nbootstrap = \"{bs}\"\ngroup = \"g\"\ncommit_interval_ms = 100\n\n[[stage]]\nname = \"m\"\n\
         processor = {:?}\ninput = \"in\"\noutputs = {{ out = \"out\" }}\ntables = {{ names = \"ref.names\" }}\n\
         deadline_ms = 200\n",
        crate::config::tests::component("misbehave")
            .display()
            .to_string()
    );
    let file = dir.path().join("pipeline.toml");
    std::fs::write(&file, &text).unwrap();
    let pipeline = Pipeline::load(&file).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let metrics = Metrics::new();
    let options = RunOptions {
        engine: Some(crate::config::tests::engine()),
        metrics: Some(metrics.clone()),
        ..RunOptions::default()
    };
    let done = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(pipeline, options, async {
            let _ = rx.await;
        }))
    });
    let out = consume(&bs, "out", 1, 3);
    let dlq = consume(&bs, "in.dlq", 1, 3);
    wait_for("commits", || committed(&bs, "g.m", "in", 1) == [6]);
    let text = metrics.render();
    let _ = tx.send(());
    done.join().unwrap().unwrap();

    let values: Vec<&str> = out.iter().map(|g| g.value.as_str()).collect();
    assert_eq!(
        values,
        ["ok", "Alice", "ok"],
        "the table lookup of k2 gives Alice"
    );
    let kinds: Vec<(&str, &str)> = dlq
        .iter()
        .map(|d| {
            let h = |name: &str| {
                d.headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .unwrap()
            };
            (h("partita.error.kind"), h("partita.source.offset"))
        })
        .collect();
    assert_eq!(kinds, [("rejected", "1"), ("trap", "3"), ("deadline", "4")]);
    assert!(
        text.contains("partita_processor_info{stage=\"m\",version=\""),
        "{text}"
    );
    assert!(
        text.contains("partita_dlq_total{stage=\"m\",partition=\"0\"} 3\n"),
        "{text}"
    );
}

#[test]
fn run_refuses_missing_topics_before_starting() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    cluster.create_topic("in", 1, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[kafka]\nbootstrap = \"{bs}\"\ngroup = \"g\"\n\n[[stage]]\nname = \"p\"\nprocessor = {:?}\ninput = \"in\"\n\
         outputs = {{ default = \"nowhere\" }}\n",
        crate::config::tests::component("passthrough")
            .display()
            .to_string()
    );
    let file = dir.path().join("pipeline.toml");
    std::fs::write(&file, &text).unwrap();
    let pipeline = Pipeline::load(&file).unwrap();
    let options = RunOptions {
        engine: Some(crate::config::tests::engine()),
        ..RunOptions::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(run(pipeline, options, std::future::pending()))
        .unwrap_err();
    assert!(!err.while_running(), "{err}");
    assert!(!err.retryable(), "{err}");
    assert_eq!(
        err.to_string(),
        "missing topic: nowhere (create it, or set create_topics = true in [kafka])",
        "the default dead-letter topic in.dlq is Partita's to create"
    );
}

#[test]
fn inputs_with_different_partition_counts_are_refused() {
    let mut s = stage("join", "a", &[], OnError::Skip);
    s.inputs.push("b".into());
    let pipeline = Pipeline {
        file: "p.toml".into(),
        kafka: kafka("b".into(), "g"),
        stages: vec![s],
        state: Default::default(),
    };
    let topics: crate::kafka::admin::TopicPartitions =
        [("a".to_string(), 4), ("b".to_string(), 2)].into();
    let err = check_copartitioned(&pipeline, &topics).unwrap_err();
    assert!(!err.while_running(), "{err}");
    assert_eq!(
        err.to_string(),
        "stage \"join\": its inputs are not co-partitioned (a has 4, b has 2); they need the same number of partitions"
    );
    let same: crate::kafka::admin::TopicPartitions =
        [("a".to_string(), 4), ("b".to_string(), 4)].into();
    assert!(check_copartitioned(&pipeline, &same).is_ok());
}

#[test]
fn a_metrics_address_in_use_is_a_setup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[kafka]\nbootstrap = \"127.0.0.1:1\"\ngroup = \"g\"\n\n[[stage]]\nname = \"p\"\nprocessor = {:?}\ninput = \"in\"\n\
         outputs = {{ default = \"out\" }}\n",
        crate::config::tests::component("passthrough")
            .display()
            .to_string()
    );
    let file = dir.path().join("pipeline.toml");
    std::fs::write(&file, &text).unwrap();
    let pipeline = Pipeline::load(&file).unwrap();
    let options = RunOptions {
        engine: Some(crate::config::tests::engine()),
        metrics_addr: Some(addr),
        ..RunOptions::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(run(pipeline, options, std::future::pending()))
        .unwrap_err();
    assert!(!err.while_running(), "{err}");
    assert!(
        err.chain()
            .starts_with(&format!("cannot serve metrics on {addr}: ")),
        "{err}"
    );
}

#[test]
fn a_worker_reads_partition_p_of_every_co_partitioned_input() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    for t in ["a", "b", "out"] {
        cluster.create_topic(t, 2, 1).unwrap();
    }
    produce(&bs, "a", 2, &values(20, |_| None));
    produce(&bs, "b", 2, &values(30, |_| None));
    let mut s = stage("join", "a", &[("default", "out")], OnError::Skip);
    s.inputs.push("b".into());
    let run = Running::start(kafka(bs.clone(), "g"), vec![fake(s)]);
    consume(&bs, "out", 2, 50);
    wait_for("commits of a", || {
        committed(&bs, "g.join", "a", 2) == [10, 10]
    });
    wait_for("commits of b", || {
        committed(&bs, "g.join", "b", 2) == [15, 15]
    });
    let text = run.metrics.render();
    run.stop().unwrap();
    // One worker per partition, each counting both topics' records.
    assert!(
        text.contains("partita_records_in_total{stage=\"join\",partition=\"0\"} 25\n"),
        "{text}"
    );
    assert!(
        text.contains("partita_records_in_total{stage=\"join\",partition=\"1\"} 25\n"),
        "{text}"
    );
}

#[test]
fn a_record_the_producer_refuses_for_good_stops_the_run_without_committing_it() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    cluster.create_topic("in", 1, 1).unwrap();
    cluster.create_topic("out", 1, 1).unwrap();
    let big: &'static str = Box::leak("x".repeat(5000).into_boxed_str());
    produce(&bs, "in", 1, &values(12, |i| (i == 9).then_some(big)));
    let mut k = kafka(bs.clone(), "g");
    k.producer.push(("message.max.bytes".into(), "2000".into()));
    let run = Running::start(
        k,
        vec![fake(stage(
            "s",
            "in",
            &[("default", "out")],
            OnError::Dlq { topic: None },
        ))],
    );
    let err = run.wait().unwrap_err();
    assert!(err.while_running(), "{err}");
    assert!(
        err.chain()
            .starts_with("stage \"s\", partition 0: cannot produce to out: "),
        "{err}"
    );
    assert_eq!(
        committed(&bs, "g.s", "in", 1),
        [9],
        "committed up to the refused record"
    );
    let out = consume(&bs, "out", 1, 9);
    assert_eq!(out.last().unwrap().value, "v8!");
}

#[test]
fn records_the_producer_gives_up_on_are_produced_again() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    cluster.create_topic("in", 1, 1).unwrap();
    cluster.create_topic("out", 1, 1).unwrap();
    produce(&bs, "in", 1, &values(20, |_| None));
    // From now on every produce request fails (retriably), for longer than
    // the producer's message timeout.
    let errors = vec![RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 100_000];
    cluster.request_errors(RDKafkaApiKey::Produce, &errors);
    let mut k = kafka(bs.clone(), "g");
    k.producer.push(("message.timeout.ms".into(), "300".into()));
    k.producer.push(("retry.backoff.ms".into(), "10".into()));
    let run = Running::start(
        k,
        vec![fake(stage("s", "in", &[("default", "out")], OnError::Skip))],
    );
    wait_for("a retry", || {
        run.counter("partita_produce_retries_total", "s") > 0
    });
    assert_eq!(
        committed(&bs, "g.s", "in", 1),
        [-1001],
        "nothing acknowledged, nothing committed"
    );
    cluster.clear_request_errors(RDKafkaApiKey::Produce);
    wait_for("commits", || committed(&bs, "g.s", "in", 1) == [20]);
    run.stop().unwrap();
    let out = consume(&bs, "out", 1, 20);
    let mut keys: Vec<&str> = out.iter().map(|g| g.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 20, "every record out, once or more");
}

#[test]
fn a_rejoin_request_leaves_the_group_and_joins_again_losing_and_repeating_nothing() {
    let cluster = MockCluster::new(1).unwrap();
    let bs = cluster.bootstrap_servers();
    cluster.create_topic("in", 2, 1).unwrap();
    cluster.create_topic("out", 2, 1).unwrap();
    let first = values(100, |_| None);
    produce(&bs, "in", 2, &first);
    let kafka = kafka(bs.clone(), "g");
    let (config, runners) = fake(stage("s", "in", &[("default", "out")], OnError::Stop));
    let metrics = Metrics::new();
    let shared = Arc::new(StageShared {
        producer: Producer::new(&kafka).unwrap(),
        runners,
        metrics: metrics.stage(&config.name, &config.inputs),
        all_metrics: metrics.clone(),
        control: Arc::new(RunControl::default()),
        commit_interval: kafka.commit_interval,
        dlq_topics: vec![None],
        rejoin: AtomicBool::new(false),
        kafka: kafka.clone(),
        config,
    });
    let driver = {
        let shared = shared.clone();
        std::thread::spawn(move || stage::drive(shared))
    };
    wait_for("the first commits", || {
        committed(&bs, "g.s", "in", 2) == [50, 50]
    });
    shared
        .rejoin
        .store(true, std::sync::atomic::Ordering::Relaxed);
    wait_for("the rejoin", || {
        !shared.rejoin.load(std::sync::atomic::Ordering::Relaxed)
    });
    let second: Vec<String> = (100..200).map(|i| format!("v{i}")).collect();
    produce(&bs, "in", 2, &second);
    wait_for("the commits after the rejoin", || {
        committed(&bs, "g.s", "in", 2) == [100, 100]
    });
    shared.control.stop();
    driver.join().unwrap();
    assert!(shared.control.take_failure().is_none());

    let got = consume(&bs, "out", 2, 200);
    let mut values: Vec<String> = got.iter().map(|g| g.value.clone()).collect();
    values.sort();
    values.dedup();
    assert_eq!(
        got.len(),
        200,
        "nothing repeated: the workers committed before leaving"
    );
    assert_eq!(values.len(), 200, "nothing lost");
}
