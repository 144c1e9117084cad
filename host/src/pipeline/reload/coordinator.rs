//! The reload coordinator: one thread per run that turns file events and
//! reload requests into new live versions, off the workers' path.
//!
//! Events on a stage's file are debounced: the file is read once no event
//! came for [`ReloadSettings::debounce`]. A file that fails its trial right
//! after a change (often one still being written) is tried again every
//! [`ReloadSettings::retry_every`], [`ReloadSettings::attempts`] times in
//! all, before it is refused; a refused file stays refused until it changes
//! again (or a reload of everything is asked). A file whose content hash is
//! the live version's is not swapped.
//!
//! Each file is also checked once when the coordinator starts: it may have
//! changed between the start-up check of the processors and the start of
//! the watcher.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::super::shadow::Shadow;
use super::SwapError;
use super::live::LiveProcessor;
use super::trial::{Refused, try_version};
use crate::config::{Follow, StageConfig};
use crate::deploy::Role;
use crate::engine::Engine;
use crate::tables::Tables;

/// What the coordinator is told.
#[derive(Debug)]
pub(crate) enum Event {
    /// Stage `stage`'s file changed at `at`.
    Changed {
        /// The stage's index.
        stage: usize,
        /// When the event was seen.
        at: Instant,
    },
    /// Reload every stage now (SIGHUP).
    All,
    /// A component deployed through the control topic.
    Deployed(Deployed),
    /// A component handed over from code ([`super::ReloadTrigger::swap`]).
    Swap(SwapRequest),
    /// The candidate of stage `stage` was withdrawn.
    Withdrawn {
        /// The stage's index.
        stage: usize,
    },
    /// End the coordinator.
    Stop,
}

/// A deployed component for a stage that follows the control topic.
#[derive(Debug)]
pub(crate) struct Deployed {
    /// The stage's index.
    pub stage: usize,
    /// Live or candidate.
    pub role: Role,
    /// What to call it in logs and problems.
    pub name: String,
    /// Its content hash.
    pub hash: String,
    /// The component.
    pub bytes: Vec<u8>,
    /// Where to say how its trial went.
    pub outcome: Sender<Outcome>,
}

/// A component to swap in, from code.
#[derive(Debug)]
pub(crate) struct SwapRequest {
    /// The stage's name.
    pub stage: String,
    /// What to call the component in logs.
    pub name: String,
    /// The component.
    pub bytes: Arc<[u8]>,
    /// Where to answer: the version published, or why not.
    pub reply: tokio::sync::oneshot::Sender<Result<String, SwapError>>,
}

/// How a deployed component's trial went.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The stage's index.
    pub stage: usize,
    /// The component's content hash.
    pub hash: String,
    /// Published (or already live), or refused.
    pub result: Result<(), Refused>,
}

/// Timings of the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadSettings {
    /// Quiet time after the last event on a file before it is read.
    pub debounce: Duration,
    /// Time between two attempts at a file that failed its trial.
    pub retry_every: Duration,
    /// Attempts at a changed file before it is refused (at least 1).
    pub attempts: u32,
}

impl Default for ReloadSettings {
    fn default() -> Self {
        ReloadSettings {
            debounce: Duration::from_millis(200),
            retry_every: Duration::from_millis(250),
            attempts: 5,
        }
    }
}

/// What the coordinator knows of one stage.
pub struct ReloadStage {
    /// The stage.
    pub config: StageConfig,
    /// Its reference tables, for the trial `init`.
    pub tables: Arc<dyn Tables>,
    /// Its live processor.
    pub live: Arc<LiveProcessor>,
    /// Its candidate, when it follows deployments.
    pub shadow: Option<Arc<Shadow>>,
}

/// A change waiting for its turn.
struct Pending {
    /// The first event of the burst (or the request).
    changed_at: Instant,
    /// When to read the file next.
    due: Instant,
    /// Attempts made so far.
    attempts: u32,
    /// Asked for explicitly (SIGHUP): also tries a file refused before.
    explicit: bool,
    /// The check at start: quiet when nothing changed.
    initial: bool,
}

