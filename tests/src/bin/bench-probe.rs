//! `bench-probe`: the measuring side of the end-to-end benchmark
//! (scripts/bench-e2e.sh).
//!
//! ```text
//! bench-probe --bootstrap HOST:PORT [-X KEY=VALUE]... wait-committed --group G --topic T --total N
//!             --since-ns NS [--pid PID]... [--poll-ms 20] [--timeout-s 300]
//! bench-probe --bootstrap HOST:PORT [-X KEY=VALUE]... digest --topic T --expect N [--timeout-s 60]
//! bench-probe --bootstrap HOST:PORT [-X KEY=VALUE]... latency --input T --output T --rate R
//!             [--seconds 15] [--warmup-s 5]
//! ```
//!
//! `wait-committed` polls the offsets that group G committed on topic T
//! (OffsetFetch, not watermarks: Tansu's memory engine reports wrong high
//! watermarks) until their sum reaches N. The topic must be fresh, its
//! offsets starting at 0 without gaps, so that the sum of the committed
//! offsets is the number of records done. Each time that sum changes it
//! prints a line `MS COUNT TICKS,TICKS...`: the milliseconds since NS (a
//! `date +%s%N` taken when the measured process started), the sum, and the
//! CPU clock ticks (user + system, from `/proc/PID/stat`) of each `--pid`.
//!
//! `digest` reads every partition of T from its beginning until it has N
//! records and then 500 ms more without a new one (or until the timeout),
//! and prints the record count and an order-independent digest of their
//! keys, values, headers and timestamps: two topics holding the same
//! records in any partitioning have the same digest.
//!
//! `latency` produces R records per second to the input topic for the
//! given seconds (keys `lat{i}`, values the record's number in 100 digits,
//! timestamps the time of sending), reads the output topic (a fresh one:
//! from its beginning) meanwhile, and prints the end-to-end latency of the outputs (the time
//! each one is read minus its timestamp, which passthrough and count keep
//! from their input): `sent=N received=N p50_ms=... p99_ms=... max_ms=...`,
//! leaving out the records sent in the first `--warmup-s` seconds (the
//! measured process joining its group). It includes the probe's own fetch
//! wait, which is the same for everything it measures.
//!
//! `-X` sets a librdkafka property of the probe's consumer (for example
//! `fetch.wait.max.ms=10`, to read fast from Tansu).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

/// Measures a benchmark run from outside.
#[derive(Debug, Parser)]
#[command(name = "bench-probe")]
struct Cli {
    /// Bootstrap servers.
    #[arg(long)]
    bootstrap: String,
    /// A librdkafka property for the probe's consumer (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE", global = true)]
    properties: Vec<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Waits until a group committed N records of a fresh topic.
    WaitCommitted {
        /// Consumer group.
        #[arg(long)]
        group: String,
        /// Input topic of the group.
        #[arg(long)]
        topic: String,
        /// Records to wait for (sum of committed offsets).
        #[arg(long)]
        total: i64,
        /// Start of the measurement, nanoseconds since the Unix epoch.
        #[arg(long)]
        since_ns: u128,
        /// Processes whose CPU time to report.
        #[arg(long = "pid")]
        pids: Vec<u32>,
        /// Interval between two reads of the committed offsets.
        #[arg(long, default_value_t = 20)]
        poll_ms: u64,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_s: u64,
    },
    /// Counts a topic's records and digests them.
    Digest {
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Records expected.
        #[arg(long)]
        expect: u64,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout_s: u64,
    },
    /// End-to-end latency at a fixed rate.
    Latency {
        /// Topic to produce to.
        #[arg(long)]
        input: String,
        /// Topic to read the outputs from.
        #[arg(long)]
        output: String,
        /// Records per second.
        #[arg(long)]
        rate: u64,
        /// How long to produce.
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        /// Records sent in the first seconds are not measured.
        #[arg(long, default_value_t = 5)]
        warmup_s: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::WaitCommitted {
            group,
            topic,
            total,
            since_ns,
            pids,
            poll_ms,
            timeout_s,
        } => wait_committed(
            &cli.bootstrap,
            &cli.properties,
            &group,
            &topic,
            total,
            since_ns,
            &pids,
            Duration::from_millis(poll_ms),
            Duration::from_secs(timeout_s),
        ),
        Cmd::Digest {
            topic,
            expect,
            timeout_s,
        } => digest(
            &cli.bootstrap,
            &cli.properties,
            &topic,
            expect,
            Duration::from_secs(timeout_s),
        ),
        Cmd::Latency {
            input,
            output,
            rate,
            seconds,
            warmup_s,
        } => latency(
            &cli.bootstrap,
            &cli.properties,
            &input,
            &output,
            rate,
            Duration::from_secs(seconds),
            Duration::from_secs(warmup_s),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-probe: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn consumer(bootstrap: &str, group: &str, properties: &[String]) -> Result<BaseConsumer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for kv in properties {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("-X {kv}: expected KEY=VALUE");
        };
        config.set(k, v);
    }
    config.create().context("cannot create a Kafka consumer")
}

fn partitions(c: &BaseConsumer, topic: &str) -> Result<i32> {
    let metadata = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("cannot read the metadata of {topic}"))?;
    let n = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len());
    if n == 0 {
        bail!("topic {topic} does not exist");
    }
    Ok(n as i32)
}

