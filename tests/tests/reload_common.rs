//! What the hot-reload and deploy tests share: a broker with one stage's
//! topics and its pipeline file, a host whose processor file lives in
//! the test's folder, a producer thread that keeps records flowing while
//! the file changes, and the check of the tagged outputs (per input
//! partition and offset: exactly one output, from which version).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use partita_tests::broker::{Broker, free_port};
use partita_tests::kafka::{Consumed, Kafka, Record, wait_until};
use partita_tests::metrics::{scrape, sum};
use partita_tests::partita::Partita;
use partita_tests::pipeline::{Stage, Workspace, pipeline_toml};

/// A broker with topics `in` and `out` (`partitions` each) and `in.dlq`,
/// and a folder holding a pipeline file (group `group`, commits every
/// 200 ms) with stage `stage` reading `in` and writing `out`.
pub struct OneStage {
    /// The broker.
    pub broker: Broker,
    /// A client of it.
    pub kafka: Kafka,
    /// The folder.
    pub ws: Workspace,
    /// The pipeline file.
    pub file: PathBuf,
}

impl OneStage {
    /// Sets it up; `extra` are more lines for the stage.
    pub fn new(
        partitions: i32,
        group: &str,
        stage: &str,
        processor: &Path,
        extra: &str,
    ) -> OneStage {
        let broker = Broker::start().unwrap();
        let kafka = broker.kafka();
        kafka.create_topic("in", partitions).unwrap();
        kafka.create_topic("out", partitions).unwrap();
        kafka.create_topic("in.dlq", 1).unwrap();
        let ws = Workspace::new().unwrap();
        let text = pipeline_toml(
            &broker.bootstrap(),
            group,
            "commit_interval_ms = 200",
            &[Stage {
                name: stage,
                processor,
                input: "in",
                outputs: &[("default", "out")],
                extra,
            }],
        );
        let file = ws.write("pipeline.toml", &text).unwrap();
        OneStage {
            broker,
            kafka,
            ws,
            file,
        }
    }
}

/// The version name of a component's content, as Partita prints it.
pub fn version_of(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..12].to_string()
}

/// The same code under another content hash: a component with a custom
/// section appended.
pub fn variant(bytes: &[u8], n: u8) -> Vec<u8> {
    let name = b"partita-test";
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(name.len() as u8 + 2);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(n);
    out
}

/// Replaces `path` the way `cp` to a temporary name and `mv` do.
pub fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A `partita run` process with its metrics address and log.
pub struct Host {
    /// The process.
    pub process: Partita,
    /// `127.0.0.1:PORT` of its metrics.
    pub metrics: String,
    /// Its log file.
    pub log: PathBuf,
}

