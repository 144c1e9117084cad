//! Why a run ended with an error: typed, with the underlying error kept as
//! the source, and saying whether running again can help.
//!
//! [`RunError`] is what [`run`](super::run) returns: the pipeline is
//! invalid, the run could not start ([`SetupError`]), or a stage stopped it
//! while running ([`StageFailure`], with the stage and partition). Each
//! answers [`retryable`](RunError::retryable): true when the same pipeline
//! started again may well succeed (a broker that could not be reached, a
//! partition whose state could not be restored yet), false when it would
//! fail the same way (an invalid file, a record that stops the stage, a
//! record the broker refuses for good, a fenced producer).

use std::error::Error;
use std::fmt;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::ConfigError;
use crate::kafka::produce;
use crate::kafka::transactions::TxnError;

/// Any error kept as a source.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Why a run ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The pipeline file or a processor is invalid: every problem.
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// The run could not start (a broker out of reach, missing topics, a
    /// port in use...).
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A stage stopped the run while it ran.
    #[error(transparent)]
    Failed(Box<RunFailure>),
}

impl From<RunFailure> for RunError {
    fn from(failure: RunFailure) -> RunError {
        RunError::Failed(Box::new(failure))
    }
}

impl RunError {
    /// True when the run failed while running; false when it could not
    /// start (an invalid pipeline, a setup failure).
    pub fn while_running(&self) -> bool {
        matches!(self, RunError::Failed(_))
    }

    /// True when running the same pipeline again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            RunError::Invalid(_) => false,
            RunError::Setup(e) => e.retryable,
            RunError::Failed(f) => f.failure.retryable(),
        }
    }

    /// The message and every source under it, joined by `": "`.
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// The run could not start: what was being done, and why it failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct SetupError {
    /// What could not be done, naming the topic, address or stage.
    pub what: String,
    /// Whether starting again may succeed (the broker was out of reach,
    /// for example).
    pub retryable: bool,
    /// The underlying error, if any.
    #[source]
    pub source: Option<BoxError>,
}

impl SetupError {
    /// A problem that starting again will meet again (missing topics, a
    /// port in use).
    pub(crate) fn permanent(what: impl Into<String>) -> SetupError {
        SetupError {
            what: what.into(),
            retryable: false,
            source: None,
        }
    }

    /// `what` failed because of `source`, a problem that starting again
    /// will meet again.
    pub(crate) fn caused(what: impl Into<String>, source: impl Into<BoxError>) -> SetupError {
        SetupError {
            what: what.into(),
            retryable: false,
            source: Some(source.into()),
        }
    }

    /// `what` failed talking to the broker: starting again may succeed.
    pub(crate) fn broker(what: impl Into<String>, source: impl Into<BoxError>) -> SetupError {
        SetupError {
            what: what.into(),
            retryable: true,
            source: Some(source.into()),
        }
    }
}

/// A stage stopped the run: which one, on which partition, and why.
#[derive(Debug, thiserror::Error)]
#[error("stage \"{stage}\"{}", partition.map(|p| format!(", partition {p}")).unwrap_or_default())]
pub struct RunFailure {
    /// The stage.
    pub stage: String,
    /// The partition whose worker failed (`None`: the stage's consumer).
    pub partition: Option<i32>,
    /// Why.
    #[source]
    pub failure: StageFailure,
}

