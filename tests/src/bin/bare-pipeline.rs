//! `bare-pipeline`: the baseline of the end-to-end benchmark
//! (scripts/bench-e2e.sh). A plain rdkafka consume → produce loop, with no
//! processor, no batching into the wire format and no worker threads: what
//! `partita run` with the `passthrough` processor is compared against.
//!
//! ```text
//! bare-pipeline --bootstrap HOST:PORT --group GROUP --input TOPIC --output TOPIC
//!               [--stage NAME] [--commit-interval-ms MS]
//! ```
//!
//! What it does:
//! - joins the consumer group `<GROUP>.<NAME>` (as `partita run` names a
//!   stage's group) subscribed to the input topic, and produces every record
//!   unchanged (key, value, headers, timestamp; partition chosen by the
//!   partitioner from the key) to the output topic;
//! - uses exactly the librdkafka settings that `partita run` gives its stage
//!   consumer and its producer: it builds them with the same functions,
//!   `partita::kafka::client::{consumer_config, producer_config}`
//!   (`acks=all`, idempotence, `murmur2_random`, `linger.ms=5`, manual
//!   commits, range assignment, `earliest` reset, statistics every 5 s),
//!   with `--consumer-property` and `--producer-property` applied on top as
//!   a pipeline file's `[kafka.consumer]` and `[kafka.producer]` tables are;
//! - uses a `ThreadedProducer`, as Partita does, and commits like a Partita
//!   worker: asynchronously every `--commit-interval-ms` (default 1000, as
//!   `commit_interval_ms`), per partition only up to the first record whose
//!   output the broker has not acknowledged yet, and synchronously at the
//!   end;
//! - on SIGINT or SIGTERM stops consuming, waits for every output to be
//!   acknowledged, commits, leaves the group and exits 0, printing what it
//!   did on stderr.
//!
//! What it does not do: batches and their wire encoding, a processor, one
//! thread per partition, dead letters, metrics, or retrying records the
//! producer gave up on (it exits with status 1 instead, committing nothing
//! past them). It is meant to be the only member of its group: it does not
//! finish and commit in-flight records when partitions are revoked.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use partita::config::KafkaConfig;
use partita::kafka::client::{consumer_config, producer_config};
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// A bare rdkafka consume → produce loop with Partita's client settings.
#[derive(Debug, Parser)]
#[command(name = "bare-pipeline")]
struct Cli {
    /// Bootstrap servers.
    #[arg(long)]
    bootstrap: String,
    /// Consumer group prefix; the group is `<GROUP>.<STAGE>`.
    #[arg(long)]
    group: String,
    /// Stage name, the suffix of the group id.
    #[arg(long, default_value = "pass")]
    stage: String,
    /// Input topic.
    #[arg(long)]
    input: String,
    /// Output topic.
    #[arg(long)]
    output: String,
    /// How often acknowledged progress is committed, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    commit_interval_ms: u64,
    /// A librdkafka property for the consumer, applied over the defaults as
    /// a pipeline file's `[kafka.consumer]` table is (repeatable).
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    consumer_properties: Vec<String>,
    /// A librdkafka property for the producer, applied over the defaults as
    /// a pipeline file's `[kafka.producer]` table is (repeatable).
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    producer_properties: Vec<String>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bare-pipeline: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Bits of a delivery opaque below the partition: the record's sequence
/// number within its input partition.
const SEQ_BITS: u32 = 40;

/// Records of one input partition whose outputs are in flight, in offset
/// order, and the offset that may be committed.
#[derive(Default)]
struct Window {
    /// Sequence number of the first entry.
    base: u64,
    /// (offset, acknowledged) of each record sent and not yet committable.
    entries: VecDeque<(i64, bool)>,
    /// The offset after the last record of the acknowledged prefix; -1 when
    /// none.
    committable: i64,
}

/// Per input partition (by partition number), its window.
#[derive(Default)]
struct Tracker {
    partitions: Vec<Window>,
}

impl Tracker {
    fn window(&mut self, partition: i32) -> &mut Window {
        let p = partition as usize;
        if self.partitions.len() <= p {
            self.partitions.resize_with(p + 1, || Window {
                committable: -1,
                ..Window::default()
            });
        }
        &mut self.partitions[p]
    }

    /// Notes a record sent; returns its delivery opaque.
    fn sent(&mut self, partition: i32, offset: i64) -> usize {
        let w = self.window(partition);
        w.entries.push_back((offset, false));
        let seq = w.base + w.entries.len() as u64 - 1;
        ((partition as usize) << SEQ_BITS) | seq as usize
    }

