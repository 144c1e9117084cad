//! Reading one side of a validation: every partition of a topic, from a
//! start (earliest, latest or a timestamp) to the end offsets taken when
//! the run starts (`--until end`) or for as long as the run lasts
//! (`--until follow`), merged in timestamp order.
//!
//! The merge waits until every partition that is not finished has a record
//! in hand, then hands on the one with the lowest timestamp (the lower
//! partition on a tie), as Kafka Streams picks the partition head with the
//! lowest timestamp: the order does not depend on how the client happens
//! to interleave fetches, so the same input gives the same result. When
//! following, a partition that has nothing for `idle` is passed over
//! until it has records again (a record that then arrives behind stream
//! time may be late). Partitions whose buffer is full are paused, so
//! memory stays bounded whatever the input size.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::ValidateError;
use super::diff::Parsed;
use super::key::KeySpec;
use super::normalize::{Normalized, Normalizer};
use super::pairing::{Seen, Side};
use crate::kafka::client::LogContext;

/// How long one metadata or offsets request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Records held per partition before it is paused.
const HIGH_WATER: usize = 20_000;
/// Records handed on together.
const CHUNK: usize = 512;

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// The first offset of each partition.
    Earliest,
    /// The end of each partition when the run starts.
    Latest,
    /// The first record at or after this timestamp (ms since the epoch).
    Timestamp(i64),
}

/// Where reading stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The end offsets taken when the run starts.
    End,
    /// Never: until the run is stopped.
    Follow,
}

/// One side's reading settings.
pub struct SourceSpec {
    /// The side.
    pub side: Side,
    /// The topic.
    pub topic: String,
    /// Where to start.
    pub from: From,
    /// Where to stop.
    pub until: Until,
    /// How business keys are found.
    pub key: KeySpec,
    /// When following, how long a partition may have nothing before the
    /// merge passes it over.
    pub idle: Duration,
    /// The side's normalizing processor, if any.
    pub normalizer: Option<Normalizer>,
}

/// A chunk of one side's records, in timestamp order; an empty chunk means
/// the side is idle (following) and `stream time` may move on.
pub type Chunk = Vec<Seen>;

/// What one side has read, for progress lines.
#[derive(Default)]
pub struct SourceStats {
    /// Records read.
    pub records: AtomicU64,
    /// Records whose business key was incomplete (null Kafka key, missing
    /// field, value not JSON).
    pub incomplete_keys: AtomicU64,
    /// Records the normalizing processor rejected or failed on.
    pub rejected: AtomicU64,
}

/// Rejections by the normalizing processor printed on stderr at most.
const REJECTIONS_SHOWN: u64 = 10;

struct PartitionBuf {
    partition: i32,
    /// Exclusive end offset (`i64::MAX` when following).
    end: i64,
    next: i64,
    records: VecDeque<Seen>,
    paused: bool,
    last_data: Instant,
    /// With `--from TIMESTAMP`: records before it are skipped until the
    /// first one at or after it. Kafka starts the partition there already,
    /// but a broker may answer "no such record" with offset 0 (Tansu 0.6).
    skip_before: i64,
}

impl PartitionBuf {
    fn done(&self) -> bool {
        self.next >= self.end
    }
}

/// A side's consumer, assigned to every partition of its topic, and each
/// partition's (partition, start offset, end offset when opened).
pub struct Opened {
    consumer: BaseConsumer<LogContext>,
    ranges: Vec<(i32, i64, i64)>,
}

