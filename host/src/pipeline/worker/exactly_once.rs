//! The worker under `guarantee = "exactly-once"`: one Kafka transaction
//! per commit interval.
//!
//! The first batch after a commit opens a transaction on the worker's own
//! transactional producer ([`Transactions`], id
//! `<group>.<stage>.<partition>`); every record the worker writes for its
//! batches goes through that producer, so it joins the transaction. When
//! the commit interval has passed, or the worker stops, the offsets after
//! the last batch processed are added to the transaction with the
//! consumer's group metadata and the transaction is committed: outputs,
//! dead letters, changelog records and offsets become visible together.
//! The asynchronous offset commits of at-least-once are not used.
//!
//! A record the producer gives up on, or a commit that fails in a way that
//! leaves the producer usable, aborts the transaction and answers
//! [`Next::Rewind`]: the worker drops the batches in it, seeks its input
//! partitions back to where the last committed transaction ended, and
//! starts its processor again, which opens the partition's state as of the
//! last commit. A fenced or fatal producer stops the worker, and so the run,
//! with an error naming the stage and partition.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use partita_wire::Batch;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::super::batch::BatchBuilder;
use super::super::ledger::Ledger;
use super::super::{StageFailure, StageShared};
use super::guarantee::{Next, Scope};
use crate::config::KafkaConfig;
use crate::kafka::produce::{self, Failure, Producer};
use crate::kafka::transactions::{TXN_CALL_TIMEOUT, Transactions, TxnError};

/// The transactional state of one worker.
pub(super) struct ExactlyOnce {
    txn: Transactions,
    /// Per input: the offset where the last committed transaction ended,
    /// where an abort rewinds to; before the first commit, the offset of
    /// the first record read (-1: no record read yet).
    base: Vec<i64>,
    /// Transactions committed, for the debug log.
    committed: u64,
}

/// The transactional id of `stage`'s worker for `partition`: stable
/// across restarts, so that a new instance fences the previous one.
pub(crate) fn transactional_id(kafka: &KafkaConfig, stage: &str, partition: i32) -> String {
    format!("{}.{stage}.{partition}", kafka.group)
}

impl ExactlyOnce {
    /// Registers the worker's transactional producer.
    pub(super) fn start(shared: &StageShared, partition: i32) -> Result<ExactlyOnce, StageFailure> {
        let id = transactional_id(&shared.kafka, &shared.config.name, partition);
        let txn = Transactions::start(&shared.kafka, &id)?;
        tracing::info!(
            "stage \"{}\", partition {partition}: exactly-once, transactional id {id}",
            shared.config.name
        );
        Ok(ExactlyOnce {
            txn,
            base: vec![-1; shared.config.inputs.len()],
            committed: 0,
        })
    }

    /// The transactional producer every record of the worker goes through.
    pub(super) fn producer(&self) -> &Producer {
        self.txn.producer()
    }

    /// Before records are produced for the batch in hand (or for idle
    /// timer outputs): opens a transaction unless one is open, and notes
    /// where the first transaction starts.
    pub(super) fn begin(&mut self, batch: &BatchBuilder) -> Result<(), StageFailure> {
        if self.base.iter().any(|b| *b < 0) && !batch.is_empty() {
            // Only until every input has had a record: parsing the batch
            // again is cheap next to producing it.
            if let Ok(parsed) = Batch::parse(batch.writer().as_bytes()) {
                for (i, record) in parsed.records().enumerate() {
                    let Ok(record) = record else { break };
                    let input = batch.input_of(i) as usize;
                    if self.base[input] < 0 {
                        self.base[input] = record.offset;
                    }
                }
            }
        }
        Ok(self.txn.begin()?)
    }

