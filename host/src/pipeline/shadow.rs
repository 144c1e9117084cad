//! Shadow runs: a stage's candidate processor run beside the live one on
//! the same records, its outputs compared record by record and written to
//! shadow topics, never to the live ones (docs/DEPLOY.md, "Candidates").
//!
//! ```text
//! worker, per batch, while the stage has a candidate:
//!   before the live run: a copy of the partition's state, when the lane
//!     has none in step for it (a new candidate, or one that fell behind)
//!   the live run, each record's live result kept
//!   try_send(Job) to the stage's lane; lane full: the batch is skipped
//! lane thread, one per stage:
//!   per partition, a candidate instance with its own in-memory state
//!   (started from the copy) runs the batch; each record's outputs are
//!   compared with the live ones; outputs to <topic>.shadow; a sample of
//!   differences to <group>.<stage>.diffs
//! ```
//!
//! The live path never waits for the candidate: a full lane skips the
//! batch (counted), and the partition's candidate starts again from a new
//! copy of the live state at most every [`RESEED_EVERY`]. A candidate that
//! traps, loops or fails its `init` only changes its own counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use partita_compare::diff::{Parsed, Rules, compare};
use partita_wire::{BatchWriter, OutputRef, RecordRef};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};

use super::runner::BatchRunner;
use crate::config::{KafkaConfig, StageConfig, shadow_topic};
use crate::deploy::ShadowCounts;
use crate::engine::{Counters, Instance, InstanceSetup, Processor, RecordOutcome};
use crate::kafka::client::producer_config;
use crate::state::{ChangeSet, MemoryState, StateStore};
use crate::tables::Tables;

/// Batches a lane holds before the next one is skipped.
const LANE_BATCHES: usize = 64;
/// How often a partition whose candidate fell behind starts again.
pub const RESEED_EVERY: Duration = Duration::from_secs(10);
/// Differences written to the diff topic per second, at most.
const DIFFS_PER_SECOND: u32 = 20;

/// One output of a record, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Out {
    /// The output's name.
    pub output: String,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Option<Vec<u8>>,
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordResult {
    /// Accepted, with these outputs.
    Outputs(Vec<Out>),
    /// Rejected or failed, with the reason.
    Bad(String),
}

impl RecordResult {
    /// The result of `record` as a runner reported it; `names` maps output
    /// indexes to names.
    pub fn of(
        record: &RecordRef<'_>,
        outcome: &RecordOutcome<'_>,
        names: &[String],
    ) -> RecordResult {
        match outcome {
            RecordOutcome::Ok(outputs) => RecordResult::Outputs(
                outputs
                    .iter()
                    .map(|o: OutputRef<'_>| Out {
                        output: names.get(o.output as usize).cloned().unwrap_or_default(),
                        key: o.key.or_input(record.key).map(<[u8]>::to_vec),
                        value: o.value.or_input(record.value).map(<[u8]>::to_vec),
                    })
                    .collect(),
            ),
            RecordOutcome::Rejected(reason) => RecordResult::Bad(format!("rejected: {reason}")),
            RecordOutcome::Failed(e) => RecordResult::Bad(e.to_string()),
        }
    }
}

/// How the candidate's result compares with the live one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The same outputs (or both rejected or failed).
    Same,
    /// Both accepted it, with other outputs.
    Differ,
    /// The live processor accepted it; the candidate rejected or failed.
    CandidateFailed,
    /// The candidate accepted it; the live processor rejected or failed.
    LiveFailed,
}

impl Class {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Same => "same",
            Class::Differ => "differ",
            Class::CandidateFailed => "candidate_failed",
            Class::LiveFailed => "live_failed",
        }
    }
}