/// Assigns every partition of `topic` to `c`, from its beginning.
fn read_from_beginning(c: &BaseConsumer, topic: &str) -> Result<()> {
    let n = partitions(c, topic)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .context("cannot build the assignment")?;
    }
    c.assign(&tpl)
        .with_context(|| format!("cannot assign {topic}"))
}

/// Milliseconds from `since_ns` (since the Unix epoch) to now.
fn ms_since(since_ns: u128) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    now.saturating_sub(since_ns) as f64 / 1e6
}

/// User plus system CPU clock ticks of process `pid` (all its threads).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_ticks(&stat).with_context(|| format!("{path}: unexpected format"))
}

/// utime + stime from the text of `/proc/PID/stat` (fields 14 and 15; the
/// command name in field 2 may hold spaces and parentheses).
fn parse_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[allow(clippy::too_many_arguments)]
fn wait_committed(
    bootstrap: &str,
    properties: &[String],
    group: &str,
    topic: &str,
    total: i64,
    since_ns: u128,
    pids: &[u32],
    poll: Duration,
    timeout: Duration,
) -> Result<()> {
    let c = consumer(bootstrap, group, properties)?;
    let n = partitions(&c, topic)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition(topic, p);
    }
    let deadline = Instant::now() + timeout;
    let mut last = -1;
    loop {
        let committed = c
            .committed_offsets(tpl.clone(), Duration::from_secs(10))
            .with_context(|| format!("cannot read the offsets of group {group}"))?;
        let done: i64 = committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum();
        if done != last {
            let ticks = pids
                .iter()
                .map(|p| cpu_ticks(*p).map(|t| t.to_string()))
                .collect::<Result<Vec<_>>>()?;
            println!("{:.1} {done} {}", ms_since(since_ns), ticks.join(","));
            last = done;
        }
        if done >= total {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "group {group} committed {done} of {total} records of {topic} within {timeout:?}"
            );
        }
        std::thread::sleep(poll);
    }
}

/// An order-independent digest of records: the wrapping sum of a hash of
/// each record.
#[derive(Debug, Default, PartialEq, Eq)]
struct Digest {
    count: u64,
    sum: u64,
}

impl Digest {
    fn add<M: Message>(&mut self, m: &M) {
        let mut h = DefaultHasher::new();
        m.key().hash(&mut h);
        m.payload().hash(&mut h);
        m.timestamp().to_millis().hash(&mut h);
        if let Some(headers) = m.headers() {
            for header in headers.iter() {
                header.key.hash(&mut h);
                header.value.hash(&mut h);
            }
        }
        self.count += 1;
        self.sum = self.sum.wrapping_add(h.finish());
    }
}

