//! Exactly-once workers against librdkafka's in-process mock cluster, with
//! a native processor that records every offset it is given: one
//! transaction per commit interval, an abort that rewinds to the last
//! commit, a fenced producer that stops the run, and at-least-once left
//! as it was.
//!
//! The mock cluster accepts the transactional calls but keeps neither the
//! offsets of `send_offsets_to_transaction` nor aborted records out of
//! `read_committed` reads (docs/TESTING.md), so these tests assert what
//! the worker does (what it processes again, what it produces, how it
//! stops), not what a real broker would then show.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use partita_wire::{Batch, BatchWriter, OutputSpec, RecordRef, ResultWriter, Results};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::super::super::RunError;
use super::super::super::runner::{BatchRunner, RunnerFactory};
use super::super::super::tests::{Running as PipelineRun, high_watermarks, wait_for};
use crate::config::{Guarantee, KafkaConfig, Pipeline, StageConfig};
use crate::engine::RecordOutcome;

/// Offsets given to the processor, in the order it saw them.
type Seen = Arc<Mutex<Vec<i64>>>;

/// Sends every record's value to output 0 and notes its offset.
struct Echo {
    outputs: Vec<String>,
    seen: Seen,
}

impl BatchRunner for Echo {
    fn outputs(&self) -> &[String] {
        &self.outputs
    }

    fn version(&self) -> &str {
        "echo1"
    }

    fn run(&mut self, batch: &BatchWriter, each: &mut dyn FnMut(RecordRef<'_>, RecordOutcome<'_>)) {
        let parsed = Batch::parse(batch.as_bytes()).unwrap();
        let records: Vec<RecordRef<'_>> = parsed.records().map(|r| r.unwrap()).collect();
        let mut w = ResultWriter::default();
        for r in &records {
            w.begin();
            w.output(&OutputSpec {
                output: 0,
                value: Some(r.value),
                ..OutputSpec::default()
            });
        }
        let buf = w.finish();
        let results = Results::parse(&buf, records.len(), 1).unwrap();
        for (r, result) in records.into_iter().zip(results.iter()) {
            self.seen.lock().unwrap().push(r.offset);
            match result {
                partita_wire::RecordResult::Ok(o) => each(r, RecordOutcome::Ok(o)),
                partita_wire::RecordResult::Rejected(why) => each(r, RecordOutcome::Rejected(why)),
            }
        }
    }
}

struct EchoRunners {
    seen: Seen,
    started: Arc<Mutex<u32>>,
    /// Refuse to start a second time (after an abort).
    start_once: bool,
}

impl RunnerFactory for EchoRunners {
    fn version(&self) -> String {
        "echo1".into()
    }

    fn start(&self, _partition: i32) -> anyhow::Result<Box<dyn BatchRunner>> {
        let mut started = self.started.lock().unwrap();
        if self.start_once && *started > 0 {
            anyhow::bail!("no second start");
        }
        *started += 1;
        Ok(Box::new(Echo {
            outputs: vec!["default".into()],
            seen: self.seen.clone(),
        }))
    }
}

/// The stage `eos` reading `in` and writing `out`, from a pipeline file
/// (so that it has every key's default), batches of at most 7 records,
/// an idle timer call every 20 ms.
fn stage(dir: &tempfile::TempDir) -> StageConfig {
    std::fs::write(dir.path().join("p.wasm"), b"not loaded").unwrap();
    let text = r#"
[kafka]
bootstrap = "unused:9092"
group = "g"

[[stage]]
name = "eos"
processor = "p.wasm"
input = "in"
outputs = { default = "out" }
on_error = "skip"
batch_size = 7
max_wait_ms = 5
timer_interval_ms = 20
"#;
    let pipeline = Pipeline::parse(&dir.path().join("p.toml"), text).unwrap();
    pipeline.stages.into_iter().next().unwrap()
}

fn kafka(bootstrap: String, guarantee: Guarantee) -> KafkaConfig {
    KafkaConfig {
        commit_interval: Duration::from_millis(100),
        guarantee,
        ..KafkaConfig::new(bootstrap, "g")
    }
}

/// A run of the `eos` stage in the background.
struct Running {
    run: PipelineRun,
    seen: Seen,
    started: Arc<Mutex<u32>>,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(kafka: KafkaConfig) -> Running {
        Running::start_with(kafka, false)
    }