/// Compares one record's results; for `Differ`, the JSON fields that
/// differ (empty when the values are not both JSON, or outputs differ in
/// number, name or key).
pub(crate) fn classify(
    live: &RecordResult,
    candidate: &RecordResult,
    rules: &Rules,
) -> (Class, Vec<String>) {
    match (live, candidate) {
        (RecordResult::Bad(_), RecordResult::Bad(_)) => (Class::Same, Vec::new()),
        (RecordResult::Outputs(_), RecordResult::Bad(_)) => (Class::CandidateFailed, Vec::new()),
        (RecordResult::Bad(_), RecordResult::Outputs(_)) => (Class::LiveFailed, Vec::new()),
        (RecordResult::Outputs(l), RecordResult::Outputs(c)) => {
            if l.len() != c.len()
                || l.iter()
                    .zip(c)
                    .any(|(a, b)| a.output != b.output || a.key != b.key)
            {
                return (Class::Differ, Vec::new());
            }
            let mut fields = Vec::new();
            let mut differ = false;
            for (a, b) in l.iter().zip(c) {
                if a.value == b.value {
                    continue;
                }
                let (pa, pb) = (
                    Parsed::new(a.value.as_deref()),
                    Parsed::new(b.value.as_deref()),
                );
                if let Some(d) = compare(&pa, &pb, rules) {
                    differ = true;
                    fields.extend(d.fields().into_iter().map(String::from));
                }
            }
            fields.sort();
            fields.dedup();
            (if differ { Class::Differ } else { Class::Same }, fields)
        }
    }
}

/// Records compared, by class, over the run.
#[derive(Debug, Default)]
pub struct ShadowTotals {
    same: AtomicU64,
    differ: AtomicU64,
    candidate_failed: AtomicU64,
    live_failed: AtomicU64,
    skipped: AtomicU64,
    /// Fields that differed, with how often.
    fields: Mutex<HashMap<String, u64>>,
}

impl ShadowTotals {
    fn count(&self, class: Class) {
        let n = match class {
            Class::Same => &self.same,
            Class::Differ => &self.differ,
            Class::CandidateFailed => &self.candidate_failed,
            Class::LiveFailed => &self.live_failed,
        };
        n.fetch_add(1, Relaxed);
    }

