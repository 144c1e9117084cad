//! The worker under `guarantee = "at-least-once"`: outputs first, offsets
//! after. A batch's offsets are committed through the consumer group once
//! it and every batch before it are acknowledged (asynchronously every
//! commit interval, synchronously when the worker stops). A record the
//! producer gives up on is produced again, with a backoff that doubles up
//! to [`MAX_RETRY_BACKOFF`], unless the broker refuses it for good (too
//! large, a forbidden topic...), which stops the run.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::super::StageFailure;
use super::guarantee::{Next, Scope};
use crate::kafka::produce;

/// The longest wait between two attempts to produce again records the
/// client gave up on.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);

/// The commit and retry state of one worker.
pub(super) struct AtLeastOnce {
    /// The positions of the last commit attempt, and the stage's commit
    /// failure count seen then.
    last_commit: (Vec<i64>, u64),
    retry_at: Instant,
    retry_backoff: Duration,
}

impl AtLeastOnce {
    /// Nothing committed yet, for a stage with `inputs` input topics.
    pub(super) fn new(inputs: usize) -> Self {
        AtLeastOnce {
            last_commit: (vec![-1; inputs], 0),
            retry_at: Instant::now(),
            retry_backoff: Duration::from_secs(1),
        }
    }

    /// Commits the committable offsets if they moved since the last
    /// attempt, or if a commit failed since.
    pub(super) fn commit<C: ConsumerContext + 'static>(
        &mut self,
        scope: &Scope<'_, C>,
        mode: CommitMode,
    ) {
        let shared = scope.shared;
        let failures = shared.metrics.commit_failures.load(Relaxed);
        let positions = scope.ledger.committable();
        if positions == self.last_commit.0.as_slice() && failures == self.last_commit.1 {
            return;
        }
        let mut tpl = TopicPartitionList::with_capacity(positions.len());
        for (topic, next) in shared.config.inputs.iter().zip(positions) {
            if *next >= 0 {
                // Cannot fail: the offset is a plain non-negative offset.
                let _ = tpl.add_partition_offset(topic, scope.partition, Offset::Offset(*next));
            }
        }
        if tpl.count() == 0 {
            return;
        }
        self.last_commit = (positions.to_vec(), failures);
        if let Err(e) = scope.consumer.commit(&tpl, mode) {
            shared.metrics.commit_failures.fetch_add(1, Relaxed);
            self.last_commit.1 = u64::MAX;
            tracing::warn!(
                "stage \"{}\", partition {}: commit failed: {e}; it is made again later",
                shared.config.name,
                scope.partition
            );
        } else if matches!(mode, CommitMode::Sync) {
            tracing::debug!(stage = %shared.config.name, partition = scope.partition, ?positions, "committed");
        }
    }

    /// Some records of the batches in flight could not be produced: once
    /// the backoff has passed, produces them again. An error names a record
    /// the broker refuses for good, or one that cannot be queued again.
    pub(super) fn deliveries_failed<C: ConsumerContext + 'static>(
        &mut self,
        scope: &Scope<'_, C>,
    ) -> Result<Next, StageFailure> {
        if Instant::now() < self.retry_at {
            return Ok(Next::Continue);
        }
        let shared = scope.shared;
        let mut fatal = None;
        let mut retried = 0;
        for sent in scope.ledger.iter() {
            for f in sent.acks.take_failures() {
                if produce::is_permanent(&f.error) {
                    sent.acks.lose();
                    fatal.get_or_insert_with(|| StageFailure::Refused {
                        topic: rdkafka::message::Message::topic(&f.message).to_string(),
                        source: f.error.clone(),
                    });
                    continue;
                }
                if let Err(source) = shared.producer.resend(&f.message, &sent.acks) {
                    sent.acks.lose();
                    fatal.get_or_insert_with(|| StageFailure::Produce {
                        topic: rdkafka::message::Message::topic(&f.message).to_string(),
                        source,
                    });
                    continue;
                }
                if retried == 0 {
                    tracing::warn!(
                        "stage \"{}\", partition {}: the producer gave up on a record ({}); producing it again",
                        shared.config.name,
                        scope.partition,
                        f.error
                    );
                }
                retried += 1;
            }
        }
        shared.metrics.produce_retries.fetch_add(retried, Relaxed);
        self.retry_at = Instant::now() + self.retry_backoff;
        self.retry_backoff = (self.retry_backoff * 2).min(MAX_RETRY_BACKOFF);
        fatal.map_or(Ok(Next::Continue), Err)
    }

    /// Batches settled with nothing failing: the next failure is retried
    /// after the shortest backoff again.
    pub(super) fn settled(&mut self) {
        self.retry_backoff = Duration::from_secs(1);
    }
}