    /// A run whose processor cannot be started a second time when
    /// `start_once`.
    fn start_with(kafka: KafkaConfig, start_once: bool) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let stage = stage(&dir);
        let seen = Seen::default();
        let started = Arc::new(Mutex::new(0));
        let runners: Arc<dyn RunnerFactory> = Arc::new(EchoRunners {
            seen: seen.clone(),
            started: started.clone(),
            start_once,
        });
        Running {
            run: PipelineRun::start(kafka, vec![(stage, runners)]),
            seen,
            started,
            _dir: dir,
        }
    }

    fn seen(&self) -> Vec<i64> {
        self.seen.lock().unwrap().clone()
    }

    fn transactions(&self) -> (u64, u64) {
        let s = self.run.metrics.stage("eos", &["in".to_string()]);
        (
            s.transactions.load(Relaxed),
            s.transaction_aborts.load(Relaxed),
        )
    }

    fn stop(self) -> Result<(), RunError> {
        self.run.stop()
    }

    /// Waits (60 s at most) for the run to end by itself.
    fn wait(self) -> Result<(), RunError> {
        self.run.wait()
    }
}

/// Produces values `v{from}..v{to}` to partition 0 of `in`.
fn produce(bootstrap: &str, from: usize, to: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for i in from..to {
        let v = format!("v{i}");
        let r = BaseRecord::<str, str>::to("in").partition(0).payload(&v);
        producer.send(r).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// The values on `out`, in order.
fn read_out(bootstrap: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "reader")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("out", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    let mut values = Vec::new();
    loop {
        assert!(Instant::now() < end, "out not read to its end: {values:?}");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                use rdkafka::message::Message;
                values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return values,
            Some(Err(e)) => panic!("reading out: {e}"),
            None => {}
        }
    }
}

fn out_count(bootstrap: &str) -> i64 {
    high_watermarks(bootstrap, "out", 1)[0]
}

fn cluster() -> (MockCluster<'static, DefaultProducerContext>, String) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("in", 1, 1).unwrap();
    cluster.create_topic("out", 1, 1).unwrap();
    let bs = cluster.bootstrap_servers();
    (cluster, bs)
}

#[test]
fn each_record_is_produced_once_inside_committed_transactions() {
    let (_cluster, bs) = cluster();
    produce(&bs, 0, 30);
    let run = Running::start(kafka(bs.clone(), Guarantee::ExactlyOnce));
    wait_for("30 outputs", || out_count(&bs) >= 30);
    wait_for("a committed transaction", || run.transactions().0 >= 1);
    let seen = run.seen();
    let (_, aborts) = run.transactions();
    run.stop().unwrap();
    assert_eq!(seen, (0..30).collect::<Vec<i64>>());
    assert_eq!(aborts, 0);
    let expected: Vec<String> = (0..30).map(|i| format!("v{i}")).collect();
    assert_eq!(read_out(&bs), expected);
}

#[test]
fn an_aborted_transaction_is_processed_again_from_the_last_commit() {
    let (cluster, bs) = cluster();
    produce(&bs, 0, 50);
    let run = Running::start(kafka(bs.clone(), Guarantee::ExactlyOnce));
    // The first 50 are processed and their transaction committed (the
    // idle partition commits a transaction every interval: two more
    // commits after the 50th record mean the one holding it is done), so
    // the next records open a transaction that must register the output
    // partition again, which the broker then refuses once.
    wait_for("50 outputs", || out_count(&bs) >= 50);
    wait_for("the first 50 processed", || run.seen().len() >= 50);
    let (committed, _) = run.transactions();
    wait_for("two more commits", || run.transactions().0 >= committed + 2);
    cluster.request_errors(
        RDKafkaApiKey::AddPartitionsToTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS],
    );
    produce(&bs, 50, 100);
    wait_for("an abort, then 50 to 99 processed again", || {
        let seen = run.seen();
        run.transactions().1 >= 1
            && seen.iter().filter(|o| **o == 50).count() == 2
            && seen.last() == Some(&99)
    });
    let started = *run.started.lock().unwrap();
    let seen = run.seen();
    let (_, aborts) = run.transactions();
    run.stop().unwrap();

    assert_eq!(aborts, 1);
    assert_eq!(started, 2, "the processor is started again after the abort");
    // 0..=k in order, then one step back to 50 (where the last committed
    // transaction ended), then 50..=99 in order.
    let back = (1..seen.len())
        .find(|i| seen[*i] <= seen[*i - 1])
        .unwrap_or_else(|| panic!("nothing processed again: {seen:?}"));
    let (before, after) = seen.split_at(back);
    let k = *before.last().unwrap();
    assert!(k >= 50, "the aborted transaction held records: {seen:?}");
    assert_eq!(before, (0..=k).collect::<Vec<i64>>().as_slice());
    assert_eq!(after, (50..100).collect::<Vec<i64>>().as_slice());
}

