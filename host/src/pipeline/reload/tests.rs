//! Tests of hot reload without a broker: the coordinator and the watcher on
//! real files (renamed over, written in place, half-written, broken), the
//! worker's swap at a batch boundary with real instances, rollback, and
//! the metrics.
//!
//! Waits poll for an expected outcome with a generous limit; nothing
//! asserts on durations.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use partita_wire::BatchWriter;

use super::*;
use crate::config::tests::{component, engine};
use crate::config::{Pipeline, StageConfig};
use crate::engine::{InstanceSetup, Processor, RecordOutcome};
use crate::metrics::Metrics;
use crate::pipeline::runner::BatchRunner;
use crate::tables::MemoryTables;

const WAIT: Duration = Duration::from_secs(60);

/// Settings short enough for tests, with room for a slow machine.
fn settings() -> ReloadSettings {
    ReloadSettings {
        debounce: Duration::from_millis(100),
        retry_every: Duration::from_millis(100),
        attempts: 5,
    }
}

/// A component with a custom section appended: the same code under another
/// content hash (another version).
fn variant(bytes: &[u8], n: u8) -> Vec<u8> {
    let name = b"partita-test";
    let mut out = bytes.to_vec();
    out.push(0); // custom section
    out.push(1 + name.len() as u8 + 1);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(n);
    out
}

fn short(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..12].to_string()
}

/// Replaces `path` as `cp` to a temporary name and `mv` would.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A stage `s` whose processor is `p.wasm` in a temporary folder,
/// starting with component `initial`, watched (or not) by a reloader.
struct Stage {
    _dir: tempfile::TempDir,
    file: PathBuf,
    config: StageConfig,
    live: Arc<LiveProcessor>,
    metrics: Arc<Metrics>,
    trigger: ReloadTrigger,
    reloader: Option<Reloader>,
}

impl Stage {
    fn start(initial: &str, extra: &str, watch: bool) -> Stage {
        Stage::with_bytes(&std::fs::read(component(initial)).unwrap(), extra, watch)
    }

    fn with_bytes(initial: &[u8], extra: &str, watch: bool) -> Stage {
        Stage::with_outputs(initial, "default", extra, watch)
    }

    /// Like [`Stage::with_bytes`], the stage mapping output `output`.
    fn with_outputs(initial: &[u8], output: &str, extra: &str, watch: bool) -> Stage {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.wasm");
        std::fs::write(&file, initial).unwrap();
        let text = format!(
            "[kafka]\nbootstrap = \"k:9092\"\ngroup = \"g\"\n\n[[stage]]\nname = \"s\"\n\
             processor = \"p.wasm\"\ninput = \"in\"\noutputs = {{ {output} = \"out\" }}\n{extra}\n"
        );
        let pipeline = Pipeline::parse(&dir.path().join("pipeline.toml"), &text).unwrap();
        let config = pipeline.stages[0].clone();
        let engine = engine();
        let processor = engine.load(&file).unwrap();
        let metrics = Metrics::new();
        let stage_metrics = metrics.stage("s", &config.inputs);
        let live = LiveProcessor::new("s", processor, config.reload.rollback, stage_metrics);
        let trigger = ReloadTrigger::new();
        let reload_stage = ReloadStage {
            config: config.clone(),
            tables: Arc::new(MemoryTables::new()),
            live: live.clone(),
            shadow: None,
        };
        let reloader = Reloader::start(
            engine,
            vec![reload_stage],
            &trigger,
            settings(),
            watch,
            None,
        )
        .unwrap();
        Stage {
            _dir: dir,
            file,
            config,
            live,
            metrics,
            trigger,
            reloader: Some(reloader),
        }
    }

    fn version(&self) -> String {
        self.live.current().version().to_string()
    }

    fn failures(&self, reason: Refusal) -> u64 {
        self.metrics
            .stage("s", &[])
            .reload_failures(reason.as_str())
    }

    fn wait_version(&self, bytes: &[u8]) {
        let want = short(bytes);
        wait_for(&format!("version {want}"), || self.version() == want);
    }