    /// Notes the acknowledgement of the record of `opaque`.
    fn acknowledged(&mut self, opaque: usize) {
        let partition = (opaque >> SEQ_BITS) as i32;
        let seq = (opaque & ((1 << SEQ_BITS) - 1)) as u64;
        let w = self.window(partition);
        if let Some(e) = w.entries.get_mut((seq - w.base) as usize) {
            e.1 = true;
        }
        while let Some(&(offset, true)) = w.entries.front() {
            w.entries.pop_front();
            w.base += 1;
            w.committable = offset + 1;
        }
    }

    /// Records sent and not yet acknowledged (or behind one that is not).
    fn in_flight(&self) -> usize {
        self.partitions.iter().map(|w| w.entries.len()).sum()
    }
}

/// Producer context: acknowledgements go to the tracker.
#[derive(Default)]
struct Deliveries {
    tracker: Mutex<Tracker>,
    acknowledged: AtomicU64,
    failure: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log("producer", level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("bare-pipeline: producer: {error}: {reason}");
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        match result {
            Ok(_) => {
                self.tracker
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .acknowledged(opaque);
                self.acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, m)) => {
                let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
                failure.get_or_insert_with(|| {
                    format!(
                        "the producer gave up on a record for {}/{}: {e}",
                        m.topic(),
                        m.partition()
                    )
                });
            }
        }
    }
}

/// Consumer context: logs, and counts failed asynchronous commits.
#[derive(Default)]
struct Group {
    commit_failures: AtomicU64,
}

impl ClientContext for Group {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log("consumer", level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("bare-pipeline: consumer: {error}: {reason}");
    }

    // The statistics are parsed (as for Partita's consumer) and dropped.
    fn stats(&self, _statistics: Statistics) {}
}

impl ConsumerContext for Group {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            self.commit_failures.fetch_add(1, Ordering::Relaxed);
            eprintln!("bare-pipeline: commit failed: {e}");
        }
    }
}

/// librdkafka's warnings and errors on stderr; the rest is dropped.
fn log(client: &str, level: RDKafkaLogLevel, fac: &str, message: &str) {
    use RDKafkaLogLevel as L;
    if matches!(
        level,
        L::Emerg | L::Alert | L::Critical | L::Error | L::Warning
    ) {
        eprintln!("bare-pipeline: {client}: {fac}: {message}");
    }
}

/// A flag set by the first SIGINT or SIGTERM. The handlers are installed
/// before this returns.
fn stop_on_signal() -> Result<Arc<AtomicBool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("cannot start the signal runtime")?;
    let (mut int, mut term) = {
        let _guard = runtime.enter();
        (
            signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        )
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            });
            flag.store(true, Ordering::Relaxed);
        })
        .context("cannot start the signal thread")?;
    Ok(stop)
}

fn run(cli: Cli) -> Result<()> {
    let stop = stop_on_signal()?;
    let kafka = KafkaConfig {
        consumer: properties("--consumer-property", &cli.consumer_properties)?,
        producer: properties("--producer-property", &cli.producer_properties)?,
        commit_interval: Duration::from_millis(cli.commit_interval_ms),
        ..KafkaConfig::new(cli.bootstrap.clone(), cli.group.clone())
    };
    let producer: ThreadedProducer<Deliveries> =
        ThreadedProducer::from_config_and_context(&producer_config(&kafka), Deliveries::default())
            .context("cannot create the producer")?;
    let consumer: BaseConsumer<Group> = BaseConsumer::from_config_and_context(
        &consumer_config(&kafka, &cli.stage),
        Group::default(),
    )
    .context("cannot create the consumer")?;
    consumer
        .subscribe(&[&cli.input])
        .with_context(|| format!("cannot subscribe to {}", cli.input))?;
    let started = Instant::now();
    let mut consumed = 0u64;
    let mut last_commit_at = Instant::now();
    let mut last_commit: Vec<i64> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some(failure) = producer.context().failure.lock().expect("lock").take() {
            bail!("{failure}");
        }
        let wait = kafka
            .commit_interval
            .saturating_sub(last_commit_at.elapsed())
            .min(Duration::from_millis(100));
        match consumer.poll(wait) {
            None => {}
            Some(Ok(m)) => {
                forward(&producer, &cli.output, &m)?;
                consumed += 1;
            }
            Some(Err(e)) => eprintln!("bare-pipeline: consuming {}: {e}", cli.input),
        }
        if last_commit_at.elapsed() >= kafka.commit_interval {
            commit(
                &consumer,
                &producer,
                &cli.input,
                &mut last_commit,
                CommitMode::Async,
            )?;
            last_commit_at = Instant::now();
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .context("outputs not acknowledged within 60 s")?;
    if let Some(failure) = producer.context().failure.lock().expect("lock").take() {
        bail!("{failure}");
    }
    commit(
        &consumer,
        &producer,
        &cli.input,
        &mut last_commit,
        CommitMode::Sync,
    )?;
    let in_flight = producer.context().tracker.lock().expect("lock").in_flight();
    eprintln!(
        "bare-pipeline: consumed {consumed}, acknowledged {}, unacknowledged {in_flight}, \
         committed {} (sum of offsets), {} commit failures, in {:.3} s",
        producer.context().acknowledged.load(Ordering::Relaxed),
        last_commit.iter().filter(|o| **o > 0).sum::<i64>(),
        consumer.context().commit_failures.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `KEY=VALUE` pairs.
fn properties(option: &str, pairs: &[String]) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => bail!("{option} {kv}: expected KEY=VALUE"),
        })
        .collect()
}

