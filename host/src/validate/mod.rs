//! `partita validate`: does the new pipeline's output match the legacy
//! one? Two topics, matched by a business key within a time window, every
//! record classified (docs/VALIDATE.md).
//!
//! ```text
//! left topic  ─ source (partitions merged by timestamp) ─┐
//!                                                        ├─ pairing ─ summary, diffs, report
//! right topic ─ source (partitions merged by timestamp) ─┘
//! ```
//!
//! - [`key`]: the business key: the record key or JSON fields.
//! - [`diff`]: field-level comparison with ignores and tolerances.
//! - [`pairing`]: the windowed pairing and the classes.
//! - [`source`]: reading one side in timestamp order.
//! - [`normalize`]: a side's normalizing processor.
//! - [`summary`]: counts, examples, JSON and text.
//! - [`report`]: the self-contained HTML report.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

pub use partita_compare::{diff, key};
pub mod normalize;
pub mod pairing;
pub mod report;
pub mod source;
pub mod summary;

use diff::Rules;
use key::KeySpec;
use pairing::{Class, Outcome, Pairing, Seen, Side};
use source::{Chunk, From, SourceSpec, SourceStats, Until};
use summary::Summary;

use crate::state::{DiskOptions, DiskState};

/// Why a validation could not give a verdict.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The command line or its inputs are wrong (an unknown topic...).
    #[error("{0}")]
    Usage(String),
    /// The cluster cannot be reached or refused a request.
    #[error("{0}")]
    Kafka(String),
    /// A local file or the store of waiting records failed.
    #[error("{what}")]
    Local {
        /// What failed, and where.
        what: String,
        /// Why.
        #[source]
        source: anyhow::Error,
    },
}

/// Where every non-match goes, one JSON object each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffSink {
    /// A JSON Lines file.
    File(PathBuf),
    /// A Kafka topic (keyed by the business key).
    Topic(String),
}

/// A validation run.
pub struct Options {
    /// Client settings (bootstrap servers, TLS, SASL) for every client.
    pub client: ClientConfig,
    /// The legacy output.
    pub left: String,
    /// The new output.
    pub right: String,
    /// How business keys are found.
    pub key: KeySpec,
    /// Records pair when their timestamps are at most this far apart.
    pub window: Duration,
    /// How long after its window closes a record is still taken.
    pub grace: Duration,
    /// What counts as equal.
    pub rules: Rules,
    /// Where reading starts.
    pub from: From,
    /// Where reading stops.
    pub until: Until,
    /// Where waiting records are kept (a fresh folder under the system's
    /// temporary folder when `None`; removed at the end).
    pub state_dir: Option<PathBuf>,
    /// Memory of the store of waiting records, in bytes.
    pub state_memory: usize,
    /// Where non-matches go, if anywhere.
    pub diffs: Option<DiffSink>,
    /// How often to print a progress line on stderr (`None`: never).
    pub progress_every: Option<Duration>,
    /// Per side (left, right), a normalizing processor.
    pub processors: [Option<SideProcessor>; 2],
    /// Where the engine of the normalizing processors caches compiled
    /// components (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
}

/// A normalizing processor of one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideProcessor {
    /// The component file.
    pub path: PathBuf,
    /// Its configuration, passed to `init`.
    pub config: Vec<(String, String)>,
}

