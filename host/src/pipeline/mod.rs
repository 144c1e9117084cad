//! Running a pipeline against Kafka: what `partita run` does
//! (docs/PIPELINE.md describes the guarantees).
//!
//! [`run`] checks the processors, waits for the cluster, checks or creates
//! the topics, starts the reference tables (waiting until they have caught
//! up), then runs every stage until the
//! `shutdown` future completes or a stage fails:
//!
//! ```text
//! stage consumer (group <group>.<stage>, one thread)
//!   └─ rebalance → a worker per assigned partition, run in turns by a
//!      pool of one thread per core
//!        partition queue(s) → batch → processor → producer → acks → commit
//! ```
//!
//! - `batch`: closing batches, encoding records from the consumer.
//! - `ledger`: batches in flight and the offsets that may be committed.
//! - [`dlq`]: dead-letter headers and error kinds.
//! - `runner`: the processor behind a worker (an engine instance).
//! - [`reload`]: hot reload: watching processor files, trying new versions,
//!   swapping them in between batches.
//! - `durable`: durable state: restore on assignment, changelog writes,
//!   checkpoints, clean close.
//! - `timers`: when a worker calls the processor's `on-timer`.
//! - `health`: the stage's group seen from outside: lag, partitions
//!   nobody owns (then a rejoin), partitions that stop advancing.
//! - [`shadow`]: a stage's candidate run beside the live processor.
//! - `worker`: one (stage, partition), run in turns.
//! - `pool`: the few threads per stage that give the workers their turns.
//! - `stage`: one stage's consumer and its rebalance callbacks.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{self, Follow, KafkaConfig, Pipeline, StageConfig};
use crate::deploy;
use crate::engine::{Engine, EngineConfig};
use crate::kafka::admin::{Admin, TopicPartitions, TopicsError};
use crate::kafka::produce::Producer;
use crate::kafka::table_feeds::TableFeeds;
use crate::metrics::{self, Metrics, StageMetrics};

pub(crate) mod batch;
pub mod dlq;
mod durable;
mod failure;
mod health;
pub(crate) mod ledger;
mod pool;
pub mod reload;
mod runner;
pub mod shadow;
mod stage;
mod timers;
mod worker;

pub use failure::{BoxError, RunError, RunFailure, SetupError, StageFailure};
use runner::{EngineRunners, RunnerFactory};

/// How to run, beyond the pipeline file.
pub struct RunOptions {
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// How often to log the progress line.
    pub progress_every: Duration,
    /// The engine to use; `None` builds one that caches compiled
    /// components in `cache_dir`.
    pub engine: Option<Engine>,
    /// Where a new engine caches compiled components (`None`: no cache;
    /// the command line uses `~/.cache/partita/compiled`).
    pub cache_dir: Option<PathBuf>,
    /// Whether each stage's processor file is watched for hot reload
    /// (`reload` asks for a reload either way).
    pub watch_files: bool,
    /// The metrics registry to fill; `None` makes a new one.
    pub metrics: Option<Arc<Metrics>>,
    /// Asks the run to reload every stage's processor (SIGHUP does).
    pub reload: reload::ReloadTrigger,
    /// This host's name in its deploy reports (`partita deploy --list`);
    /// `None`: the machine's host name and the process id.
    pub host_name: Option<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            metrics_addr: None,
            progress_every: Duration::from_secs(5),
            engine: None,
            cache_dir: None,
            watch_files: true,
            metrics: None,
            reload: reload::ReloadTrigger::new(),
            host_name: None,
        }
    }
}

/// Stop and failure, shared by every thread of a run.
#[derive(Default)]
pub(crate) struct RunControl {
    stopping: AtomicBool,
    failure: Mutex<Option<RunFailure>>,
    wake: tokio::sync::Notify,
}