impl Host {
    /// Starts `partita run PIPELINE` with metrics on a free port, as host
    /// `name` (`--host-name`), with a state folder of its own as separate
    /// machines have (hosts sharing one would contend for a partition's
    /// store while it moves between them).
    pub fn start(name: &str, ws: &Workspace, pipeline: &Path) -> Host {
        let metrics = format!("127.0.0.1:{}", free_port().unwrap());
        let log = ws.log(name);
        let text = std::fs::read_to_string(pipeline).unwrap();
        let own = pipeline.with_file_name(format!("pipeline-{name}.toml"));
        let text = if text.contains("\n[state]") {
            text
        } else {
            format!("{text}\n[state]\ndir = \"state-{name}\"\n")
        };
        std::fs::write(&own, text).unwrap();
        let pipeline = own.as_path();
        let args = [
            "run",
            pipeline.to_str().unwrap(),
            "--metrics-addr",
            &metrics,
            "--host-name",
            name,
        ];
        let process = Partita::start(name, &args, &log).unwrap();
        Host {
            process,
            metrics,
            log,
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The sum of metric `name` with labels `filter` (0 while the endpoint
    /// is not up yet).
    pub fn metric(&mut self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.process.assert_running().unwrap();
        scrape(&self.metrics).map_or(0.0, |s| sum(&s, name, filter))
    }

    /// Waits until stage `stage` runs `version` on every partition it
    /// holds, as the log says.
    pub fn wait_live(&mut self, stage: &str, version: &str, timeout: Duration) {
        let needle = format!("-> {version} live on all");
        let pattern = format!("stage \"{stage}\": processor ");
        let log = self.log.clone();
        let process = &mut self.process;
        wait_until(timeout, &format!("{stage} to run {version}"), || {
            process.assert_running()?;
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            Ok(text
                .lines()
                .any(|l| l.contains(&pattern) && l.contains(&needle)))
        })
        .unwrap_or_else(|e| panic!("{e:#}\nlog:\n{}", self.process.log_tail(40)));
    }

    /// Waits until `partita_reload_failures_total{stage,reason}` reaches `n`.
    pub fn wait_refused(&mut self, stage: &str, reason: &str, n: f64) {
        let filter = [("stage", stage), ("reason", reason)];
        let (metrics, process) = (self.metrics.clone(), &mut self.process);
        wait_until(
            Duration::from_secs(60),
            &format!("{n} refusals ({reason})"),
            || {
                process.assert_running()?;
                let samples = scrape(&metrics).unwrap_or_default();
                Ok(sum(&samples, "partita_reload_failures_total", &filter) >= n)
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}\nlog:\n{}", self.process.log_tail(40)));
    }

    /// The swap times the log reports for `stage`: (file change to live on
    /// all partitions, longest pause of a partition), in milliseconds.
    pub fn swap_times(&self, stage: &str) -> Vec<(f64, f64)> {
        let pattern = format!("stage \"{stage}\": processor ");
        self.log()
            .lines()
            .filter(|l| l.contains(&pattern) && l.contains(" live on all "))
            .filter_map(|l| {
                let after = l.split(" partitions ").nth(1)?;
                let live: f64 = after.split(" ms").next()?.trim().parse().ok()?;
                let pause = l.split("longest pause of a partition ").nth(1)?;
                let pause: f64 = pause.split(" ms").next()?.trim().parse().ok()?;
                Some((live, pause))
            })
            .collect()
    }
}

/// A thread producing `total` records to `topic` in chunks, keys `k0` to
/// `k{keys-1}` in turn and the record's number as its value, pausing
/// between chunks so that records keep flowing for a while.
pub struct Flow {
    produced: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Flow {
    /// Starts producing.
    pub fn start(kafka: &Kafka, topic: &str, total: u64, keys: u64, pause: Duration) -> Flow {
        let produced = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (kafka, topic, count, halt) = (
            kafka.clone(),
            topic.to_string(),
            produced.clone(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            let chunk = 1000;
            let mut next = 0;
            while next < total && !halt.load(Ordering::Relaxed) {
                let end = (next + chunk).min(total);
                let records =
                    (next..end).map(|i| Record::new(&format!("k{}", i % keys), &i.to_string()));
                kafka.produce(&topic, records).unwrap();
                next = end;
                count.store(next, Ordering::Relaxed);
                std::thread::sleep(pause);
            }
            next
        });
        Flow {
            produced,
            stop,
            thread: Some(thread),
        }
    }

    /// Records acknowledged so far.
    pub fn produced(&self) -> u64 {
        self.produced.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` records were produced.
    pub fn wait_produced(&self, n: u64) {
        wait_until(
            Duration::from_secs(120),
            &format!("{n} records produced"),
            || Ok(self.produced() >= n),
        )
        .unwrap();
    }

    /// Waits for the end; returns how many records were produced.
    pub fn join(mut self) -> u64 {
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("the producer thread")
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One tagged output: what `tag-v*` wrote and the version header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    /// The tag in the value (`tag-v1`...).
    pub tag: String,
    /// The `partita.version` header, if any.
    pub version: Option<String>,
}

/// The outputs of a `tag-v*` stage by input partition and offset.
pub fn tagged(outputs: &[Consumed]) -> BTreeMap<(i32, i64), Vec<Tagged>> {
    let mut by_input: BTreeMap<(i32, i64), Vec<Tagged>> = BTreeMap::new();
    for o in outputs {
        let value = o.value_str();
        let mut parts = value.splitn(3, ':');
        let (Some(p), Some(off), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
            panic!(
                "output {}/{}@{} is not PARTITION:OFFSET:TAG: {value}",
                o.topic, o.partition, o.offset
            );
        };
        by_input
            .entry((p.parse().unwrap(), off.parse().unwrap()))
            .or_default()
            .push(Tagged {
                tag: tag.to_string(),
                version: o.header_str("partita.version"),
            });
    }
    by_input
}

/// Checks that every input offset of every partition (`ends[p]` records
/// in partition p) has exactly one output, and that per partition the
/// versions, in offset order, follow `order` without going back. Returns
/// the number of outputs per tag.
pub fn check_exactly_once_in_order(
    by_input: &BTreeMap<(i32, i64), Vec<Tagged>>,
    ends: &[i64],
    order: &[&str],
) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (p, end) in ends.iter().enumerate() {
        let p = p as i32;
        let mut rank = 0;
        for offset in 0..*end {
            let outs = by_input
                .get(&(p, offset))
                .unwrap_or_else(|| panic!("input {p}@{offset} has no output (a gap)"));
            assert_eq!(
                outs.len(),
                1,
                "input {p}@{offset} has {} outputs: {outs:?}",
                outs.len()
            );
            let tag = &outs[0].tag;
            let r = order
                .iter()
                .position(|t| t == tag)
                .unwrap_or_else(|| panic!("input {p}@{offset}: unexpected tag {tag}"));
            assert!(
                r >= rank,
                "partition {p}: offset {offset} ran {tag} after {} had run",
                order[rank]
            );
            rank = r;
            *counts.entry(tag.clone()).or_default() += 1;
        }
    }
    let extra: Vec<_> = by_input
        .keys()
        .filter(|(p, o)| ends.get(*p as usize).is_none_or(|end| o >= end))
        .collect();
    assert!(
        extra.is_empty(),
        "outputs for inputs that do not exist: {extra:?}"
    );
    counts
}