    /// Commits the open transaction with the offsets after every batch
    /// processed in it; a failing worker's open transaction is aborted
    /// instead (nothing of it is kept).
    pub(super) fn commit<C: ConsumerContext + 'static>(
        &mut self,
        scope: &Scope<'_, C>,
        failing: bool,
    ) -> Result<Next, StageFailure> {
        let shared = scope.shared;
        if failing {
            if let Err(e) = self.txn.abort() {
                tracing::warn!(
                    "stage \"{}\", partition {}: {e}",
                    shared.config.name,
                    scope.partition
                );
            }
            return Ok(Next::Continue);
        }
        if !self.txn.is_open() {
            return Ok(Next::Continue);
        }
        let offsets = processed_offsets(scope.ledger);
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        let inputs = shared.config.inputs.iter().zip(&offsets);
        for ((topic, next), base) in inputs.zip(&self.base) {
            // Only offsets that moved: an idle partition's transaction
            // (timer calls) then costs no request to the broker.
            if *next >= 0 && *next > *base {
                // Cannot fail: the offset is a plain non-negative offset.
                let _ = tpl.add_partition_offset(topic, scope.partition, Offset::Offset(*next));
            }
        }
        let Some(group) = scope.consumer.group_metadata() else {
            return Err(StageFailure::Consumer {
                what: "the consumer has no group metadata to commit with".into(),
                source: None,
            });
        };
        match self.txn.commit(&tpl, &group) {
            Ok(()) => {
                for (base, next) in self.base.iter_mut().zip(&offsets) {
                    if *next >= 0 {
                        *base = *next;
                    }
                }
                self.committed += 1;
                shared.metrics.transactions.fetch_add(1, Relaxed);
                tracing::debug!(
                    stage = %shared.config.name,
                    partition = scope.partition,
                    ?offsets,
                    transactions = self.committed,
                    "transaction committed"
                );
                Ok(Next::Continue)
            }
            Err(TxnError::Abortable(why)) => self.abort(scope, &why),
            Err(fatal) => Err(fatal.into()),
        }
    }

    /// A record of the open transaction could not be produced: the
    /// transaction is aborted and its batches are done again, unless the
    /// broker refuses the record for good (too large, a forbidden
    /// topic...), which would fail the same way each time: that stops the
    /// worker, as under at-least-once.
    pub(super) fn deliveries_failed<C: ConsumerContext + 'static>(
        &mut self,
        scope: &Scope<'_, C>,
    ) -> Result<Next, StageFailure> {
        let failures: Vec<Failure> = scope
            .ledger
            .iter()
            .flat_map(|s| s.acks.take_failures())
            .collect();
        if let Some(f) = failures.iter().find(|f| produce::is_permanent(&f.error)) {
            // Nothing of the transaction counts as delivered any more.
            for sent in scope.ledger.iter() {
                sent.acks.lose();
            }
            return Err(StageFailure::Refused {
                topic: rdkafka::message::Message::topic(&f.message).to_string(),
                source: f.error.clone(),
            });
        }
        let why = failures
            .first()
            .map(|f| {
                let topic = rdkafka::message::Message::topic(&f.message);
                format!("a record for {topic} could not be produced: {}", f.error)
            })
            .unwrap_or_else(|| "a record could not be produced".into());
        self.abort(scope, &why)
    }

    /// A batch (or timer call) could not queue a record: when the producer
    /// refused it because one of the transaction's records failed, the
    /// transaction is aborted and its batches done again; else the worker
    /// fails with `why`.
    pub(super) fn batch_failed<C: ConsumerContext + 'static>(
        &mut self,
        scope: &Scope<'_, C>,
        why: StageFailure,
    ) -> Result<Next, StageFailure> {
        if !self.txn.producer().take_refused_in_transaction() {
            return Err(why);
        }
        // The failed record's report tells an abortable failure from a
        // record refused for good: wait for the reports in flight.
        let end = Instant::now() + TXN_CALL_TIMEOUT;
        while scope.ledger.pending_records() > 0 && Instant::now() < end {
            std::thread::park_timeout(Duration::from_millis(10));
        }
        self.deliveries_failed(scope)
    }

    /// Aborts the open transaction; the worker goes back to where the last
    /// committed one ended.
    fn abort<C: ConsumerContext + 'static>(
        &mut self,
        scope: &Scope<'_, C>,
        why: &str,
    ) -> Result<Next, StageFailure> {
        tracing::warn!(
            "stage \"{}\", partition {}: transaction aborted ({why}); \
             processing again from the last commit",
            scope.shared.config.name,
            scope.partition
        );
        scope
            .shared
            .metrics
            .transaction_aborts
            .fetch_add(1, Relaxed);
        self.txn.abort()?;
        Ok(Next::Rewind(self.base.clone()))
    }
}

/// Per input, the offset after the last record of every batch processed
/// so far (in flight or settled); -1 where none.
fn processed_offsets(ledger: &Ledger) -> Vec<i64> {
    let mut next = ledger.committable().to_vec();
    for sent in ledger.iter() {
        for (n, s) in next.iter_mut().zip(&sent.next) {
            *n = (*n).max(*s);
        }
    }
    next
}

#[cfg(test)]
mod tests;