impl RunControl {
    /// True once the run is stopping.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Relaxed)
    }

    /// Stops the run.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Relaxed);
        self.wake.notify_one();
    }

    /// Stops the run because `stage` failed on `partition` (`None`: its
    /// consumer); the first failure is kept.
    pub(crate) fn fail(&self, stage: &str, partition: Option<i32>, failure: StageFailure) {
        let failure = RunFailure {
            stage: stage.to_string(),
            partition,
            failure,
        };
        tracing::error!("{}", failure::chain(&failure));
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(failure);
        self.stop();
    }

    /// The failure that stopped the run, taken out.
    fn take_failure(&self) -> Option<RunFailure> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    async fn stopped(&self) {
        while !self.stopping() {
            self.wake.notified().await;
        }
    }
}

/// What every worker of a stage shares.
pub(crate) struct StageShared {
    /// The stage.
    pub config: StageConfig,
    /// The `[kafka]` table.
    pub kafka: KafkaConfig,
    /// The process's producer.
    pub producer: Producer,
    /// Starts a partition's processor.
    pub runners: Arc<dyn RunnerFactory>,
    /// The stage's metrics.
    pub metrics: Arc<StageMetrics>,
    /// Every metric, for the partitions' counters.
    pub all_metrics: Arc<Metrics>,
    /// Stop and failure of the run.
    pub control: Arc<RunControl>,
    /// How often workers commit.
    pub commit_interval: Duration,
    /// Per input, its dead-letter topic (`None` unless `on_error = "dlq"`).
    pub dlq_topics: Vec<Option<String>>,
    /// Set by the group watcher: leave the group and join it again.
    pub rejoin: AtomicBool,
}