fn digest(
    bootstrap: &str,
    properties: &[String],
    topic: &str,
    expect: u64,
    timeout: Duration,
) -> Result<()> {
    let c = consumer(bootstrap, "partita-bench-digest", properties)?;
    read_from_beginning(&c, topic)?;
    let deadline = Instant::now() + timeout;
    let quiet = Duration::from_millis(500);
    let mut d = Digest::default();
    let mut last_record = Instant::now();
    loop {
        let now = Instant::now();
        if now >= deadline || (d.count >= expect && now - last_record >= quiet) {
            break;
        }
        match c.poll(Duration::from_millis(50)) {
            None => {}
            Some(Ok(m)) => {
                d.add(&m);
                last_record = Instant::now();
            }
            Some(Err(e)) => bail!("reading {topic}: {e}"),
        }
    }
    println!("count={} digest={:016x}", d.count, d.sum);
    Ok(())
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The value at quantile `q` (0 to 1) of sorted `values`.
fn quantile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at]
}

fn latency(
    bootstrap: &str,
    properties: &[String],
    input: &str,
    output: &str,
    rate: u64,
    run: Duration,
    warmup: Duration,
) -> Result<()> {
    if rate == 0 {
        bail!("--rate must be at least 1");
    }
    let c = consumer(bootstrap, "partita-bench-latency", properties)?;
    read_from_beginning(&c, output)?;
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "1")
        .create()
        .context("cannot create a Kafka producer")?;

    let start = Instant::now();
    let measured_from = now_ms() + warmup.as_millis() as i64;
    let mut sent = 0u64;
    let mut latencies = Vec::new();
    let mut received = 0u64;
    let grace = Duration::from_secs(10);
    loop {
        let elapsed = start.elapsed();
        // Send what is due by now, at `rate` per second.
        let due = if elapsed < run {
            (elapsed.as_secs_f64() * rate as f64) as u64
        } else {
            (run.as_secs_f64() * rate as f64) as u64
        };
        while sent < due {
            let (key, value) = (format!("lat{sent}"), format!("{sent:0100}"));
            let record = BaseRecord::to(input)
                .key(&key)
                .payload(&value)
                .timestamp(now_ms());
            match producer.send(record) {
                Ok(()) => sent += 1,
                // The producer's queue is full: read outputs meanwhile,
                // and send this record again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => break,
                Err((e, _)) => bail!("cannot send to {input}: {e}"),
            }
        }
        if elapsed >= run && (received >= sent || elapsed >= run + grace) {
            break;
        }
        match c.poll(Duration::from_millis(1)) {
            None => {}
            Some(Ok(m)) => {
                received += 1;
                if let Some(ts) = m.timestamp().to_millis()
                    && ts >= measured_from
                {
                    latencies.push(now_ms() - ts);
                }
            }
            Some(Err(e)) => bail!("reading {output}: {e}"),
        }
    }
    producer
        .flush(Duration::from_secs(10))
        .context("cannot flush the producer")?;
    if received < sent {
        bail!("received {received} of {sent} outputs within {grace:?} after the last send");
    }
    latencies.sort_unstable();
    println!(
        "sent={sent} received={received} measured={} p50_ms={} p99_ms={} max_ms={}",
        latencies.len(),
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;

    fn message(partition: i32, value: &[u8]) -> OwnedMessage {
        OwnedMessage::new(
            Some(value.to_vec()),
            Some(b"k".to_vec()),
            "t".into(),
            Timestamp::CreateTime(7),
            partition,
            0,
            None,
        )
    }

    #[test]
    fn ticks_are_read_past_a_command_name_with_spaces() {
        let stat = "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 1 0 0 0 150 25 0 0 20 0 3 0 99 0 0";
        assert_eq!(parse_ticks(stat), Some(175));
        assert_eq!(parse_ticks("4242 (trunc) S 1"), None);
        assert!(cpu_ticks(std::process::id()).is_ok());
    }

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 51);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn the_digest_ignores_order_and_partition_but_not_content() {
        let mut a = Digest::default();
        a.add(&message(0, b"x"));
        a.add(&message(1, b"y"));
        let mut b = Digest::default();
        b.add(&message(3, b"y"));
        b.add(&message(2, b"x"));
        assert_eq!(a, b);
        let mut c = Digest::default();
        c.add(&message(0, b"x"));
        c.add(&message(1, b"z"));
        assert_ne!(a, c);
    }
}