#[test]
fn a_fenced_producer_stops_the_run_naming_the_stage_and_partition() {
    let (cluster, bs) = cluster();
    cluster.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
    );
    produce(&bs, 0, 10);
    let run = Running::start(kafka(bs.clone(), Guarantee::ExactlyOnce));
    let err = run.wait().unwrap_err();
    assert!(err.while_running(), "{err}");
    let text = err.chain();
    assert!(
        text.starts_with("stage \"eos\", partition 0: g.eos.0: commit_transaction: "),
        "{text}"
    );
    assert!(!err.retryable(), "a fenced producer: {text}");
}

#[test]
fn at_least_once_commits_offsets_through_the_group_without_transactions() {
    let (_cluster, bs) = cluster();
    produce(&bs, 0, 20);
    let run = Running::start(kafka(bs.clone(), Guarantee::AtLeastOnce));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", "g.eos")
        .create()
        .unwrap();
    wait_for("offset 20 committed by the group", || {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("in", 0);
        consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .is_ok_and(|c| {
                c.find_partition("in", 0)
                    .is_some_and(|e| e.offset() == Offset::Offset(20))
            })
    });
    assert_eq!(run.transactions(), (0, 0));
    run.stop().unwrap();
    assert_eq!(read_out(&bs).len(), 20);
}

#[test]
fn a_record_the_broker_refuses_for_good_stops_the_run_instead_of_aborting_again_and_again() {
    let (cluster, bs) = cluster();
    produce(&bs, 0, 10);
    // The next produce request is the host's first.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let run = Running::start(kafka(bs.clone(), Guarantee::ExactlyOnce));
    let started = run.started.clone();
    let err = run.wait().unwrap_err();
    assert!(err.while_running(), "{err}");
    let text = err.chain();
    assert!(
        text.starts_with("stage \"eos\", partition 0: the broker refuses a record for out: "),
        "{text}"
    );
    assert!(!err.retryable(), "{text}");
    assert_eq!(*started.lock().unwrap(), 1, "no abort and restart");
}

#[test]
fn a_processor_that_cannot_start_again_after_an_abort_stops_the_run() {
    let (cluster, bs) = cluster();
    cluster.request_errors(
        RDKafkaApiKey::AddPartitionsToTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS],
    );
    produce(&bs, 0, 10);
    let run = Running::start_with(kafka(bs.clone(), Guarantee::ExactlyOnce), true);
    let err = run.wait().unwrap_err();
    assert!(err.while_running(), "{err}");
    assert_eq!(
        err.chain(),
        "stage \"eos\", partition 0: cannot start the processor again after an abort: no second start"
    );
    assert!(err.retryable(), "a new run starts the processor afresh");
}

#[test]
fn an_idle_partition_commits_its_transactions_without_sending_offsets_again() {
    let (cluster, bs) = cluster();
    produce(&bs, 0, 20);
    let run = Running::start(kafka(bs.clone(), Guarantee::ExactlyOnce));
    wait_for("20 outputs", || out_count(&bs) >= 20);
    wait_for("the 20 processed and committed", || {
        run.seen().len() >= 20 && run.transactions().0 >= 1
    });
    // The next offsets sent to a transaction are refused: an abort shows
    // when they are sent.
    cluster.request_errors(
        RDKafkaApiKey::AddOffsetsToTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED],
    );
    let (committed, _) = run.transactions();
    // The idle timer calls open transactions that commit, offsets unmoved.
    wait_for("5 more transactions while idle", || {
        run.transactions().0 >= committed + 5
    });
    assert_eq!(run.transactions().1, 0, "no offsets sent while idle");
    produce(&bs, 20, 30);
    wait_for(
        "the refused offsets to abort, then 20 to 29 processed again",
        || {
            let seen = run.seen();
            run.transactions().1 >= 1
                && seen.iter().filter(|o| **o == 20).count() == 2
                && seen.last() == Some(&29)
        },
    );
    let seen = run.seen();
    run.stop().unwrap();
    let first_again = seen[20..].iter().position(|o| *o == 20);
    assert_eq!(first_again, Some(0), "{seen:?}");
    let back = seen[21..].iter().position(|o| *o == 20).map(|i| i + 21);
    let back = back.unwrap_or_else(|| panic!("20 was not processed again: {seen:?}"));
    assert_eq!(&seen[back..], (20..30).collect::<Vec<i64>>().as_slice());
}
