//! Where a batch's records go: each output to the topic its output name is
//! routed to (with the input's key, value, headers and timestamp where the
//! processor kept them, and the version header on request), and each
//! rejected or failed record through the stage's error policy (skip, stop,
//! or the dead-letter topic with the reason in headers). Counts what the
//! batch came to.

use std::sync::Arc;

use partita_wire::RecordRef;

use super::super::batch::BatchBuilder;
use super::super::dlq::{self, ErrorKind};
use super::super::ledger::StopAt;
use super::super::{StageFailure, reload};
use crate::config::OnError;
use crate::engine::RecordOutcome;
use crate::kafka::produce::{self, Acks, OutRecord, Producer};
use crate::metrics::StageMetrics;

/// What one batch came to.
#[derive(Default)]
pub(super) struct Counts {
    pub(super) records: u64,
    pub(super) outputs: u64,
    pub(super) dlq: u64,
    pub(super) rejected: u64,
    pub(super) failed: u64,
    pub(super) skipped: u64,
    /// The largest record timestamp of the batch.
    pub(super) latest: Option<i64>,
}

/// Handles the records of one batch as the runner reports them.
pub(super) struct Sink<'w> {
    pub(super) producer: &'w Producer,
    pub(super) acks: &'w Arc<Acks>,
    pub(super) routes: &'w [String],
    pub(super) on_error: &'w OnError,
    pub(super) stage: &'w str,
    /// Per input, its dead-letter topic (when the policy is `dlq`).
    pub(super) dlq_topic: &'w [Option<String>],
    pub(super) version: String,
    /// Add the `partita.version` header to outputs.
    pub(super) version_header: bool,
    pub(super) batch: &'w BatchBuilder,
    pub(super) next: Vec<i64>,
    pub(super) index: usize,
    pub(super) counts: Counts,
    pub(super) stop: Option<StopAt>,
    pub(super) fatal: Option<StageFailure>,
    /// The stage's metrics (the latest dead letters).
    pub(super) metrics: &'w StageMetrics,
}

impl Sink<'_> {
    /// Maps one record's outcome: its outputs to their topics, or the error
    /// policy.
    pub(super) fn record(&mut self, record: RecordRef<'_>, outcome: RecordOutcome<'_>) {
        let input = self.batch.input_of(self.index) as usize;
        self.index += 1;
        self.counts.latest = self.counts.latest.max(Some(record.timestamp));
        if self.stop.is_some() || self.fatal.is_some() {
            return;
        }
        match outcome {
            RecordOutcome::Ok(outputs) => {
                for o in outputs.iter() {
                    let topic = &self.routes[o.output as usize];
                    let headers = match (o.headers, self.version_header) {
                        (Some(h), false) => produce::headers(h.iter()),
                        (None, false) => produce::headers(record.headers.iter()),
                        (Some(h), true) => reload::with_version(h.iter(), &self.version),
                        (None, true) => reload::with_version(record.headers.iter(), &self.version),
                    };
                    let out = OutRecord {
                        key: o.key.or_input(record.key),
                        value: o.value.or_input(record.value),
                        headers,
                        timestamp: Some(o.timestamp.unwrap_or(record.timestamp)),
                        partition: None,
                    };
                    if let Err(source) = self.producer.send(topic, out, self.acks) {
                        self.fatal = Some(StageFailure::Produce {
                            topic: topic.clone(),
                            source,
                        });
                        return;
                    }
                    self.counts.outputs += 1;
                }
            }
            RecordOutcome::Rejected(reason) => {
                self.counts.rejected += 1;
                if !self.failed(&record, input, ErrorKind::Rejected, reason) {
                    return;
                }
            }
            RecordOutcome::Failed(e) => {
                self.counts.failed += 1;
                if !self.failed(&record, input, ErrorKind::of(e), &e.to_string()) {
                    return;
                }
            }
        }
        self.counts.records += 1;
        self.next[input] = record.offset + 1;
    }

    /// Applies the error policy; false when the record stops the run (it
    /// is then not counted as handled).
    fn failed(
        &mut self,
        record: &RecordRef<'_>,
        input: usize,
        kind: ErrorKind,
        reason: &str,
    ) -> bool {
        match self.on_error {
            OnError::Skip => {
                self.counts.skipped += 1;
                true
            }
            OnError::Stop => {
                self.next[input] = record.offset;
                self.stop = Some(StopAt {
                    topic: record.topic.to_string(),
                    partition: record.partition,
                    offset: record.offset,
                    reason: format!("{}: {reason}", kind.as_str()),
                });
                false
            }
            OnError::Dlq { .. } => {
                let Some(topic) = self.dlq_topic.get(input).and_then(|t| t.as_deref()) else {
                    return true;
                };
                let pairs = dlq::headers(record, kind, reason, self.stage, &self.version);
                let headers = produce::headers(pairs.iter().map(|(k, v)| (*k, v.as_slice())));
                let out = OutRecord {
                    key: record.key,
                    value: record.value,
                    headers,
                    timestamp: Some(record.timestamp),
                    partition: None,
                };
                if let Err(source) = self.producer.send(topic, out, self.acks) {
                    self.fatal = Some(StageFailure::Produce {
                        topic: topic.to_string(),
                        source,
                    });
                    return false;
                }
                self.counts.dlq += 1;
                self.metrics.note_dead_letter(
                    (record.topic, record.partition, record.offset),
                    kind.as_str(),
                    reason,
                );
                true
            }
        }
    }
}