    /// Starts counting again (a new candidate).
    fn reset(&self) {
        for n in [
            &self.same,
            &self.differ,
            &self.candidate_failed,
            &self.live_failed,
            &self.skipped,
        ] {
            n.store(0, Relaxed);
        }
        self.fields
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Counts records the candidate did not see.
    pub fn skip(&self, records: u64) {
        self.skipped.fetch_add(records, Relaxed);
    }

    /// The counts so far, for the host's report.
    pub fn counts(&self) -> ShadowCounts {
        ShadowCounts {
            same: self.same.load(Relaxed),
            differ: self.differ.load(Relaxed),
            candidate_failed: self.candidate_failed.load(Relaxed),
            live_failed: self.live_failed.load(Relaxed),
            skipped: self.skipped.load(Relaxed),
        }
    }

    /// (class, count) for every class, for the metrics.
    pub fn by_class(&self) -> [(&'static str, u64); 5] {
        let c = self.counts();
        [
            ("same", c.same),
            ("differ", c.differ),
            ("candidate_failed", c.candidate_failed),
            ("live_failed", c.live_failed),
            ("skipped", c.skipped),
        ]
    }

    /// (field, count) of every field that differed, in field order.
    pub fn by_field(&self) -> Vec<(String, u64)> {
        let fields = self.fields.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<(String, u64)> = fields.iter().map(|(f, n)| (f.clone(), *n)).collect();
        all.sort();
        all
    }
}

/// A batch for the lane.
pub(crate) struct Job {
    partition: i32,
    generation: u64,
    /// The partition's live state before the batch, when the lane must
    /// start the partition's candidate (again).
    seed: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    batch: BatchWriter,
    live: Vec<RecordResult>,
}

/// The candidate of one stage and its lane.
pub struct Shadow {
    stage: String,
    /// The candidate's generation; 0 while there is none.
    generation: AtomicU64,
    candidate: Arc<Mutex<(u64, Option<Processor>)>>,
    jobs: SyncSender<Job>,
    totals: Arc<ShadowTotals>,
}

impl Shadow {
    /// The shadow of `stage`, with no candidate yet; starts its lane thread
    /// (idle until a candidate is published).
    pub(crate) fn start(
        stage: &StageConfig,
        kafka: &KafkaConfig,
        tables: Arc<dyn Tables>,
    ) -> anyhow::Result<Arc<Shadow>> {
        let (jobs, lane) = mpsc::sync_channel(LANE_BATCHES);
        let candidate = Arc::new(Mutex::new((0, None)));
        let totals = Arc::new(ShadowTotals::default());
        let producer: ThreadedProducer<DefaultProducerContext> = producer_config(kafka)
            .set("client.id", "partita-shadow")
            .create()?;
        let mut l = Lane {
            stage: stage.clone(),
            diffs_topic: kafka.diffs_topic(&stage.name),
            tables,
            candidate: candidate.clone(),
            totals: totals.clone(),
            producer,
            partitions: HashMap::new(),
            rules: stage.reload.shadow.rules(),
            diffs: (Instant::now(), 0),
        };
        std::thread::Builder::new()
            .name(format!("{}-shadow", stage.name))
            .spawn(move || l.run(lane))?;
        Ok(Arc::new(Shadow {
            stage: stage.name.clone(),
            generation: AtomicU64::new(0),
            candidate,
            jobs,
            totals,
        }))
    }

    /// Sets the candidate (`None` withdraws it); partitions start it at
    /// their next batch.
    pub fn publish(&self, processor: Option<Processor>) {
        let mut c = self.candidate.lock().unwrap_or_else(|e| e.into_inner());
        let generation = c.0 + 1;
        match &processor {
            Some(p) => tracing::info!(
                "stage \"{}\": candidate {} runs beside the live processor from the next batch",
                self.stage,
                p.version()
            ),
            None => tracing::info!("stage \"{}\": candidate withdrawn", self.stage),
        }
        let running = processor.is_some();
        if running {
            self.totals.reset();
        }
        *c = (generation, processor);
        self.generation
            .store(if running { generation } else { 0 }, Relaxed);
    }

    /// The candidate, if any.
    pub fn current(&self) -> Option<Processor> {
        self.candidate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// The comparison so far.
    pub fn totals(&self) -> &Arc<ShadowTotals> {
        &self.totals
    }
}

/// A worker's side of the shadow: whether the lane has the partition's
/// candidate in step.
#[derive(Default)]
pub(crate) struct Feed {
    /// The candidate generation the lane was last seeded with.
    generation: u64,
    in_step: bool,
    last_seed: Option<Instant>,
}

/// What the worker does for the shadow around one batch.
pub(crate) enum Plan {
    /// Nothing: no candidate.
    None,
    /// The candidate is behind: the batch is not offered.
    Skip,
    /// Offer the batch, with the state copy when there is one.
    Offer {
        generation: u64,
        seed: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    },
}

impl Feed {
    /// Before the live run of a batch.
    pub fn plan(&mut self, shadow: &Shadow, runner: &mut dyn BatchRunner) -> Plan {
        let generation = shadow.generation.load(Relaxed);
        if generation == 0 {
            self.generation = 0;
            return Plan::None;
        }
        if generation == self.generation && self.in_step {
            return Plan::Offer {
                generation,
                seed: None,
            };
        }
        if generation == self.generation
            && self.last_seed.is_some_and(|t| t.elapsed() < RESEED_EVERY)
        {
            return Plan::Skip;
        }
        let seed = match runner.state() {
            Some(store) => match store.scan(&[], None, usize::MAX) {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::warn!(
                        "stage \"{}\": cannot copy the state for the candidate: {e:#}",
                        shadow.stage
                    );
                    return Plan::Skip;
                }
            },
            None => Vec::new(),
        };
        self.generation = generation;
        self.in_step = true;
        self.last_seed = Some(Instant::now());
        Plan::Offer {
            generation,
            seed: Some(seed),
        }
    }

    /// After the live run: offers the batch and its live results to the
    /// lane; a full lane skips it and puts the candidate out of step.
    pub fn offer(
        &mut self,
        shadow: &Shadow,
        plan: Plan,
        partition: i32,
        batch: &BatchWriter,
        live: Vec<RecordResult>,
    ) {
        let records = batch.len() as u64;
        let Plan::Offer { generation, seed } = plan else {
            if matches!(plan, Plan::Skip) {
                shadow.totals.skip(records);
            }
            return;
        };
        let job = Job {
            partition,
            generation,
            seed,
            batch: batch.clone(),
            live,
        };
        match shadow.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                if self.in_step {
                    tracing::warn!(
                        "stage \"{}\" partition {partition}: the candidate fell behind; \
                         it skips batches and starts again from the live state",
                        shadow.stage
                    );
                }
                self.in_step = false;
                shadow.totals.skip(records);
            }
        }
    }
}