    fn wait_failures(&self, reason: Refusal, n: u64) {
        wait_for(&format!("{n} refusals for {}", reason.as_str()), || {
            self.failures(reason) >= n
        });
    }

    /// A runner for `partition` started on the live version, and its hook.
    fn runner(&self, partition: i32) -> (Box<dyn BatchRunner>, SwapHook) {
        let setup = InstanceSetup {
            partition,
            ..InstanceSetup::standalone("s", &[], self.config.limits)
        };
        let runner: Box<dyn BatchRunner> =
            Box::new(self.live.current().instantiate(setup).unwrap());
        let hook = SwapHook::new(self.live.clone(), partition, runner.version());
        (runner, hook)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        // Stop the coordinator before the folder goes.
        self.reloader.take();
    }
}

/// A batch of `values`, all under key `k`, offsets from `first`.
fn batch(first: i64, values: &[&str]) -> BatchWriter {
    let mut b = BatchWriter::new(&["in"]);
    for (i, v) in values.iter().enumerate() {
        b.push(
            0,
            0,
            first + i as i64,
            0,
            Some(b"k"),
            Some(v.as_bytes()),
            std::iter::empty(),
        );
    }
    b
}

/// Runs `b` and returns each record's output value, or `!reason`.
fn run(runner: &mut dyn BatchRunner, b: &BatchWriter) -> Vec<String> {
    let mut out = Vec::new();
    runner.run(b, &mut |record, outcome| {
        out.push(match outcome {
            RecordOutcome::Ok(outputs) => outputs
                .iter()
                .map(|o| {
                    String::from_utf8_lossy(o.value.or_input(record.value).unwrap_or_default())
                        .into_owned()
                })
                .collect::<Vec<_>>()
                .join("|"),
            RecordOutcome::Rejected(r) => format!("!{r}"),
            RecordOutcome::Failed(e) => format!("!{e}"),
        })
    });
    out
}

#[test]
fn a_file_renamed_over_the_old_one_is_swapped_in() {
    let s = Stage::start("tag-v1", "", true);
    let v2 = std::fs::read(component("tag-v2")).unwrap();
    replace(&s.file, &v2);
    s.wait_version(&v2);
    assert_eq!(s.live.generation(), 2);
    let text = s.metrics.render();
    for line in [
        "partita_reloads_total{stage=\"s\"} 1".to_string(),
        format!(
            "partita_processor_info{{stage=\"s\",version=\"{}\"}} 1",
            short(&v2)
        ),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
}

#[test]
fn a_file_written_in_place_is_swapped_in() {
    let s = Stage::start("tag-v1", "", true);
    let v2 = std::fs::read(component("tag-v2")).unwrap();
    std::fs::write(&s.file, &v2).unwrap();
    s.wait_version(&v2);
}

#[test]
fn the_live_content_written_again_is_not_a_swap() {
    let v1 = std::fs::read(component("tag-v1")).unwrap();
    let s = Stage::with_bytes(&v1, "", true);
    std::fs::write(&s.file, &v1).unwrap();
    // Past the quiet time: the write above is handled on its own.
    std::thread::sleep(Duration::from_millis(600));
    let v2 = std::fs::read(component("tag-v2")).unwrap();
    replace(&s.file, &v2);
    s.wait_version(&v2);
    assert_eq!(s.live.generation(), 2, "one swap, not two");
}

#[test]
fn broken_files_are_refused_and_the_old_version_runs_on() {
    let v1 = std::fs::read(component("tag-v1")).unwrap();
    let v2 = std::fs::read(component("tag-v2")).unwrap();
    let s = Stage::with_bytes(&v1, "", true);
    let cases: [(Vec<u8>, Refusal); 4] = [
        (v2[..v2.len() / 2].to_vec(), Refusal::NotAComponent),
        (b"not a component at all".to_vec(), Refusal::NotAComponent),
        (
            std::fs::read(component("wrong-world")).unwrap(),
            Refusal::WrongWorld,
        ),
        (
            std::fs::read(component("tag-fail-init")).unwrap(),
            Refusal::Init,
        ),
    ];
    let mut expected = std::collections::BTreeMap::new();
    for (bytes, reason) in cases {
        replace(&s.file, &bytes);
        let n = expected.entry(reason.as_str()).or_insert(0);
        *n += 1;
        s.wait_failures(reason, *n);
        assert_eq!(s.version(), short(&v1), "{} keeps v1", reason.as_str());
    }
    // A refused file stays refused while it does not change.
    let refused = std::fs::read(component("tag-fail-init")).unwrap();
    std::fs::write(&s.file, &refused).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    replace(&s.file, &v2);
    s.wait_version(&v2);
    assert_eq!(s.failures(Refusal::Init), 1, "refused once, not again");
    assert_eq!(s.failures(Refusal::NotAComponent), 2);
    assert_eq!(s.failures(Refusal::WrongWorld), 1);
    let text = s.metrics.render();
    let line = "partita_reload_failures_total{stage=\"s\",reason=\"wrong_world\"} 1";
    assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
}

#[test]
fn a_missing_file_is_refused_after_its_retries() {
    let s = Stage::start("tag-v1", "", true);
    let v1 = s.version();
    std::fs::remove_file(&s.file).unwrap();
    s.wait_failures(Refusal::Read, 1);
    assert_eq!(s.version(), v1);
}

#[test]
fn a_file_still_being_written_is_waited_for() {
    let s = Stage::start("tag-v1", "", true);
    let v2 = std::fs::read(component("tag-v2")).unwrap();
    let half = v2.len() / 2;
    std::fs::write(&s.file, &v2[..half]).unwrap();
    // Longer than the quiet time: the half file is tried and fails.
    std::thread::sleep(Duration::from_millis(150));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&s.file)
        .unwrap();
    std::io::Write::write_all(&mut f, &v2[half..]).unwrap();
    drop(f);
    s.wait_version(&v2);
    assert_eq!(s.failures(Refusal::NotAComponent), 0);
}