/// Runs a validation until both inputs end (or, following, until `stop`
/// is set) and returns what it found.
pub fn run(options: Options, stop: Arc<AtomicBool>) -> Result<Summary, ValidateError> {
    let started = Instant::now();
    let mut client = options.client.clone();
    client
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("group.id", "partita-validate")
        .set("auto.offset.reset", "earliest");
    let idle = (options.window + options.grace).max(Duration::from_secs(1));
    let engine = if options.processors.iter().any(Option::is_some) {
        Some(
            crate::engine::Engine::new(crate::engine::EngineConfig::with_cache(
                options.cache_dir.clone(),
            ))
            .map_err(|source| ValidateError::Local {
                what: "cannot start the Wasm engine".into(),
                source,
            })?,
        )
    } else {
        None
    };
    let spec = |side: Side, topic: &str| -> Result<SourceSpec, ValidateError> {
        let normalizer = match (&options.processors[side.index()], &engine) {
            (Some(p), Some(engine)) => Some(normalize::Normalizer::load(
                engine,
                &p.path,
                &p.config,
                &format!("--{}-processor", side.name()),
            )?),
            _ => None,
        };
        Ok(SourceSpec {
            side,
            topic: topic.to_string(),
            from: options.from,
            until: options.until,
            key: options.key.clone(),
            idle,
            normalizer,
        })
    };
    let left_spec = spec(Side::Left, &options.left)?;
    let right_spec = spec(Side::Right, &options.right)?;
    let left_open = source::open(&client, &left_spec)?;
    let right_open = source::open(&client, &right_spec)?;

    let mut sink = DiffWriter::open(options.diffs.as_ref(), &options.client)?;
    let (state_dir, remove_dir) = match &options.state_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "partita-validate-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            )),
            true,
        ),
    };
    let store = DiskState::open(&state_dir, DiskOptions::with_memory(options.state_memory))
        .map_err(|source| ValidateError::Local {
            what: format!(
                "cannot open the store of waiting records in {}",
                state_dir.display()
            ),
            source,
        })?;
    let result = (|| {
        let mut pairing = Pairing::new(
            store,
            millis(options.window),
            millis(options.grace),
            options.rules.clone(),
        );
        let stats = [
            Arc::new(SourceStats::default()),
            Arc::new(SourceStats::default()),
        ];
        let mut readers = Vec::new();
        let mut channels = Vec::new();
        for (opened, spec, stats) in [
            (left_open, left_spec, stats[0].clone()),
            (right_open, right_spec, stats[1].clone()),
        ] {
            let (tx, rx) = sync_channel::<Chunk>(16);
            let stop = stop.clone();
            readers.push(std::thread::spawn(move || {
                source::read(opened, spec, tx, stats, stop)
            }));
            channels.push(rx);
        }
        let mut summary = Summary::default();
        let mut failure = None;
        let mut on_outcome = |o: Outcome| {
            summary.add(&o);
            if o.class() != Class::Match
                && failure.is_none()
                && let Err(e) = sink.write(&o)
            {
                failure = Some(e);
            }
        };
        merge(
            &channels,
            &mut pairing,
            &mut on_outcome,
            &stats,
            options.progress_every,
            idle,
            &stop,
        )?;
        drop(channels);
        for r in readers {
            r.join()
                .map_err(|_| ValidateError::Kafka("a reader thread panicked".into()))??;
        }
        if let Some(e) = failure {
            return Err(e);
        }
        sink.finish()?;
        let seconds = started.elapsed().as_secs_f64().max(1e-3);
        summary.total_left = stats[0].records.load(Relaxed);
        summary.total_right = stats[1].records.load(Relaxed);
        summary.incomplete_keys = (
            stats[0].incomplete_keys.load(Relaxed),
            stats[1].incomplete_keys.load(Relaxed),
        );
        summary.normalizer_rejected = (
            stats[0].rejected.load(Relaxed),
            stats[1].rejected.load(Relaxed),
        );
        summary.rates = (
            summary.total_left as f64 / seconds,
            summary.total_right as f64 / seconds,
        );
        summary.seconds = seconds;
        Ok(summary)
    })();
    if remove_dir {
        let _ = std::fs::remove_dir_all(&state_dir);
    }
    result
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One side as the merge sees it.
struct SideQueue<'a> {
    rx: &'a Receiver<Chunk>,
    records: VecDeque<Seen>,
    done: bool,
    idle: bool,
}

