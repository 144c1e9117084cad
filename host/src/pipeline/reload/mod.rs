//! Hot reload: swapping a stage's processor while records flow
//! (docs/PIPELINE.md, "Hot reload").
//!
//! ```text
//! notify (folder of each processor file) ─┐
//! SIGHUP (ReloadTrigger::reload_all) ─────┤
//! ReloadTrigger::swap (bytes, from code) ─┤
//!                                         ▼
//!   coordinator thread: debounce → read → same hash? → Engine::load (cache)
//!     → trial instance + init with the stage's config → outputs mapped?
//!     → LiveProcessor::publish (new generation)
//!                                         ▼
//!   each worker, between batches: generation moved? → Instance::replace_processor
//!     (state untouched) → acknowledge → "live on all partitions" logged
//! ```
//!
//! - `watch`: the file watcher.
//! - `follow`: the control topic's follower, for stages with `follow =
//!   "deploy"` (`partita deploy`, docs/DEPLOY.md).
//! - `coordinator`: debounce, retries, refusals.
//! - `trial`: what a version must pass before it is published.
//! - `live`: the published version per stage, acknowledgements, rollback.
//! - `swap`: the worker's hook at a batch boundary; the version header.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use notify::RecommendedWatcher;

use crate::config::Follow;
use crate::engine::Engine;

mod coordinator;
mod follow;
mod live;
mod swap;
mod trial;
mod watch;

use coordinator::{Event, SwapRequest};
pub use coordinator::{ReloadSettings, ReloadStage};
pub use follow::{FollowStart, Followed, Prepared, prepare};
pub use live::{LiveProcessor, Refusal};
pub use swap::VERSION_HEADER;
pub(crate) use swap::{SwapHook, routes, with_version};
pub use trial::{Refused, try_version};

/// Asks running pipelines to reload every stage's processor, as SIGHUP does
/// for `partita run`. Cheap to clone; a run started with
/// [`crate::pipeline::RunOptions::reload`] listens to it until it ends.
#[derive(Clone, Default)]
pub struct ReloadTrigger {
    listeners: Arc<Mutex<Vec<Sender<Event>>>>,
}

impl ReloadTrigger {
    /// A trigger no run listens to yet.
    pub fn new() -> ReloadTrigger {
        ReloadTrigger::default()
    }

    /// Asks every listening run to reload all its stages now; returns how
    /// many runs were asked.
    pub fn reload_all(&self) -> usize {
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        listeners.retain(|l| l.send(Event::All).is_ok());
        listeners.len()
    }

    /// Swaps stage `stage`'s processor for the component `bytes` (called
    /// `name` in logs) in every listening run: for a stage built in code,
    /// what a changed file is for a stage read from a file. The component
    /// passes the same trial first (loaded, instantiated, `init`-ed with
    /// the stage's config, its outputs mapped); the workers then take it
    /// at their next batch boundary, their state untouched, and roll it
    /// back if it rejects too many of its first records, as with any hot
    /// reload. Resolves to the new version once it is published, or to
    /// why it was not.
    pub async fn swap(
        &self,
        stage: &str,
        name: &str,
        bytes: impl Into<Arc<[u8]>>,
    ) -> Result<String, SwapError> {
        let bytes = bytes.into();
        let mut replies = Vec::new();
        {
            let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
            listeners.retain(|l| {
                let (reply, answer) = tokio::sync::oneshot::channel();
                let sent = l.send(Event::Swap(SwapRequest {
                    stage: stage.to_string(),
                    name: name.to_string(),
                    bytes: bytes.clone(),
                    reply,
                }));
                if sent.is_ok() {
                    replies.push(answer);
                }
                sent.is_ok()
            });
        }
        if replies.is_empty() {
            return Err(SwapError::NotRunning);
        }
        let mut version = String::new();
        for answer in replies {
            version = answer.await.map_err(|_| SwapError::NotRunning)??;
        }
        Ok(version)
    }

    fn listen(&self, events: Sender<Event>) {
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(events);
    }
}

/// Why [`ReloadTrigger::swap`] did not swap a processor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwapError {
    /// No run listens to the trigger (none started, or it ended).
    #[error("no running pipeline listens to this trigger")]
    NotRunning,
    /// The pipeline has no such stage.
    #[error("the pipeline has no stage \"{stage}\" (its stages: {stages})")]
    NoSuchStage {
        /// The stage asked for.
        stage: String,
        /// The pipeline's stages, comma-separated.
        stages: String,
    },
    /// The stage follows deployments: every host must run the same
    /// version, so it changes through the control topic only.
    #[error(
        "stage \"{0}\" follows deployments: deploy through the control topic \
         (partita deploy, or deploy::ControlWriter) so that every host runs it"
    )]
    FollowsDeployments(String),
    /// The component failed its trial; the live version keeps running.
    #[error("{}: refused ({}): {}", .name, .refused.reason.as_str(), .refused.message)]
    Refused {
        /// The component's name.
        name: String,
        /// Why.
        refused: Refused,
    },
}

/// The reload machinery of one run: the watcher and the coordinator
/// thread. Dropping it stops both.
pub struct Reloader {
    events: Sender<Event>,
    thread: Option<JoinHandle<()>>,
    _watcher: Option<RecommendedWatcher>,
    follower: Option<follow::Follower>,
}

impl Reloader {
    /// Starts watching the stages' files (when `watch_files`; not those of
    /// stages that follow deployments), following the control topic (when
    /// `follow` is given) and listening to `trigger`.
    pub fn start(
        engine: Engine,
        stages: Vec<ReloadStage>,
        trigger: &ReloadTrigger,
        settings: ReloadSettings,
        watch_files: bool,
        follow: Option<FollowStart>,
    ) -> std::io::Result<Reloader> {
        let (events, receiver) = mpsc::channel();
        let watcher = if watch_files {
            let files: Vec<(usize, &std::path::Path)> = stages
                .iter()
                .enumerate()
                .filter(|(_, s)| s.config.reload.follow == Follow::File)
                .filter_map(|(i, s)| Some((i, s.config.processor.file()?)))
                .collect();
            watch::watch(&files, events.clone())
        } else {
            None
        };
        trigger.listen(events.clone());
        let thread = std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || coordinator::run(engine, stages, receiver, settings))?;
        let follower = match follow {
            Some(start) => Some(follow::Follower::start(start, events.clone())?),
            None => None,
        };
        Ok(Reloader {
            events,
            thread: Some(thread),
            _watcher: watcher,
            follower,
        })
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        drop(self.follower.take());
        let _ = self.events.send(Event::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