#[test]
fn a_declared_output_without_a_topic_is_refused() {
    let s = Stage::start("tag-v1", "", true);
    let v1 = s.version();
    // Without config, misbehave declares output "out"; the stage maps only
    // `default`.
    replace(&s.file, &std::fs::read(component("misbehave")).unwrap());
    s.wait_failures(Refusal::Outputs, 1);
    assert_eq!(s.version(), v1);
}

#[test]
fn a_reload_request_reloads_without_a_watcher() {
    let s = Stage::start("tag-v1", "", false);
    let v2 = std::fs::read(component("tag-v2")).unwrap();
    replace(&s.file, &v2);
    assert_eq!(s.trigger.reload_all(), 1);
    s.wait_version(&v2);
    assert_eq!(s.live.generation(), 2);
    // A reload of an unchanged file logs and swaps nothing: checked on the
    // real binary with SIGHUP (tests/tests/kafka_reload.rs).
}

#[test]
fn a_component_handed_over_from_code_is_tried_then_published() {
    let s = Stage::start("tag-v1", "", false);
    let v1 = s.version();
    let v2 = std::fs::read(component("tag-v2")).unwrap();
    // The stage's file holds the same, so that the reloader's check of the
    // file at start, whenever it runs, finds nothing to swap back.
    std::fs::write(&s.file, &v2).unwrap();
    let swapped = block_on(s.trigger.swap("s", "tag-v2.wasm", v2.clone()));
    assert_eq!(swapped, Ok(short(&v2)));
    assert_eq!(s.version(), short(&v2), "published before the answer");
    assert_eq!(s.live.generation(), 2);
    // The live version again: answered, nothing swapped.
    assert_eq!(
        block_on(s.trigger.swap("s", "again.wasm", v2.clone())),
        Ok(short(&v2))
    );
    assert_eq!(s.live.generation(), 2);

    // A broken component is refused and counted; the live version stays.
    let refused = block_on(
        s.trigger
            .swap("s", "broken.wasm", b"\0asm garbage".to_vec()),
    );
    let Err(SwapError::Refused { name, refused }) = refused else {
        panic!("{refused:?}")
    };
    assert_eq!(
        (name.as_str(), refused.reason),
        ("broken.wasm", Refusal::NotAComponent)
    );
    assert_eq!(s.failures(Refusal::NotAComponent), 1);
    // So is one that declares an output the stage maps no topic to.
    let misbehave = std::fs::read(component("misbehave")).unwrap();
    let refused = block_on(s.trigger.swap("s", "misbehave.wasm", misbehave));
    assert!(
        matches!(&refused, Err(SwapError::Refused { refused, .. }) if refused.reason == Refusal::Outputs),
        "{refused:?}"
    );
    assert_eq!(s.version(), short(&v2));

    assert_eq!(
        block_on(s.trigger.swap("nope", "x.wasm", v2.clone())),
        Err(SwapError::NoSuchStage {
            stage: "nope".into(),
            stages: "s".into()
        })
    );
    let mut s = s;
    drop(s.reloader.take());
    assert_eq!(
        block_on(s.trigger.swap("s", "tag-v1.wasm", v2)),
        Err(SwapError::NotRunning)
    );
    assert_ne!(v1, s.version());
}