/// Merges the two sides by timestamp (left first on a tie) into the
/// pairing, waiting for a side that has nothing in hand unless it has
/// ended or is idle; then declares everything still waiting.
fn merge(
    channels: &[Receiver<Chunk>],
    pairing: &mut Pairing<DiskState>,
    out: &mut impl FnMut(Outcome),
    stats: &[Arc<SourceStats>; 2],
    progress_every: Option<Duration>,
    idle: Duration,
    stop: &AtomicBool,
) -> Result<(), ValidateError> {
    let local = |source| ValidateError::Local {
        what: "the store of waiting records failed".into(),
        source,
    };
    let mut sides: Vec<SideQueue<'_>> = channels
        .iter()
        .map(|rx| SideQueue {
            rx,
            records: VecDeque::new(),
            done: false,
            idle: false,
        })
        .collect();
    let mut last_progress = Instant::now();
    let started = Instant::now();
    let classified = std::cell::Cell::new(0u64);
    let mut counting = |o: Outcome| {
        classified.set(
            classified.get()
                + match o.class() {
                    Class::Match | Class::Mismatch => 2,
                    _ => 1,
                },
        );
        out(o);
    };
    loop {
        if let Some(every) = progress_every
            && last_progress.elapsed() >= every
        {
            last_progress = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            let (l, r) = (
                stats[0].records.load(Relaxed),
                stats[1].records.load(Relaxed),
            );
            eprintln!(
                "validate: left {l} ({:.0}/s), right {r} ({:.0}/s), classified {}, waiting {}",
                l as f64 / secs,
                r as f64 / secs,
                classified.get(),
                pairing.waiting()
            );
        }
        // Fill a side that has nothing in hand, unless it ended.
        for s in sides.iter_mut() {
            if s.records.is_empty() && !s.done {
                match s.rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(chunk) if chunk.is_empty() => s.idle = true,
                    Ok(chunk) => {
                        s.idle = false;
                        s.records.extend(chunk);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => s.done = true,
                }
            }
        }
        if stop.load(Relaxed) {
            break;
        }
        let blocked = sides
            .iter()
            .any(|s| s.records.is_empty() && !s.done && !s.idle);
        if blocked {
            continue;
        }
        let head = |i: usize| sides[i].records.front().map(|r| r.timestamp);
        let pick = match (head(0), head(1)) {
            (Some(l), Some(r)) => Some(if l <= r { 0 } else { 1 }),
            (Some(_), None) => Some(0),
            (None, Some(_)) => Some(1),
            (None, None) => None,
        };
        match pick {
            Some(i) => {
                let r = sides[i].records.pop_front().expect("a head");
                pairing.push(r, &mut counting).map_err(local)?;
            }
            None if sides.iter().all(|s| s.done) => break,
            None => {
                // Both sides idle (following): time passes for the
                // waiting records too.
                if let Some(st) = pairing.stream_time() {
                    pairing
                        .advance(st.saturating_add(millis(idle)), &mut counting)
                        .map_err(local)?;
                }
                for s in sides.iter_mut() {
                    s.idle = false;
                }
            }
        }
    }
    pairing.finish(&mut counting).map_err(local)
}

/// Writes non-matches to a file or a topic.
enum DiffWriter {
    None,
    File {
        path: PathBuf,
        out: BufWriter<File>,
    },
    Topic {
        topic: String,
        producer: ThreadedProducer<DefaultProducerContext>,
    },
}

impl DiffWriter {
    fn open(sink: Option<&DiffSink>, client: &ClientConfig) -> Result<DiffWriter, ValidateError> {
        Ok(match sink {
            None => DiffWriter::None,
            Some(DiffSink::File(path)) => {
                let file = File::create(path).map_err(|e| ValidateError::Local {
                    what: format!("--diffs: cannot create {}", path.display()),
                    source: e.into(),
                })?;
                DiffWriter::File {
                    path: path.clone(),
                    out: BufWriter::new(file),
                }
            }
            Some(DiffSink::Topic(topic)) => {
                let producer = client
                    .clone()
                    .set("linger.ms", "20")
                    .create()
                    .map_err(|e| {
                        ValidateError::Kafka(format!("--diffs: cannot create a producer: {e}"))
                    })?;
                DiffWriter::Topic {
                    topic: topic.clone(),
                    producer,
                }
            }
        })
    }

    fn write(&mut self, o: &Outcome) -> Result<(), ValidateError> {
        let line = summary::outcome_json(o);
        match self {
            DiffWriter::None => Ok(()),
            DiffWriter::File { path, out } => serde_json::to_writer(&mut *out, &line)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| ValidateError::Local {
                    what: format!("--diffs: cannot write {}", path.display()),
                    source: e.into(),
                }),
            DiffWriter::Topic { topic, producer } => {
                let key = line["key"].as_str().unwrap_or_default().to_string();
                let payload = line.to_string();
                let mut record = BaseRecord::to(topic).key(&key).payload(&payload);
                loop {
                    match producer.send(record) {
                        Ok(()) => return Ok(()),
                        Err((e, r)) => {
                            if matches!(
                                e.rdkafka_error_code(),
                                Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                            ) {
                                std::thread::sleep(Duration::from_millis(10));
                                record = r;
                                continue;
                            }
                            return Err(ValidateError::Kafka(format!(
                                "--diffs: cannot produce to {topic}: {e}"
                            )));
                        }
                    }
                }
            }
        }
    }

    fn finish(&mut self) -> Result<(), ValidateError> {
        match self {
            DiffWriter::None => Ok(()),
            DiffWriter::File { path, out } => out.flush().map_err(|e| ValidateError::Local {
                what: format!("--diffs: cannot write {}", path.display()),
                source: e.into(),
            }),
            DiffWriter::Topic { topic, producer } => producer
                .flush(Duration::from_secs(30))
                .map_err(|e| ValidateError::Kafka(format!("--diffs: producing to {topic}: {e}"))),
        }
    }
}
