//! Following the control topic: the reload source of the stages with
//! `follow = "deploy"`, as the file watcher is for the others
//! (docs/DEPLOY.md).
//!
//! One thread per run reads the pipeline's control topic ([`crate::deploy`])
//! on from where the start-up read ended. When the live deployment of a
//! followed stage names a component other than the one last handed over,
//! the thread puts the component together from its chunks (checked by
//! content hash) and hands it to the coordinator, which runs the same trial
//! as for a changed file and swaps it in, or refuses it. The thread writes
//! this host's report on each followed stage after each outcome and every
//! [`REPORT_EVERY`] ([`REPORT_SHADOW_EVERY`] while a candidate runs, with
//! its comparison so far), so that `partita deploy --list` shows which host
//! runs what and `--status` how its candidate compares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::path::Path;

use super::super::shadow::Shadow;
use super::coordinator::{Deployed, Event, Outcome};
use super::live::LiveProcessor;
use super::trial::try_version;
use crate::config::{Follow, KafkaConfig, StageConfig};
use crate::deploy::TopicError;
use crate::deploy::{
    ControlReader, ControlState, ControlWriter, HostReport, Refused, Role, now_ms,
};
use crate::engine::{Engine, Processor};
use crate::tables::{MemoryTables, Tables};

/// How often a host repeats its reports when nothing changes.
pub const REPORT_EVERY: Duration = Duration::from_secs(30);
/// How often while a stage runs a candidate (its comparison moves on).
pub const REPORT_SHADOW_EVERY: Duration = Duration::from_secs(5);

/// A stage that follows the control topic.
pub struct Followed {
    /// The stage's index in the pipeline.
    pub index: usize,
    /// The stage's name.
    pub name: String,
    /// Its live processor.
    pub live: Arc<LiveProcessor>,
    /// Its candidate.
    pub shadow: Arc<Shadow>,
    /// A deployed version refused at start, for the first report.
    pub refused: Option<Refused>,
}

/// Where the follower starts: the control topic read up to its end at
/// start-up, and a writer for this host's reports.
pub struct FollowStart {
    /// This host's name in its reports.
    pub host: String,
    /// The reader, past the records in `state`.
    pub reader: ControlReader,
    /// What the topic said at start.
    pub state: ControlState,
    /// Writes the reports.
    pub writer: ControlWriter,
    /// The followed stages.
    pub stages: Vec<Followed>,
}

/// What the start-up read of the control topic found: where the follower
/// goes on from, and the deployed versions refused at start.
pub struct Prepared {
    reader: ControlReader,
    state: ControlState,
    writer: ControlWriter,
    refused: Vec<(usize, Refused)>,
}

/// At start, before any worker runs: reads the control topic and, for each
/// stage of `stages` that follows it and has a live deployment, tries the
/// deployed component (the trial of a reload) and puts it in `processors`
/// in place of the file's; a component that fails stays out and is
/// reported. `None` when no stage follows the control topic.
pub fn prepare(
    kafka: &KafkaConfig,
    engine: &Engine,
    stages: &[StageConfig],
    processors: &mut [Processor],
) -> Result<Option<Prepared>, TopicError> {
    if stages.iter().all(|s| s.reload.follow != Follow::Deploy) {
        return Ok(None);
    }
    let mut reader = ControlReader::new(kafka)?;
    let mut state = ControlState::new();
    reader.catch_up(&mut state)?;
    let writer = ControlWriter::new(kafka)?;
    let tables: Arc<dyn Tables> = Arc::new(MemoryTables::new());
    let mut refused = Vec::new();
    for (i, (stage, processor)) in stages.iter().zip(processors.iter_mut()).enumerate() {
        if stage.reload.follow != Follow::Deploy {
            continue;
        }
        let Some(d) = state.current(&stage.name, Role::Live) else {
            tracing::info!(
                "stage \"{}\": nothing deployed yet; starting with {}",
                stage.name,
                stage.processor
            );
            continue;
        };
        let hash = d.hash.clone().unwrap_or_default();
        if hash == processor.content_hash() {
            continue;
        }
        let name = format!("{} (deployed {})", d.source, &hash[..hash.len().min(12)]);
        let tried = state
            .component(d)
            .map_err(|e| super::trial::Refused {
                reason: super::Refusal::Read,
                message: e.to_string(),
            })
            .and_then(|bytes| try_version(engine, stage, &tables, Path::new(&name), &bytes));
        match tried {
            Ok(p) => {
                tracing::info!(
                    "stage \"{}\": starting with the deployed {name} (by {})",
                    stage.name,
                    d.by
                );
                *processor = p;
            }
            Err(r) => {
                tracing::warn!(
                    "stage \"{}\": refusing the deployed {name} ({}): {}; starting with {}",
                    stage.name,
                    r.reason.as_str(),
                    r.message,
                    stage.processor
                );
                refused.push((
                    i,
                    Refused {
                        hash,
                        reason: r.reason.as_str().to_string(),
                        message: r.message,
                    },
                ));
            }
        }
    }
    Ok(Some(Prepared {
        reader,
        state,
        writer,
        refused,
    }))
}

impl Prepared {
    /// The follower's start, as host `host`, for the followed stages among
    /// `stages` (index, name, live processor, candidate).
    pub fn start(
        mut self,
        host: String,
        stages: Vec<(usize, String, Arc<LiveProcessor>, Arc<Shadow>)>,
    ) -> FollowStart {
        let stages = stages
            .into_iter()
            .map(|(index, name, live, shadow)| Followed {
                refused: self
                    .refused
                    .iter()
                    .position(|(i, _)| *i == index)
                    .map(|at| self.refused.swap_remove(at).1),
                index,
                name,
                live,
                shadow,
            })
            .collect();
        FollowStart {
            host,
            reader: self.reader,
            state: self.state,
            writer: self.writer,
            stages,
        }
    }
}