/// Runs until [`Event::Stop`] or until every sender is gone.
pub(crate) fn run(
    engine: Engine,
    stages: Vec<ReloadStage>,
    events: Receiver<Event>,
    settings: ReloadSettings,
) {
    let start = Instant::now();
    let mut c = Coordinator {
        engine,
        pending: stages
            .iter()
            .map(|_| {
                Some(Pending {
                    changed_at: start,
                    due: start + settings.debounce,
                    attempts: 0,
                    explicit: false,
                    initial: true,
                })
            })
            .collect(),
        refused: stages.iter().map(|_| None).collect(),
        stages,
        settings,
    };
    loop {
        let now = Instant::now();
        let next = c.pending.iter().flatten().map(|p| p.due).min();
        let event = match next {
            Some(due) if due <= now => {
                c.attempt_due(now);
                continue;
            }
            Some(due) => events.recv_timeout(due - now),
            None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match event {
            Ok(Event::Changed { stage, at }) => c.changed(stage, at),
            Ok(Event::All) => c.all(),
            Ok(Event::Deployed(d)) => c.deployed(d),
            Ok(Event::Swap(request)) => {
                let answer = c.swap(&request);
                let _ = request.reply.send(answer);
            }
            Ok(Event::Withdrawn { stage }) => {
                if let Some(shadow) = c.stages.get(stage).and_then(|s| s.shadow.as_ref()) {
                    shadow.publish(None);
                }
            }
            Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

struct Coordinator {
    engine: Engine,
    stages: Vec<ReloadStage>,
    pending: Vec<Option<Pending>>,
    /// Per stage, the content hash of the last refused file.
    refused: Vec<Option<String>>,
    settings: ReloadSettings,
}

impl Coordinator {
    fn changed(&mut self, stage: usize, at: Instant) {
        let Some(slot) = self.pending.get_mut(stage) else {
            return;
        };
        let due = Instant::now() + self.settings.debounce;
        match slot {
            // Still in the burst, or retrying: start the quiet time again,
            // with fresh attempts for the new content.
            Some(p) => {
                p.due = due;
                p.attempts = 0;
                p.initial = false;
            }
            None => {
                *slot = Some(Pending {
                    changed_at: at,
                    due,
                    attempts: 0,
                    explicit: false,
                    initial: false,
                });
            }
        }
    }

    fn all(&mut self) {
        let now = Instant::now();
        for slot in &mut self.pending {
            *slot = Some(Pending {
                changed_at: now,
                due: now,
                attempts: 0,
                explicit: true,
                initial: false,
            });
        }
    }

    fn attempt_due(&mut self, now: Instant) {
        for i in 0..self.stages.len() {
            if self.pending[i].as_ref().is_some_and(|p| p.due <= now) {
                self.attempt(i);
            }
        }
    }

    /// Reads stage `i`'s file and swaps it in if it passes its trial.
    fn attempt(&mut self, i: usize) {
        let Some(mut pending) = self.pending[i].take() else {
            return;
        };
        pending.attempts += 1;
        let stage = &self.stages[i];
        if stage.config.reload.follow == Follow::Deploy {
            if pending.explicit {
                tracing::info!(
                    "stage \"{}\" follows deployments (partita deploy): its file is not read again",
                    stage.config.name
                );
            }
            return;
        }
        let Some(path) = stage.config.processor.file() else {
            // Built in code from bytes or a loaded component: no file to
            // read again.
            tracing::info!(
                "stage \"{}\": its processor ({}) is not a file; nothing to reload",
                stage.config.name,
                stage.config.processor
            );
            return;
        };
        let name = &stage.config.name;
        let live = stage.live.current();
        let (bytes, hash) = match std::fs::read(path) {
            Ok(bytes) => {
                let hash = blake3::hash(&bytes).to_hex().to_string();
                (bytes, hash)
            }
            Err(e) => {
                let message = format!("cannot read {}: {e}", path.display());
                self.failed(i, pending, None, super::Refusal::Read, message);
                return;
            }
        };
        if hash == live.content_hash() {
            self.refused[i] = None;
            if pending.initial {
                return;
            }
            let log = if pending.explicit {
                "unchanged: nothing to swap"
            } else {
                "changed on disk but its content is the live version's: nothing to swap"
            };
            tracing::info!(
                "stage \"{name}\": processor {} ({}) {log}",
                path.display(),
                live.version()
            );
            self.refused[i] = None;
            return;
        }
        if !pending.explicit && self.refused[i].as_deref() == Some(hash.as_str()) {
            tracing::debug!(
                "stage \"{name}\": {} is still the refused file",
                path.display()
            );
            return;
        }
        if !pending.explicit && stage.live.rolled_back().as_deref() == Some(hash.as_str()) {
            tracing::info!(
                "stage \"{name}\": {} is the version that was rolled back; it is swapped in \
                 again only after it changes (or on SIGHUP)",
                path.display()
            );
            return;
        }
        match try_version(&self.engine, &stage.config, &stage.tables, path, &bytes) {
            Ok(processor) => {
                tracing::info!(
                    "stage \"{name}\": {} passed its trial as version {} ({} after the change{})",
                    path.display(),
                    processor.version(),
                    format_ms(pending.changed_at.elapsed()),
                    if processor.from_cache() {
                        ", compiled code from the cache"
                    } else {
                        ""
                    }
                );
                self.refused[i] = None;
                stage.live.publish(processor, pending.changed_at);
            }
            Err(refused) => self.failed(i, pending, Some(hash), refused.reason, refused.message),
        }
    }

    /// Tries a component handed over from code and publishes it, or
    /// refuses it.
    fn swap(&mut self, request: &SwapRequest) -> Result<String, SwapError> {
        let Some(stage) = self.stages.iter().find(|s| s.config.name == request.stage) else {
            let stages: Vec<&str> = self.stages.iter().map(|s| s.config.name.as_str()).collect();
            return Err(SwapError::NoSuchStage {
                stage: request.stage.clone(),
                stages: stages.join(", "),
            });
        };
        let name = &stage.config.name;
        if stage.config.reload.follow == Follow::Deploy {
            return Err(SwapError::FollowsDeployments(name.clone()));
        }
        let live = stage.live.current();
        if blake3::hash(&request.bytes).to_hex().as_str() == live.content_hash() {
            tracing::info!(
                "stage \"{name}\": {} is the live version {} already: nothing to swap",
                request.name,
                live.version()
            );
            return Ok(live.version().to_string());
        }
        let at = Instant::now();
        let path = Path::new(&request.name);
        match try_version(
            &self.engine,
            &stage.config,
            &stage.tables,
            path,
            &request.bytes,
        ) {
            Ok(processor) => {
                let version = processor.version().to_string();
                tracing::info!(
                    "stage \"{name}\": {} passed its trial as version {version}",
                    request.name
                );
                stage.live.publish(processor, at);
                Ok(version)
            }
            Err(refused) => {
                tracing::warn!(
                    "stage \"{name}\": refusing {} ({}): {}; version {} keeps running",
                    request.name,
                    refused.reason.as_str(),
                    refused.message,
                    live.version()
                );
                stage.live.count_refusal(refused.reason);
                Err(SwapError::Refused {
                    name: request.name.clone(),
                    refused,
                })
            }
        }
    }

    /// Tries a deployed component and swaps it in, or refuses it; says
    /// which to the follower.
    fn deployed(&mut self, d: Deployed) {
        let Some(stage) = self.stages.get(d.stage) else {
            return;
        };
        let name = &stage.config.name;
        let live = stage.live.current();
        let running = match d.role {
            Role::Live => Some(live.clone()),
            Role::Candidate => stage.shadow.as_ref().and_then(|s| s.current()),
        };
        let role = d.role.as_str();
        let result = if running.is_some_and(|p| p.content_hash() == d.hash) {
            tracing::info!("stage \"{name}\": the deployed {role} version runs already");
            Ok(())
        } else {
            let at = Instant::now();
            match try_version(
                &self.engine,
                &stage.config,
                &stage.tables,
                Path::new(&d.name),
                &d.bytes,
            ) {
                Ok(processor) => {
                    tracing::info!(
                        "stage \"{name}\": {} passed its trial as {role} version {}",
                        d.name,
                        processor.version()
                    );
                    match (d.role, &stage.shadow) {
                        (Role::Live, _) => {
                            stage.live.publish(processor, at);
                        }
                        (Role::Candidate, Some(shadow)) => shadow.publish(Some(processor)),
                        (Role::Candidate, None) => {}
                    }
                    Ok(())
                }
                Err(refused) => {
                    tracing::warn!(
                        "stage \"{name}\": refusing the deployed {role} {} ({}): {}; \
                         version {} keeps running",
                        d.name,
                        refused.reason.as_str(),
                        refused.message,
                        live.version()
                    );
                    stage.live.count_refusal(refused.reason);
                    Err(refused)
                }
            }
        };
        let _ = d.outcome.send(Outcome {
            stage: d.stage,
            hash: d.hash,
            result,
        });
    }

    /// A failed attempt: tried again soon, or refused after the last one.
    fn failed(
        &mut self,
        i: usize,
        mut pending: Pending,
        hash: Option<String>,
        reason: super::Refusal,
        message: String,
    ) {
        let stage = &self.stages[i];
        let name = &stage.config.name;
        if pending.attempts < self.settings.attempts.max(1) {
            tracing::debug!(
                "stage \"{name}\": attempt {} at the new processor failed ({message}); trying again",
                pending.attempts
            );
            pending.due = Instant::now() + self.settings.retry_every;
            self.pending[i] = Some(pending);
            return;
        }
        let live = stage.live.current();
        tracing::warn!(
            "stage \"{name}\": refusing the new processor file {} ({}): {message}; \
             version {} keeps running",
            stage.config.processor,
            reason.as_str(),
            live.version()
        );
        stage.live.count_refusal(reason);
        self.refused[i] = hash;
    }
}

fn format_ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