/// A consumer of `spec.topic` without a group, positioned at its start;
/// fails with a clear error if the topic does not exist.
pub fn open(config: &ClientConfig, spec: &SourceSpec) -> Result<Opened, ValidateError> {
    let context = LogContext::new(format!("validate {}", spec.side.name()));
    let consumer = BaseConsumer::from_config_and_context(config, context)
        .map_err(|e| ValidateError::Kafka(format!("cannot create a consumer: {e}")))?;
    let md = consumer
        .fetch_metadata(Some(&spec.topic), REQUEST_TIMEOUT)
        .map_err(|e| ValidateError::Kafka(format!("cannot reach the cluster: {e}")))?;
    let topic = md
        .topics()
        .iter()
        .find(|t| t.name() == spec.topic)
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .ok_or_else(|| {
            ValidateError::Usage(format!(
                "--{}: topic {} does not exist",
                spec.side.name(),
                spec.topic
            ))
        })?;
    let mut ranges = Vec::new();
    for p in topic.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(&spec.topic, p.id(), REQUEST_TIMEOUT)
            .map_err(|e| {
                ValidateError::Kafka(format!(
                    "cannot read the offsets of {}/{}: {e}",
                    spec.topic,
                    p.id()
                ))
            })?;
        ranges.push((p.id(), low, high));
    }
    ranges.sort_unstable();
    // With a timestamp: each partition's first offset at or after it.
    let at_time = match spec.from {
        From::Timestamp(ts) => {
            let mut query = TopicPartitionList::new();
            for (partition, _, _) in &ranges {
                query
                    .add_partition_offset(&spec.topic, *partition, Offset::Offset(ts))
                    .map_err(|e| ValidateError::Kafka(e.to_string()))?;
            }
            Some(
                consumer
                    .offsets_for_times(query, REQUEST_TIMEOUT)
                    .map_err(|e| {
                        ValidateError::Kafka(format!("cannot find offsets for --from: {e}"))
                    })?,
            )
        }
        _ => None,
    };
    let mut starts = TopicPartitionList::new();
    for (partition, low, high) in &mut ranges {
        let start = match (spec.from, &at_time) {
            (From::Latest, _) => *high,
            (From::Timestamp(_), Some(found)) => found
                .find_partition(&spec.topic, *partition)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
                // No record at or after the timestamp: start at the end.
                .unwrap_or(*high)
                .max(*low),
            _ => *low,
        };
        *low = start;
        starts
            .add_partition_offset(&spec.topic, *partition, Offset::Offset(start))
            .map_err(|e| ValidateError::Kafka(e.to_string()))?;
    }
    consumer
        .assign(&starts)
        .map_err(|e| ValidateError::Kafka(format!("cannot read {}: {e}", spec.topic)))?;
    Ok(Opened { consumer, ranges })
}