/// Why a stage stopped the run.
#[derive(Debug, thiserror::Error)]
pub enum StageFailure {
    /// A record failed and the stage's `on_error` is `"stop"`: its offset
    /// is committed as the next to read, so a new run stops at it again.
    #[error("stopped at {topic}/{partition} offset {offset} (on_error = \"stop\"): {reason}")]
    StoppedAt {
        /// Input topic of the record.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// Why the record failed.
        reason: String,
    },
    /// The producer would not take an output (or a dead letter).
    #[error("cannot produce to {topic}")]
    Produce {
        /// The topic written to.
        topic: String,
        /// The client's error.
        #[source]
        source: KafkaError,
    },
    /// The broker refused an output for good (too large, a forbidden
    /// topic...): it would refuse it again.
    #[error("the broker refuses a record for {topic}")]
    Refused {
        /// The topic written to.
        topic: String,
        /// The broker's answer.
        #[source]
        source: KafkaError,
    },
    /// The transactional producer cannot go on (fenced by another owner
    /// of the partition, or failed).
    #[error("{0}")]
    Transaction(#[from] TxnError),
    /// The stage's consumer failed, or its assignment could not be served.
    #[error("{what}")]
    Consumer {
        /// What went wrong.
        what: String,
        /// The client's error, if any.
        #[source]
        source: Option<KafkaError>,
    },
    /// The partition's worker could not start: its processor, its state
    /// (restored from the changelog) or its transactional producer.
    #[error("{what}")]
    Start {
        /// What could not start.
        what: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A thread of the host could not be started.
    #[error("cannot start a worker thread")]
    Thread(#[source] std::io::Error),
    /// The worker panicked: a bug in the host.
    #[error("worker panicked: {0}")]
    Panicked(String),
}

impl StageFailure {
    /// True when a new run may get past this failure.
    pub fn retryable(&self) -> bool {
        match self {
            StageFailure::StoppedAt { .. } | StageFailure::Refused { .. } => false,
            StageFailure::Panicked(_) => false,
            StageFailure::Produce { source, .. } => !produce::is_permanent(source),
            StageFailure::Transaction(t) => matches!(t, TxnError::Abortable(_)),
            StageFailure::Consumer { source, .. } => !matches!(
                source.as_ref().and_then(KafkaError::rdkafka_error_code),
                Some(RDKafkaErrorCode::FencedInstanceId)
            ),
            StageFailure::Start { .. } | StageFailure::Thread(_) => true,
        }
    }
}

/// `error` and its sources, joined by `": "`.
pub(crate) fn chain(error: &dyn Error) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        // A source whose text is already in its parent's adds nothing.
        if !out.ends_with(&text) {
            use fmt::Write;
            let _ = write!(out, ": {text}");
        }
        next = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(failure: StageFailure) -> RunError {
        RunFailure {
            stage: "count".into(),
            partition: Some(3),
            failure,
        }
        .into()
    }

    #[test]
    fn a_failure_names_its_stage_partition_and_cause() {
        let e = failed(StageFailure::Produce {
            topic: "out".into(),
            source: KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
        });
        assert_eq!(e.to_string(), "stage \"count\", partition 3");
        let chain = e.chain();
        assert!(
            chain.starts_with("stage \"count\", partition 3: cannot produce to out: "),
            "{chain}"
        );
        assert!(chain.contains("Queue full"), "{chain}");
        assert!(e.retryable());
        assert!(e.while_running());
    }

    #[test]
    fn what_would_fail_the_same_way_again_is_not_retryable() {
        let stop = failed(StageFailure::StoppedAt {
            topic: "in".into(),
            partition: 0,
            offset: 7,
            reason: "rejected: bad".into(),
        });
        assert!(!stop.retryable());
        assert_eq!(
            stop.chain(),
            "stage \"count\", partition 3: stopped at in/0 offset 7 (on_error = \"stop\"): rejected: bad"
        );
        let too_large = failed(StageFailure::Produce {
            topic: "out".into(),
            source: KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
        });
        assert!(!too_large.retryable());
        assert!(!failed(StageFailure::Transaction(TxnError::Fatal("fenced".into()))).retryable());
        let fenced_member = failed(StageFailure::Consumer {
            what: "the consumer failed for good".into(),
            source: Some(KafkaError::MessageConsumption(
                RDKafkaErrorCode::FencedInstanceId,
            )),
        });
        assert!(!fenced_member.retryable());
        assert!(!RunError::Setup(SetupError::permanent("missing topics")).retryable());
    }

    #[test]
    fn a_setup_error_keeps_its_source() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let e = RunError::Setup(SetupError::caused("cannot serve metrics on 0.0.0.0:1", io));
        assert_eq!(
            e.chain(),
            "cannot serve metrics on 0.0.0.0:1: address in use"
        );
        assert!(e.source().is_some());
        assert!(!e.while_running());
        let broker = SetupError::broker("cannot list the topics", KafkaError::NoMessageReceived);
        assert!(RunError::Setup(broker).retryable());
    }
}