/// Runs `f` to completion on a current-thread runtime.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_stage_that_follows_deployments_is_not_swapped_from_code() {
    let tag = std::fs::read(component("tag-v1")).unwrap();
    let s = Stage::with_bytes(&tag, "follow = \"deploy\"", false);
    let v2 = std::fs::read(component("tag-v2")).unwrap();
    assert_eq!(
        block_on(s.trigger.swap("s", "tag-v2.wasm", v2)),
        Err(SwapError::FollowsDeployments("s".into()))
    );
    assert_eq!(s.live.generation(), 1);
}

#[test]
fn workers_swap_between_batches_and_keep_the_state() {
    let count = std::fs::read(component("count")).unwrap();
    let s = Stage::with_bytes(&count, "", false);
    let (mut runner, mut hook) = s.runner(0);
    assert_eq!(run(&mut *runner, &batch(0, &["1", "2"])).len(), 2);
    assert!(
        hook.at_boundary(&mut *runner, &s.config).is_none(),
        "nothing new"
    );

    let twin = variant(&count, 7);
    let engine = engine();
    let processor: Processor = engine.load_bytes(Path::new("twin.wasm"), &twin).unwrap();
    s.live.publish(processor, Instant::now());
    // The batch in hand finishes on the old version.
    assert_eq!(runner.version(), short(&count));
    let routes = hook.at_boundary(&mut *runner, &s.config).expect("swapped");
    assert_eq!(routes, ["out"]);
    assert_eq!(runner.version(), short(&twin));
    let out = run(&mut *runner, &batch(2, &["4"]));
    assert_eq!(
        out,
        [r#"{"key":"k","count":3,"sum":7}"#],
        "totals carried over"
    );

    // A partition that starts now starts on the live version.
    let (other, _hook) = s.runner(1);
    assert_eq!(other.version(), short(&twin));
    assert_eq!(s.live.generation(), 2);
}

#[test]
fn a_version_rejecting_too_much_is_rolled_back() {
    let rollback = "rollback = { max_reject_share = 0.5, first_records = 10 }";
    let v1 = std::fs::read(component("tag-v1")).unwrap();
    let s = Stage::with_bytes(&v1, rollback, true);
    let (mut runner, mut hook) = s.runner(0);
    let rejects = std::fs::read(component("tag-rejects")).unwrap();
    replace(&s.file, &rejects);
    s.wait_version(&rejects);
    hook.at_boundary(&mut *runner, &s.config).expect("swapped");
    let values = ["a"; 6];
    let out = run(&mut *runner, &batch(0, &values));
    assert!(out.iter().all(|o| o.starts_with("!tag-rejects")), "{out:?}");
    hook.after_batch(6, 6);
    assert_eq!(s.version(), short(&v1), "rolled back");
    assert_eq!(s.failures(Refusal::Rollback), 1);
    hook.at_boundary(&mut *runner, &s.config)
        .expect("swapped back");
    assert_eq!(run(&mut *runner, &batch(6, &["a"])), ["0:6:tag-v1"]);
    // The rolled-back file is not swapped in again while it is unchanged.
    let generation = s.live.generation();
    std::fs::write(&s.file, &rejects).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let v2 = std::fs::read(component("tag-v2")).unwrap();
    replace(&s.file, &v2);
    s.wait_version(&v2);
    assert_eq!(
        s.live.generation(),
        generation + 1,
        "no swap to the rolled-back file"
    );
}

#[test]
fn a_version_within_its_share_stays() {
    let rollback = "rollback = { max_reject_share = 0.5, first_records = 10 }";
    let s = Stage::start("tag-v1", rollback, false);
    let (mut runner, mut hook) = s.runner(0);
    let v2 = std::fs::read(component("tag-v2")).unwrap();
    replace(&s.file, &v2);
    s.trigger.reload_all();
    s.wait_version(&v2);
    hook.at_boundary(&mut *runner, &s.config).expect("swapped");
    hook.after_batch(10, 5);
    hook.after_batch(10, 10); // past its first 10 records: not judged
    assert_eq!(s.version(), short(&v2));
    assert_eq!(s.failures(Refusal::Rollback), 0);
}

#[test]
fn a_partition_whose_state_fails_the_new_init_keeps_the_old_version() {
    let misbehave = std::fs::read(component("misbehave")).unwrap();
    let s = Stage::with_outputs(&misbehave, "out", "", false);
    let (mut runner, mut hook) = s.runner(0);
    // This partition's state now makes every later init fail; the trial
    // instance, with empty state, passes.
    assert_eq!(
        run(&mut *runner, &batch(0, &["arm-init-failure"])),
        ["arm-init-failure"]
    );
    let twin = variant(&misbehave, 3);
    let processor = engine().load_bytes(Path::new("twin.wasm"), &twin).unwrap();
    s.live.publish(processor, Instant::now());
    assert!(hook.at_boundary(&mut *runner, &s.config).is_none());
    assert_eq!(
        runner.version(),
        short(&misbehave),
        "the old version runs on"
    );
    assert_eq!(s.failures(Refusal::Init), 1);
    assert_eq!(run(&mut *runner, &batch(1, &["x"])), ["x"]);
    // Asked again at the next boundary? No: it answered for this version.
    assert!(hook.at_boundary(&mut *runner, &s.config).is_none());
    assert_eq!(s.failures(Refusal::Init), 1);
}

#[test]
fn a_version_that_cannot_be_instantiated_is_refused() {
    // Under a 1 MiB cap the Rust guests cannot even be instantiated: their
    // initial memory is larger.
    let s = Stage::start("tag-v1", "memory_mb = 1", true);
    let v1 = s.version();
    replace(&s.file, &std::fs::read(component("tag-v2")).unwrap());
    s.wait_failures(Refusal::Instantiate, 1);
    assert_eq!(s.version(), v1);
}

#[test]
fn a_worker_that_restarts_its_runner_stays_counted() {
    let v1 = std::fs::read(component("tag-v1")).unwrap();
    let s = Stage::with_bytes(&v1, "", false);
    let (mut runner, first) = s.runner(0);
    // A new runner's hook is registered before the old one is dropped.
    let mut second = SwapHook::new(s.live.clone(), 0, runner.version());
    drop(first);
    let v2 = std::fs::read(component("tag-v2")).unwrap();
    let processor = engine().load_bytes(Path::new("v2.wasm"), &v2).unwrap();
    s.live.publish(processor, Instant::now());
    assert_eq!(s.live.pending(), [0], "partition 0 still served");
    second
        .at_boundary(&mut *runner, &s.config)
        .expect("swapped");
    assert!(s.live.pending().is_empty());
    drop(second);
    let processor = engine().load_bytes(Path::new("v1.wasm"), &v1).unwrap();
    s.live.publish(processor, Instant::now());
    assert!(s.live.pending().is_empty(), "no partition served any more");
}