/// The follower thread; dropping it stops the thread.
pub(crate) struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    /// Starts following, handing new live versions to `events`.
    pub(crate) fn start(start: FollowStart, events: Sender<Event>) -> std::io::Result<Follower> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("deploy-follow".into())
            .spawn(move || follow(start, events, &stopped))?;
        Ok(Follower {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn follow(start: FollowStart, events: Sender<Event>, stop: &AtomicBool) {
    let FollowStart {
        host,
        mut reader,
        mut state,
        writer,
        mut stages,
    } = start;
    let (outcomes, answers) = mpsc::channel();
    let stage_names: Vec<String> = stages.iter().map(|s| s.name.clone()).collect();
    // The component last handed over (or found running) per followed
    // stage, live and candidate.
    let mut handed: Vec<[Option<String>; 2]> = stages
        .iter()
        .map(|s| [Some(s.live.current().content_hash().to_string()), None])
        .collect();
    let mut last_report: Option<Instant> = None;
    // Logs a failure to read once, not at every attempt.
    let mut failing = false;
    while !stop.load(Relaxed) {
        let applied = match reader.poll(&mut state, Duration::from_millis(250)) {
            Ok(n) => {
                failing = false;
                n
            }
            Err(e) => {
                if !failing {
                    tracing::warn!("following deployments: {e}; trying again");
                }
                failing = true;
                std::thread::sleep(Duration::from_secs(1));
                0
            }
        };
        let mut changed = false;
        // The first round also starts a candidate deployed before this
        // host started.
        if applied > 0 || last_report.is_none() {
            for (s, [live, candidate]) in stages.iter_mut().zip(&mut handed) {
                changed |= hand_over(s, Role::Live, live, &state, &events, &outcomes);
                changed |= hand_over(s, Role::Candidate, candidate, &state, &events, &outcomes);
            }
            state.drop_unused_chunks(&stage_names);
        }
        changed |= take_answers(&answers, &mut stages);
        let every = if stages.iter().any(|s| s.shadow.current().is_some()) {
            REPORT_SHADOW_EVERY
        } else {
            REPORT_EVERY
        };
        if changed || last_report.is_none_or(|at| at.elapsed() >= every) {
            report(&writer, &host, &stages);
            last_report = Some(Instant::now());
        }
        writer.poll();
    }
    report(&writer, &host, &stages);
    if let Err(e) = writer.flush_for(Duration::from_secs(2)) {
        tracing::debug!("last deploy report: {e}");
    }
}

/// Hands stage `s`'s current `role` deployment to the coordinator when it
/// is new (or says that its candidate was withdrawn). True when something
/// changed for the report.
fn hand_over(
    s: &mut Followed,
    role: Role,
    last: &mut Option<String>,
    state: &ControlState,
    events: &Sender<Event>,
    outcomes: &Sender<Outcome>,
) -> bool {
    let current = state.current(&s.name, role);
    let hash = current.and_then(|d| d.hash.clone());
    // A live version is never withdrawn: with nothing deployed the stage
    // runs its file's.
    if hash == *last || (role == Role::Live && hash.is_none()) {
        return false;
    }
    *last = hash.clone();
    let (Some(d), Some(hash)) = (current, hash) else {
        // Only a candidate can be withdrawn.
        let _ = events.send(Event::Withdrawn { stage: s.index });
        return true;
    };
    tracing::info!(
        "stage \"{}\": {} deployment of {} ({}, {} bytes) by {}",
        s.name,
        role.as_str(),
        &hash[..hash.len().min(12)],
        d.source,
        d.size,
        d.by
    );
    match state.component(d) {
        Ok(bytes) => {
            let _ = events.send(Event::Deployed(Deployed {
                stage: s.index,
                role,
                name: format!("{} (deployed {})", d.source, &hash[..hash.len().min(12)]),
                hash,
                bytes,
                outcome: outcomes.clone(),
            }));
            false
        }
        Err(e) => {
            tracing::warn!("stage \"{}\": refusing the deployment: {e}", s.name);
            s.refused = Some(Refused {
                hash,
                reason: "chunks".into(),
                message: e.to_string(),
            });
            true
        }
    }
}

/// Applies the coordinator's answers; true when there were some.
fn take_answers(answers: &Receiver<Outcome>, stages: &mut [Followed]) -> bool {
    let mut any = false;
    while let Ok(o) = answers.try_recv() {
        any = true;
        if let Some(s) = stages.iter_mut().find(|s| s.index == o.stage) {
            match o.result {
                Ok(()) => {
                    if s.refused.as_ref().is_some_and(|r| r.hash == o.hash) {
                        s.refused = None;
                    }
                }
                Err(r) => {
                    s.refused = Some(Refused {
                        hash: o.hash,
                        reason: r.reason.as_str().to_string(),
                        message: r.message,
                    });
                }
            }
        }
    }
    any
}

/// Writes this host's report on every followed stage (not waiting for
/// the broker: a report that is lost is written again later).
fn report(writer: &ControlWriter, host: &str, stages: &[Followed]) {
    let at_ms = now_ms();
    for s in stages {
        let r = HostReport {
            host: host.to_string(),
            stage: s.name.clone(),
            live: s.live.current().content_hash().to_string(),
            candidate: s.shadow.current().map(|p| p.content_hash().to_string()),
            refused: s.refused.clone(),
            shadow: Some(s.shadow.totals().counts()),
            at_ms,
        };
        if let Err(e) = writer.report(&r) {
            tracing::debug!("stage \"{}\": cannot write this host's report: {e}", s.name);
        }
    }
}