/// Runs `pipeline` until `shutdown` completes (then stops cleanly:
/// in-flight batches finished, outputs acknowledged, offsets committed) or
/// a stage fails.
pub async fn run(
    pipeline: Pipeline,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let mut shutdown = std::pin::pin!(shutdown);
    let engine = match options.engine.clone() {
        Some(e) => e,
        None => Engine::new(EngineConfig::with_cache(options.cache_dir.clone()))
            .map_err(|e| SetupError::caused("cannot start the engine", e))?,
    };
    let mut checked = {
        let (pipeline, engine) = (pipeline.clone(), engine.clone());
        tokio::task::spawn_blocking(move || config::check_processors(&pipeline, &engine))
            .await
            .map_err(|e| SetupError::caused("checking the processors", e))??
    };
    for (stage, c) in pipeline.stages.iter().zip(&checked) {
        tracing::info!(
            "stage \"{}\": processor {} version {} (outputs: {})",
            stage.name,
            stage.processor,
            c.processor.version(),
            c.outputs.join(", ")
        );
    }

    let metrics = options.metrics.clone().unwrap_or_default();
    let server = match options.metrics_addr {
        Some(addr) => {
            let listener = metrics::bind(addr)
                .await
                .map_err(|e| SetupError::caused(format!("cannot serve metrics on {addr}"), e))?;
            tracing::info!(
                "metrics at http://{}/metrics",
                listener.local_addr().unwrap_or(addr)
            );
            Some(AbortOnDrop(tokio::spawn(metrics::serve(
                metrics.clone(),
                listener,
            ))))
        }
        None => None,
    };

    let kafka = &pipeline.kafka;
    let admin = Admin::new(kafka).map_err(topics_not_ready)?;
    tracing::info!("connecting to Kafka at {}", kafka.bootstrap);
    let own = pipeline.own_topics();
    let mut needed = pipeline.topics();
    needed.extend(
        own.iter()
            .filter(|t| !needed.contains(t))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let topics = tokio::select! {
        t = admin.ensure_topics(kafka, &needed, &own) => t.map_err(topics_not_ready)?,
        () = &mut shutdown => return Ok(()),
    };
    check_copartitioned(&pipeline, &topics)?;
    tokio::select! {
        r = durable::ensure_changelogs(&pipeline, &topics) => r.map_err(|e| SetupError::broker("the changelog topics are not ready", e))?,
        () = &mut shutdown => return Ok(()),
    }
    let durable = Arc::new(
        durable::Durable::new(&pipeline, metrics.clone())
            .map_err(|e| SetupError::caused("cannot read the changelogs", e))?,
    );
    let deployed = tokio::select! {
        r = start_with_deployed(&pipeline, &engine, &mut checked) => r?,
        () = &mut shutdown => return Ok(()),
    };

    let feeds = {
        let (kafka, stages, topics, metrics) = (
            kafka.clone(),
            pipeline.stages.clone(),
            topics.clone(),
            metrics.clone(),
        );
        tokio::task::spawn_blocking(move || TableFeeds::start(&kafka, &stages, &topics, &metrics))
            .await
            .map_err(|e| SetupError::caused("starting the reference tables", e))?
            .map_err(|e| SetupError::broker("starting the reference tables", e))?
    };
    tokio::select! {
        () = feeds.wait(&pipeline.stages) => {}
        () = &mut shutdown => return Ok(()),
    }
    let mut stages: Vec<(StageConfig, Arc<dyn RunnerFactory>)> = Vec::new();
    let mut reloading = Vec::new();
    let mut followed = Vec::new();
    for (i, (stage, c)) in pipeline.stages.iter().zip(checked).enumerate() {
        let tables: Arc<dyn crate::tables::Tables> = Arc::new(feeds.for_stage(stage));
        let shadow = if stage.may_have_candidate() {
            let shadow = shadow::Shadow::start(stage, kafka, tables.clone()).map_err(|e| {
                SetupError::caused(
                    format!("stage \"{}\": cannot start its candidate lane", stage.name),
                    e,
                )
            })?;
            if c.candidate.is_some() {
                shadow.publish(c.candidate.clone());
            }
            Some(shadow)
        } else {
            None
        };
        if let Some(shadow) = &shadow {
            metrics
                .stage(&stage.name, &stage.inputs)
                .set_shadow(shadow.totals().clone());
        }
        let runners = EngineRunners {
            live: reload::LiveProcessor::new(
                &stage.name,
                c.processor,
                stage.reload.rollback,
                metrics.stage(&stage.name, &stage.inputs),
            ),
            stage: stage.clone(),
            tables,
            durable: Some(durable.clone()),
            metrics: metrics.clone(),
            shadow: shadow.clone(),
        };
        if let (Follow::Deploy, Some(shadow)) = (stage.reload.follow, &shadow) {
            followed.push((i, stage.name.clone(), runners.live.clone(), shadow.clone()));
        }
        reloading.push(reload::ReloadStage {
            config: stage.clone(),
            tables: runners.tables.clone(),
            live: runners.live.clone(),
            shadow,
        });
        stages.push((stage.clone(), Arc::new(runners)));
    }
    let reloader = reload::Reloader::start(
        engine.clone(),
        reloading,
        &options.reload,
        reload::ReloadSettings::default(),
        options.watch_files,
        deployed.map(|d| {
            let host = options.host_name.clone();
            d.start(host.unwrap_or_else(deploy::default_host_name), followed)
        }),
    )
    .map_err(|e| SetupError::caused("cannot start the reload thread", e))?;
    let result = run_stages(kafka, stages, metrics, options.progress_every, shutdown).await;
    drop(reloader);
    drop(feeds);
    drop(server);
    result
}

/// For the stages that follow the control topic: creates the topic when
/// missing, reads it, and puts each stage's deployed live version (when it
/// passes its trial) in `checked` in place of its file's.
async fn start_with_deployed(
    pipeline: &Pipeline,
    engine: &Engine,
    checked: &mut [config::CheckedStage],
) -> Result<Option<reload::Prepared>, RunError> {
    if pipeline
        .stages
        .iter()
        .all(|s| s.reload.follow != Follow::Deploy)
    {
        return Ok(None);
    }
    deploy::ensure_control_topic(&pipeline.kafka)
        .await
        .map_err(|e| SetupError::broker("the control topic is not ready", e))?;
    let (kafka, engine, stages) = (
        pipeline.kafka.clone(),
        engine.clone(),
        pipeline.stages.clone(),
    );
    let mut processors: Vec<_> = checked.iter().map(|c| c.processor.clone()).collect();
    let (prepared, processors) = tokio::task::spawn_blocking(move || {
        let prepared = reload::prepare(&kafka, &engine, &stages, &mut processors);
        (prepared, processors)
    })
    .await
    .map_err(|e| SetupError::caused("reading the deployments", e))?;
    for (c, p) in checked.iter_mut().zip(processors) {
        c.processor = p;
    }
    prepared.map_err(|e| SetupError::broker("reading the deployments", e).into())
}

/// Refuses a stage whose input topics have different partition counts.
fn check_copartitioned(pipeline: &Pipeline, topics: &TopicPartitions) -> Result<(), RunError> {
    let mut problems = Vec::new();
    for s in &pipeline.stages {
        let counts: Vec<(String, i32)> = s
            .inputs
            .iter()
            .map(|t| (t.clone(), topics.get(t).copied().unwrap_or(0)))
            .collect();
        if counts.windows(2).any(|w| w[0].1 != w[1].1) {
            let list: Vec<String> = counts.iter().map(|(t, n)| format!("{t} has {n}")).collect();
            problems.push(format!(
                "stage \"{}\": its inputs are not co-partitioned ({}); they need the same number of partitions",
                s.name,
                list.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SetupError::permanent(problems.join("\n")).into())
    }
}

/// A topic check that failed: retryable when the cluster could not be
/// asked, not when topics are missing or cannot be created.
fn topics_not_ready(e: TopicsError) -> SetupError {
    // Its variants carry the cluster's answers as text: nothing is lost.
    SetupError {
        retryable: matches!(e, TopicsError::Client(_)),
        what: e.to_string(),
        source: None,
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs stages whose processors are ready, until `shutdown` completes or a
/// stage fails.
pub(crate) async fn run_stages(
    kafka: &KafkaConfig,
    stages: Vec<(StageConfig, Arc<dyn RunnerFactory>)>,
    metrics: Arc<Metrics>,
    progress_every: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let producer =
        Producer::new(kafka).map_err(|e| SetupError::caused("cannot create the producer", e))?;
    let control = Arc::new(RunControl::default());
    let mut drivers = Vec::new();
    for (config, runners) in stages {
        let stage_metrics = metrics.stage(&config.name, &config.inputs);
        stage_metrics.set_version(&runners.version());
        let dlq_topics = config.inputs.iter().map(|t| config.dlq_topic(t)).collect();
        let shared = Arc::new(StageShared {
            kafka: kafka.clone(),
            producer: producer.clone(),
            runners,
            metrics: stage_metrics,
            all_metrics: metrics.clone(),
            control: control.clone(),
            commit_interval: kafka.commit_interval,
            dlq_topics,
            rejoin: AtomicBool::new(false),
            config,
        });
        let name = shared.config.name.clone();
        let driven = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-consumer"))
            .spawn(move || stage::drive(driven))
            .map_err(|e| {
                SetupError::caused(
                    format!("stage \"{name}\": cannot start its consumer thread"),
                    e,
                )
            })?;
        drivers.push(thread);
        // Not joined: a probe waiting on an unreachable cluster (5 s per
        // request) must not hold back a clean stop; the thread ends at its
        // next check of the run's stop flag.
        std::thread::Builder::new()
            .name(format!("{name}-health"))
            .spawn(move || health::watch(shared))
            .map_err(|e| {
                SetupError::caused(
                    format!("stage \"{name}\": cannot start its group watcher thread"),
                    e,
                )
            })?;
    }
    let _progress = AbortOnDrop(tokio::spawn(metrics::log_progress(
        metrics.clone(),
        progress_every,
    )));

    tokio::select! {
        () = shutdown => {
            tracing::info!("stopping: finishing the batches in hand, then committing");
            control.stop();
        }
        () = control.stopped() => {}
    }
    for d in drivers {
        let _ = tokio::task::spawn_blocking(move || d.join()).await;
    }
    // Every batch was acknowledged before its worker stopped; this only
    // waits for what a failed stage left behind.
    if let Err(e) = producer.flush(Duration::from_secs(10)) {
        tracing::warn!("producer flush: {e}");
    }
    match control.take_failure() {
        Some(f) => Err(f.into()),
        None => {
            tracing::info!("stopped cleanly");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