/// The lane thread of one stage.
struct Lane {
    stage: StageConfig,
    diffs_topic: String,
    tables: Arc<dyn Tables>,
    candidate: Arc<Mutex<(u64, Option<Processor>)>>,
    totals: Arc<ShadowTotals>,
    producer: ThreadedProducer<DefaultProducerContext>,
    /// Per partition: the candidate generation and its instance (`None`
    /// when it could not start).
    partitions: HashMap<i32, (u64, Option<Instance>)>,
    rules: Rules,
    /// The second the diff sample counts in, and how many were written.
    diffs: (Instant, u32),
}

impl Lane {
    fn run(&mut self, jobs: Receiver<Job>) {
        loop {
            match jobs.recv_timeout(Duration::from_secs(1)) {
                Ok(job) => self.job(job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // A withdrawn candidate's instances are let go.
            if !self.partitions.is_empty() && self.candidate_now().1.is_none() {
                self.partitions.clear();
            }
        }
    }

    /// The candidate's generation and processor.
    fn candidate_now(&self) -> (u64, Option<Processor>) {
        let c = self.candidate.lock().unwrap_or_else(|e| e.into_inner());
        (c.0, c.1.clone())
    }

    fn job(&mut self, job: Job) {
        let (generation, processor) = self.candidate_now();
        let records = job.batch.len() as u64;
        let Some(processor) = processor.filter(|_| generation == job.generation) else {
            // Withdrawn or replaced since the batch was offered.
            return;
        };
        if let Some(seed) = job.seed {
            let instance = self.start(&processor, job.partition, seed);
            self.partitions
                .insert(job.partition, (generation, instance));
        }
        let Some((g, slot)) = self.partitions.get_mut(&job.partition) else {
            self.totals.skip(records);
            return;
        };
        if *g != generation {
            self.totals.skip(records);
            return;
        }
        let Some(instance) = slot else {
            for _ in 0..records {
                self.totals.count(Class::CandidateFailed);
            }
            return;
        };
        let names = instance.outputs().to_vec();
        let mut results = Vec::with_capacity(job.live.len());
        let outcome = instance.process(&job.batch);
        for (record, result) in outcome.iter() {
            let r = RecordResult::of(&record, &result, &names);
            results.push((record.topic.to_string(), record.partition, record.offset, r));
        }
        drop(outcome);
        for ((topic, partition, offset, candidate), live) in results.into_iter().zip(&job.live) {
            let (class, fields) = classify(live, &candidate, &self.rules);
            self.totals.count(class);
            if !fields.is_empty() {
                let mut counts = self.totals.fields.lock().unwrap_or_else(|e| e.into_inner());
                for f in &fields {
                    *counts.entry(f.clone()).or_default() += 1;
                }
            }
            if let RecordResult::Outputs(outs) = &candidate {
                self.write_shadow(outs);
            }
            if class != Class::Same {
                self.write_diff(
                    class,
                    &fields,
                    (&topic, partition, offset),
                    live,
                    &candidate,
                );
            }
        }
    }

    /// Starts the candidate for `partition` with a state copied from the
    /// live one; `None` (logged) when it cannot start.
    fn start(
        &self,
        processor: &Processor,
        partition: i32,
        seed: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Option<Instance> {
        let mut state = MemoryState::new();
        let changes: ChangeSet = seed.into_iter().map(|(k, v)| (k, Some(v))).collect();
        if let Err(e) = state.commit(&changes) {
            tracing::warn!("stage \"{}\": candidate state: {e:#}", self.stage.name);
            return None;
        }
        let setup = InstanceSetup {
            stage: format!("{} (candidate)", self.stage.name),
            partition,
            config: self.stage.config.clone(),
            state: Box::new(state),
            tables: self.tables.clone(),
            limits: self.stage.limits,
            counters: Arc::new(Counters::new()),
        };
        match processor.instantiate(setup) {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::warn!(
                    "stage \"{}\" partition {partition}: the candidate {} cannot start: {e}",
                    self.stage.name,
                    processor.version()
                );
                None
            }
        }
    }

    fn write_shadow(&self, outs: &[Out]) {
        for o in outs {
            let Some(topic) = self.stage.output_topic(&o.output) else {
                continue;
            };
            let topic = shadow_topic(topic);
            let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topic);
            if let Some(k) = &o.key {
                r = r.key(k);
            }
            if let Some(v) = &o.value {
                r = r.payload(v);
            }
            if let Err((e, _)) = self.producer.send(r) {
                tracing::debug!("shadow output to {topic}: {e}");
            }
        }
    }

    fn write_diff(
        &mut self,
        class: Class,
        fields: &[String],
        (topic, partition, offset): (&str, i32, i64),
        live: &RecordResult,
        candidate: &RecordResult,
    ) {
        if self.diffs.0.elapsed() >= Duration::from_secs(1) {
            self.diffs = (Instant::now(), 0);
        }
        if self.diffs.1 >= DIFFS_PER_SECOND {
            return;
        }
        self.diffs.1 += 1;
        let value = serde_json::json!({
            "stage": self.stage.name,
            "class": class.as_str(),
            "fields": fields,
            "input": {"topic": topic, "partition": partition, "offset": offset},
            "live": result_json(live),
            "candidate": result_json(candidate),
        });
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        let key = format!("{topic}/{partition}/{offset}");
        let r: BaseRecord<'_, str, [u8]> = BaseRecord::to(&self.diffs_topic)
            .key(key.as_str())
            .payload(bytes.as_slice());
        if let Err((e, _)) = self.producer.send(r) {
            tracing::debug!("difference to {}: {e}", self.diffs_topic);
        }
    }
}

fn result_json(r: &RecordResult) -> serde_json::Value {
    let text = |b: &Option<Vec<u8>>| {
        b.as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    match r {
        RecordResult::Bad(reason) => serde_json::json!({"error": reason}),
        RecordResult::Outputs(outs) => serde_json::Value::Array(
            outs.iter()
                .map(|o| serde_json::json!({"output": o.output, "key": text(&o.key), "value": text(&o.value)}))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Pipeline;
    use crate::config::tests::{component, engine};
    use crate::tables::MemoryTables;

    /// A shadow whose candidate is the `misbehave` test guest (deadline
    /// 100 ms), and a batch of `values` on partition 0.
    fn misbehaving(values: &[&str]) -> (Arc<Shadow>, BatchWriter, Vec<RecordResult>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pipeline.toml");
        let text = format!(
            "[kafka]\nbootstrap = \"127.0.0.1:1\"\ngroup = \"g\"\n\n[[stage]]\nname = \"m\"\n\
             processor = {:?}\ninput = \"in\"\noutputs = {{ out = \"out\" }}\ndeadline_ms = 100\n",
            component("misbehave").display().to_string()
        );
        let pipeline = Pipeline::parse(&file, &text).unwrap();
        let stage = &pipeline.stages[0];
        let shadow = Shadow::start(stage, &pipeline.kafka, Arc::new(MemoryTables::new())).unwrap();
        shadow.publish(Some(engine().load(&component("misbehave")).unwrap()));
        let mut batch = BatchWriter::new(&["in"]);
        let mut live = Vec::new();
        for (i, v) in values.iter().enumerate() {
            batch.push(
                0,
                0,
                i as i64,
                0,
                Some(b"k"),
                Some(v.as_bytes()),
                std::iter::empty(),
            );
            live.push(RecordResult::Outputs(vec![Out {
                output: "out".into(),
                key: Some(b"k".to_vec()),
                value: Some(v.as_bytes().to_vec()),
            }]));
        }
        (shadow, batch, live)
    }

    fn seen(t: &ShadowTotals) -> u64 {
        t.by_class().iter().map(|(_, n)| n).sum()
    }

    #[test]
    fn a_candidate_that_traps_or_loops_only_changes_its_own_counts() {
        let (shadow, batch, live) = misbehaving(&["a", "panic", "loop", "b"]);
        let mut feed = Feed::default();
        let mut runner = MemoryRunner;
        let plan = feed.plan(&shadow, &mut runner);
        assert!(matches!(plan, Plan::Offer { seed: Some(_), .. }));
        feed.offer(&shadow, plan, 0, &batch, live);
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen(shadow.totals()) < 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let c = shadow.totals().counts();
        assert_eq!((c.same, c.candidate_failed, c.skipped), (2, 2, 0), "{c:?}");
        // The next batch is offered without a new copy of the state.
        assert!(matches!(
            feed.plan(&shadow, &mut runner),
            Plan::Offer { seed: None, .. }
        ));
    }

    #[test]
    fn a_candidate_that_falls_behind_skips_batches_and_starts_again_later() {
        let (shadow, batch, live) = misbehaving(&["loop"]);
        let mut feed = Feed::default();
        let mut runner = MemoryRunner;
        // Each batch takes the lane the 100 ms deadline: it falls behind.
        let mut skipped_at = None;
        for i in 0..(LANE_BATCHES * 2) {
            let plan = feed.plan(&shadow, &mut runner);
            if matches!(plan, Plan::Skip) {
                skipped_at = Some(i);
                break;
            }
            feed.offer(&shadow, plan, 0, &batch, live.clone());
        }
        assert!(skipped_at.is_some(), "the lane never filled up");
        assert!(shadow.totals().counts().skipped >= 1);
        // Within RESEED_EVERY it stays out of step.
        assert!(matches!(feed.plan(&shadow, &mut runner), Plan::Skip));
        // A new candidate starts again at once, from a new copy.
        shadow.publish(shadow.current());
        assert!(matches!(
            feed.plan(&shadow, &mut runner),
            Plan::Offer { seed: Some(_), .. }
        ));
    }

    /// A live runner with no state.
    struct MemoryRunner;

    impl BatchRunner for MemoryRunner {
        fn outputs(&self) -> &[String] {
            &[]
        }

        fn version(&self) -> &str {
            "native"
        }

        fn run(&mut self, _: &BatchWriter, _: &mut dyn FnMut(RecordRef<'_>, RecordOutcome<'_>)) {}
    }

    fn out(value: &str) -> Out {
        Out {
            output: "default".into(),
            key: Some(b"k".to_vec()),
            value: Some(value.as_bytes().to_vec()),
        }
    }

    #[test]
    fn records_are_classed_with_the_fields_that_differ() {
        let rules = Rules::default();
        let ok = |v: &str| RecordResult::Outputs(vec![out(v)]);
        let bad = RecordResult::Bad("rejected: no".into());
        assert_eq!(classify(&ok("1"), &ok("1"), &rules), (Class::Same, vec![]));
        assert_eq!(classify(&bad, &bad, &rules), (Class::Same, vec![]));
        assert_eq!(classify(&ok("1"), &bad, &rules).0, Class::CandidateFailed);
        assert_eq!(classify(&bad, &ok("1"), &rules).0, Class::LiveFailed);
        let (class, fields) = classify(
            &ok(r#"{"id":1,"amount":12.345}"#),
            &ok(r#"{"id":1,"amount":12.35}"#),
            &rules,
        );
        assert_eq!(
            (class, fields),
            (Class::Differ, vec!["/amount".to_string()])
        );
        // The stage's rules, as partita validate applies them.
        let tolerant = crate::config::ShadowRules {
            ignore: vec!["/at".into()],
            tolerance: vec!["/amount=0.01".into()],
        }
        .rules();
        assert_eq!(
            classify(
                &ok(r#"{"amount":12.345,"at":1}"#),
                &ok(r#"{"amount":12.35,"at":2}"#),
                &tolerant
            ),
            (Class::Same, vec![])
        );
        // Same JSON written another way is the same.
        assert_eq!(
            classify(&ok(r#"{"a":1,"b":2}"#), &ok(r#"{"b":2, "a":1}"#), &rules).0,
            Class::Same
        );
        // Another number of outputs, or another key.
        assert_eq!(
            classify(&ok("1"), &RecordResult::Outputs(vec![]), &rules).0,
            Class::Differ
        );
        let mut other = out("1");
        other.key = None;
        assert_eq!(
            classify(&ok("1"), &RecordResult::Outputs(vec![other]), &rules).0,
            Class::Differ
        );
    }
}