/// Produces `m` unchanged to `output`, waiting while the queue is full.
fn forward(
    producer: &ThreadedProducer<Deliveries>,
    output: &str,
    m: &BorrowedMessage<'_>,
) -> Result<()> {
    let opaque = producer
        .context()
        .tracker
        .lock()
        .expect("lock")
        .sent(m.partition(), m.offset());
    let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(output, opaque);
    if let Some(k) = m.key() {
        record = record.key(k);
    }
    if let Some(v) = m.payload() {
        record = record.payload(v);
    }
    if let Some(h) = m.headers() {
        record = record.headers(h.detach());
    }
    if let Some(t) = m.timestamp().to_millis().filter(|t| *t >= 0) {
        record = record.timestamp(t);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => bail!("cannot produce to {output}: {e}"),
        }
    }
}

/// Commits each partition's acknowledged prefix, if it moved.
fn commit(
    consumer: &BaseConsumer<Group>,
    producer: &ThreadedProducer<Deliveries>,
    input: &str,
    last: &mut Vec<i64>,
    mode: CommitMode,
) -> Result<()> {
    let positions: Vec<i64> = {
        let tracker = producer.context().tracker.lock().expect("lock");
        tracker.partitions.iter().map(|w| w.committable).collect()
    };
    if positions == *last {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (p, next) in positions.iter().enumerate() {
        if *next >= 0 {
            tpl.add_partition_offset(input, p as i32, Offset::Offset(*next))
                .context("cannot build the commit list")?;
        }
    }
    if tpl.count() > 0 {
        match consumer.commit(&tpl, mode) {
            Ok(()) => *last = positions,
            Err(e) if matches!(mode, CommitMode::Sync) => bail!("final commit failed: {e}"),
            Err(e) => eprintln!("bare-pipeline: commit failed: {e}; it is made again later"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_acknowledged_prefix_is_committable() {
        let mut t = Tracker::default();
        let a = t.sent(2, 10);
        let b = t.sent(2, 11);
        let c = t.sent(2, 13);
        let other = t.sent(0, 5);
        assert_eq!(t.window(2).committable, -1);
        t.acknowledged(b);
        t.acknowledged(c);
        assert_eq!(t.window(2).committable, -1, "offset 10 is not acknowledged");
        assert_eq!(t.in_flight(), 4);
        t.acknowledged(a);
        assert_eq!(t.window(2).committable, 14, "past the gap at 12");
        assert_eq!(t.window(0).committable, -1);
        t.acknowledged(other);
        assert_eq!(t.window(0).committable, 6);
        assert_eq!(t.in_flight(), 0);
        // Sequence numbers go on after the window emptied.
        let d = t.sent(2, 14);
        t.acknowledged(d);
        assert_eq!(t.window(2).committable, 15);
        assert_eq!(t.window(1).committable, -1, "a partition never read");
    }

    #[test]
    fn consumer_properties_are_key_value_pairs() {
        let pairs = properties("-c", &["fetch.wait.max.ms=50".into(), "a=b=c".into()]).unwrap();
        assert_eq!(
            pairs,
            [
                ("fetch.wait.max.ms".to_string(), "50".to_string()),
                ("a".to_string(), "b=c".to_string())
            ]
        );
        let err = properties("--producer-property", &["nope".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--producer-property nope"), "{err}");
    }
}
