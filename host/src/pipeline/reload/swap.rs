//! The worker's side of a hot swap: at each batch boundary, one atomic load
//! tells whether a new version is live; if so the partition's runner swaps
//! its code (the state stays in place) before the next batch is read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::OwnedHeaders;

use super::live::{LiveProcessor, Refusal};
use crate::config::StageConfig;
use crate::kafka::produce;
use crate::pipeline::runner::BatchRunner;

/// The header that names the processor version of an output.
pub const VERSION_HEADER: &str = "partita.version";

/// One worker's link to its stage's live processor. Dropping it tells the
/// stage the partition is no longer served here.
pub(crate) struct SwapHook {
    live: Arc<LiveProcessor>,
    partition: i32,
    /// The generation the runner runs.
    generation: u64,
}

impl SwapHook {
    /// Registers the worker of `partition`, whose runner runs `version`.
    pub(crate) fn new(live: Arc<LiveProcessor>, partition: i32, version: &str) -> SwapHook {
        let generation = live.register(partition, version);
        SwapHook {
            live,
            partition,
            generation,
        }
    }

    /// Called between batches. When a new version is live, swaps `runner`
    /// to it and returns the output routes of the new version (its output
    /// names may differ); `None` when nothing changed.
    pub(crate) fn at_boundary(
        &mut self,
        runner: &mut dyn BatchRunner,
        stage: &StageConfig,
    ) -> Option<Vec<String>> {
        if self.live.generation() == self.generation {
            return None;
        }
        let target = self.live.target();
        let old = runner.version().to_string();
        if target.processor.version() == old {
            self.generation = target.generation;
            self.live
                .acknowledge(self.partition, target.generation, Duration::ZERO);
            return None;
        }
        let started = Instant::now();
        let swapped = runner
            .replace(&target.processor)
            .and_then(|()| routes(stage, runner.outputs()));
        self.generation = target.generation;
        match swapped {
            Ok(routes) => {
                let pause = started.elapsed();
                tracing::debug!(
                    stage = %stage.name,
                    partition = self.partition,
                    "processor {old} -> {} in {:.3} ms",
                    target.processor.version(),
                    pause.as_secs_f64() * 1e3
                );
                self.live
                    .acknowledge(self.partition, target.generation, pause);
                Some(routes)
            }
            Err(e) => {
                // Passed its trial, but not with this partition's state.
                tracing::error!(
                    "stage \"{}\", partition {}: cannot swap processor {old} -> {}: {e:#}; \
                     this partition keeps running {}",
                    stage.name,
                    self.partition,
                    target.processor.version(),
                    runner.version()
                );
                self.live.count_refusal(Refusal::Init);
                self.live
                    .acknowledge(self.partition, target.generation, started.elapsed());
                None
            }
        }
    }

    /// Counts a batch of `records`, `bad` of them rejected or failed, for
    /// the rollback rule of the version that ran it.
    pub(crate) fn after_batch(&self, records: u64, bad: u64) {
        self.live.judge(self.generation, records, bad);
    }
}

impl Drop for SwapHook {
    fn drop(&mut self) {
        self.live.deregister(self.partition);
    }
}

/// Output index → topic for a processor declaring `outputs`.
pub(crate) fn routes(stage: &StageConfig, outputs: &[String]) -> anyhow::Result<Vec<String>> {
    outputs
        .iter()
        .map(|name| match stage.output_topic(name) {
            Some(topic) => Ok(topic.to_string()),
            None => {
                anyhow::bail!("the processor emits \"{name}\" but the stage maps no topic to it")
            }
        })
        .collect()
}

/// Headers `pairs` with [`VERSION_HEADER`] set to `version` (replacing one
/// that came with the input).
pub(crate) fn with_version<'h>(
    pairs: impl Iterator<Item = (&'h str, &'h [u8])>,
    version: &'h str,
) -> Option<OwnedHeaders> {
    let mut all: Vec<(&str, &[u8])> = pairs.filter(|(k, _)| *k != VERSION_HEADER).collect();
    all.push((VERSION_HEADER, version.as_bytes()));
    produce::headers(all.into_iter())
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;

    #[test]
    fn the_version_header_is_added_once() {
        let input: [(&str, &[u8]); 2] = [("trace", b"t1"), (VERSION_HEADER, b"old")];
        let h = with_version(input.into_iter(), "abc123").unwrap();
        let got: Vec<(String, Vec<u8>)> = h
            .iter()
            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
            .collect();
        assert_eq!(
            got,
            [
                ("trace".to_string(), b"t1".to_vec()),
                (VERSION_HEADER.to_string(), b"abc123".to_vec())
            ]
        );
        let only = with_version(std::iter::empty(), "abc123").unwrap();
        assert_eq!(only.count(), 1);
    }
}
