//! The delivery guarantee of a worker, chosen once when it starts:
//! at-least-once ([`AtLeastOnce`]: offsets committed through the consumer
//! group after the outputs are acknowledged) or exactly-once
//! ([`ExactlyOnce`]: one Kafka transaction per commit interval). The
//! worker's loop is the same for both; it asks its guarantee which
//! producer to write through, tells it when a batch begins, when to commit
//! and when records could not be produced, and does what the answer says.

use rdkafka::consumer::{BaseConsumer, CommitMode, ConsumerContext};

use super::super::batch::BatchBuilder;
use super::super::ledger::Ledger;
use super::super::{StageFailure, StageShared};
use super::at_least_once::AtLeastOnce;
use super::exactly_once::ExactlyOnce;
use crate::config;
use crate::kafka::produce::Producer;

/// What the worker does next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Go on.
    Continue,
    /// The open transaction was aborted: drop the batches in flight, read
    /// each input again from this offset (-1: leave it), and start the
    /// processor again with its state as of the last commit.
    Rewind(Vec<i64>),
}

/// What a guarantee sees of its worker.
pub(super) struct Scope<'a, C: ConsumerContext + 'static> {
    /// The stage.
    pub shared: &'a StageShared,
    /// The partition.
    pub partition: i32,
    /// The stage's consumer.
    pub consumer: &'a BaseConsumer<C>,
    /// The batches in flight.
    pub ledger: &'a Ledger,
}

/// A worker's guarantee; see the module docs.
pub(super) enum Guarantee {
    /// `guarantee = "at-least-once"`.
    AtLeastOnce(AtLeastOnce),
    /// `guarantee = "exactly-once"`.
    ExactlyOnce(ExactlyOnce),
}

impl Guarantee {
    /// The stage's guarantee for `partition`. Exactly-once registers the
    /// worker's transactional producer, fencing the partition's previous
    /// owner, so call it before the state is restored.
    pub(super) fn start(shared: &StageShared, partition: i32) -> Result<Guarantee, StageFailure> {
        Ok(match shared.kafka.guarantee {
            config::Guarantee::AtLeastOnce => {
                Guarantee::AtLeastOnce(AtLeastOnce::new(shared.config.inputs.len()))
            }
            config::Guarantee::ExactlyOnce => {
                Guarantee::ExactlyOnce(ExactlyOnce::start(shared, partition)?)
            }
        })
    }

    /// The producer the worker writes through: its transactional producer
    /// under exactly-once, else the process's shared one.
    pub(super) fn producer<'a>(&'a self, shared: &'a Producer) -> &'a Producer {
        match self {
            Guarantee::AtLeastOnce(_) => shared,
            Guarantee::ExactlyOnce(e) => e.producer(),
        }
    }

    /// Before the records of the batch in hand (or of an idle timer call)
    /// are produced. An error stops the worker.
    pub(super) fn begin(&mut self, batch: &BatchBuilder) -> Result<(), StageFailure> {
        match self {
            Guarantee::AtLeastOnce(_) => Ok(()),
            Guarantee::ExactlyOnce(e) => e.begin(batch),
        }
    }

    /// Commits what the worker has done so far. `failing`: the worker
    /// stops on an error, so an open transaction is aborted instead.
    pub(super) fn commit<C: ConsumerContext + 'static>(
        &mut self,
        scope: &Scope<'_, C>,
        mode: CommitMode,
        failing: bool,
    ) -> Result<Next, StageFailure> {
        match self {
            Guarantee::AtLeastOnce(a) => {
                a.commit(scope, mode);
                Ok(Next::Continue)
            }
            Guarantee::ExactlyOnce(e) => e.commit(scope, failing),
        }
    }

    /// Some records of the batches in flight could not be produced.
    pub(super) fn deliveries_failed<C: ConsumerContext + 'static>(
        &mut self,
        scope: &Scope<'_, C>,
    ) -> Result<Next, StageFailure> {
        match self {
            Guarantee::AtLeastOnce(a) => a.deliveries_failed(scope),
            Guarantee::ExactlyOnce(e) => e.deliveries_failed(scope),
        }
    }

    /// Whether batches acknowledged after the worker failed still count
    /// (at-least-once commits them); under exactly-once the open
    /// transaction is aborted, so a failing worker waits for nothing (a
    /// fenced producer's records would never be acknowledged).
    pub(super) fn keeps_acknowledged_on_failure(&self) -> bool {
        matches!(self, Guarantee::AtLeastOnce(_))
    }

    /// Batches settled and nothing is failing.
    pub(super) fn settled(&mut self) {
        if let Guarantee::AtLeastOnce(a) = self {
            a.settled();
        }
    }

    /// A batch (or timer call) could not queue a record: the worker fails
    /// with `why`, except under exactly-once when the producer refused the
    /// record because the transaction must be aborted.
    pub(super) fn batch_failed<C: ConsumerContext + 'static>(
        &mut self,
        scope: &Scope<'_, C>,
        why: StageFailure,
    ) -> Result<Next, StageFailure> {
        match self {
            Guarantee::AtLeastOnce(_) => Err(why),
            Guarantee::ExactlyOnce(e) => e.batch_failed(scope, why),
        }
    }
}