/// Reads `spec`'s side and sends it on `out` in timestamp-ordered chunks
/// until its end (or, following, until `stop`); returns when done.
pub fn read(
    opened: Opened,
    mut spec: SourceSpec,
    out: SyncSender<Chunk>,
    stats: Arc<SourceStats>,
    stop: Arc<AtomicBool>,
) -> Result<(), ValidateError> {
    let Opened { consumer, ranges } = opened;
    let mut parts: Vec<PartitionBuf> = ranges
        .iter()
        .map(|&(partition, start, high)| PartitionBuf {
            partition,
            end: match spec.until {
                Until::End => high,
                Until::Follow => i64::MAX,
            },
            next: start,
            records: VecDeque::new(),
            paused: false,
            last_data: Instant::now(),
            skip_before: match spec.from {
                From::Timestamp(ts) => ts,
                _ => i64::MIN,
            },
        })
        .collect();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut idle_since: Option<Instant> = None;
    while !stop.load(Relaxed) {
        // Hand on records while every live partition has one in hand.
        loop {
            let now = Instant::now();
            let blocking = parts.iter().any(|p| {
                p.records.is_empty()
                    && !p.done()
                    && (spec.until == Until::End || now.duration_since(p.last_data) < spec.idle)
            });
            if blocking {
                break;
            }
            let Some(i) = parts
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.records.front().map(|r| (r.timestamp, p.partition, i)))
                .min()
                .map(|(_, _, i)| i)
            else {
                break;
            };
            let p = &mut parts[i];
            let r = p.records.pop_front().expect("a head");
            if p.paused && p.records.len() < HIGH_WATER / 2 {
                resume(&consumer, &spec.topic, p.partition, true)?;
                p.paused = false;
            }
            chunk.push(r);
            if chunk.len() >= CHUNK && out.send(std::mem::take(&mut chunk)).is_err() {
                return Ok(());
            }
        }
        if !chunk.is_empty() && out.send(std::mem::take(&mut chunk)).is_err() {
            return Ok(());
        }
        if parts.iter().all(|p| p.done() && p.records.is_empty()) {
            return Ok(());
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                idle_since = None;
                let Some(p) = parts.iter_mut().find(|p| p.partition == m.partition()) else {
                    continue;
                };
                p.last_data = Instant::now();
                if m.offset() >= p.end {
                    p.next = p.end;
                    continue;
                }
                p.next = m.offset() + 1;
                let timestamp = m.timestamp().to_millis().unwrap_or(0);
                if timestamp < p.skip_before {
                    continue;
                }
                p.skip_before = i64::MIN;
                let records = match spec.normalizer.as_mut() {
                    None => vec![Normalized {
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                        timestamp,
                    }],
                    Some(n) => {
                        match n.apply(m.partition(), m.offset(), timestamp, m.key(), m.payload()) {
                            Ok(records) => records,
                            Err(why) => {
                                let n = stats.rejected.fetch_add(1, Relaxed) + 1;
                                if n <= REJECTIONS_SHOWN {
                                    eprintln!(
                                        "validate: --{}-processor: {}/{} offset {}: {why}",
                                        spec.side.name(),
                                        spec.topic,
                                        m.partition(),
                                        m.offset()
                                    );
                                }
                                Vec::new()
                            }
                        }
                    }
                };
                for r in records {
                    let parsed = match &spec.key {
                        KeySpec::Record => Parsed::Null,
                        KeySpec::Fields(_) => Parsed::new(r.value.as_deref()),
                    };
                    let key = spec.key.key_of(r.key.as_deref(), &parsed);
                    if !key.complete {
                        stats.incomplete_keys.fetch_add(1, Relaxed);
                    }
                    stats.records.fetch_add(1, Relaxed);
                    p.records.push_back(Seen {
                        side: spec.side,
                        partition: m.partition(),
                        offset: m.offset(),
                        timestamp: r.timestamp,
                        key: key.bytes,
                        value: r.value,
                    });
                }
                if !p.paused && p.records.len() >= HIGH_WATER {
                    resume(&consumer, &spec.topic, p.partition, false)?;
                    p.paused = true;
                }
            }
            Some(Err(e)) => {
                tracing::warn!("validate: reading {}: {e}", spec.topic);
            }
            None => {
                // Nothing came: partitions whose position reached the end
                // (past control records, say) are done.
                if spec.until == Until::End {
                    let positions = consumer
                        .position()
                        .map_err(|e| ValidateError::Kafka(e.to_string()))?;
                    for p in &mut parts {
                        if let Some(Offset::Offset(o)) = positions
                            .find_partition(&spec.topic, p.partition)
                            .map(|e| e.offset())
                        {
                            p.next = p.next.max(o);
                        }
                    }
                } else {
                    // Following, and nothing at all for a while: say so,
                    // so that the pairing can move stream time on.
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= spec.idle {
                        idle_since = Some(Instant::now());
                        if out.send(Vec::new()).is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Pauses (`resume == false`) or resumes one partition.
fn resume(
    consumer: &BaseConsumer<LogContext>,
    topic: &str,
    partition: i32,
    resume: bool,
) -> Result<(), ValidateError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let r = if resume {
        consumer.resume(&tpl)
    } else {
        consumer.pause(&tpl)
    };
    r.map_err(|e| ValidateError::Kafka(format!("{topic}/{partition}: {e}")))
}
