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
//! leaves the producer usable, aborts the transaction: the worker drops
//! the batches in it, seeks its input partitions back to where the last
//! committed transaction ended, and starts its processor again from the
//! runner factory, which opens the partition's state as of the last
//! commit. A fenced or fatal producer stops the worker, and so the run,
//! with an error naming the stage and partition.

use std::time::Instant;

use anyhow::anyhow;
use partita_wire::Batch;
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::super::StageShared;
use super::super::ledger::Ledger;
use super::Worker;
use super::processing::Processing;
use crate::config::{Guarantee, KafkaConfig};
use crate::kafka::produce::{self, Producer};
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
    /// Under exactly-once, registers the worker's transactional producer;
    /// `None` under at-least-once.
    pub(super) fn start(
        shared: &StageShared,
        partition: i32,
    ) -> anyhow::Result<Option<ExactlyOnce>> {
        if shared.kafka.guarantee != Guarantee::ExactlyOnce {
            return Ok(None);
        }
        let id = transactional_id(&shared.kafka, &shared.config.name, partition);
        let txn = Transactions::start(&shared.kafka, &id).map_err(|e| anyhow!("{e}"))?;
        tracing::info!(
            "stage \"{}\", partition {partition}: exactly-once, transactional id {id}",
            shared.config.name
        );
        Ok(Some(ExactlyOnce {
            txn,
            base: vec![-1; shared.config.inputs.len()],
            committed: 0,
        }))
    }
}

/// The producer a worker writes through: its transactional producer under
/// exactly-once, else the process's shared one.
pub(super) fn producer<'a>(eos: &'a Option<ExactlyOnce>, shared: &'a Producer) -> &'a Producer {
    match eos {
        Some(e) => e.txn.producer(),
        None => shared,
    }
}

impl<C: ConsumerContext + 'static> Worker<C> {
    /// Before records are produced for the batch in hand (or for idle
    /// timer outputs): opens a transaction unless one is open, and notes
    /// where the first transaction starts. False when the worker cannot go
    /// on (it is then failing).
    pub(super) fn eos_begin(&mut self) -> bool {
        let Some(eos) = &mut self.eos else {
            return true;
        };
        if eos.base.iter().any(|b| *b < 0) && !self.batch.is_empty() {
            // Only until every input has had a record: parsing the batch
            // again is cheap next to producing it.
            if let Ok(batch) = Batch::parse(self.batch.writer().as_bytes()) {
                for (i, record) in batch.records().enumerate() {
                    let Ok(record) = record else { break };
                    let input = self.batch.input_of(i) as usize;
                    if eos.base[input] < 0 {
                        eos.base[input] = record.offset;
                    }
                }
            }
        }
        if let Err(e) = eos.txn.begin() {
            self.fatal.get_or_insert(e.to_string());
            return false;
        }
        true
    }

    /// Commits the open transaction with the offsets after every batch
    /// processed in it. True when the worker is exactly-once (the commit
    /// was handled here), false when the caller commits offsets itself.
    pub(super) fn eos_commit(&mut self) -> bool {
        let Some(eos) = &mut self.eos else {
            return false;
        };
        self.last_commit_at = Instant::now();
        if self.fatal.is_some() {
            // Nothing of a failing worker's open transaction is kept.
            if let Err(e) = eos.txn.abort() {
                tracing::warn!(
                    "stage \"{}\", partition {}: {e}",
                    self.shared.config.name,
                    self.partition
                );
            }
            return true;
        }
        if !eos.txn.is_open() {
            return true;
        }
        let offsets = self.processed_offsets();
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        let base = self
            .eos
            .as_ref()
            .map(|e| e.base.clone())
            .unwrap_or_default();
        let inputs = self.shared.config.inputs.iter().zip(&offsets);
        for ((topic, next), base) in inputs.zip(&base) {
            // Only offsets that moved: an idle partition's transaction
            // (timer calls) then costs no request to the broker.
            if *next >= 0 && *next > *base {
                // Cannot fail: the offset is a plain non-negative offset.
                let _ = tpl.add_partition_offset(topic, self.partition, Offset::Offset(*next));
            }
        }
        let Some(group) = self.consumer.group_metadata() else {
            self.fatal
                .get_or_insert_with(|| "the consumer has no group metadata to commit with".into());
            return true;
        };
        let Some(eos) = &mut self.eos else {
            return true;
        };
        match eos.txn.commit(&tpl, &group) {
            Ok(()) => {
                for (base, next) in eos.base.iter_mut().zip(&offsets) {
                    if *next >= 0 {
                        *base = *next;
                    }
                }
                eos.committed += 1;
                self.shared
                    .metrics
                    .transactions
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(
                    stage = %self.shared.config.name,
                    partition = self.partition,
                    ?offsets,
                    transactions = eos.committed,
                    "transaction committed"
                );
            }
            Err(TxnError::Abortable(why)) => self.eos_abort(&why),
            Err(TxnError::Fatal(why)) => {
                self.fatal.get_or_insert(why);
            }
        }
        true
    }

    /// A record of the open transaction could not be produced: under
    /// exactly-once the transaction is aborted and its batches are done
    /// again, unless the broker refuses the record for good (too large, a
    /// forbidden topic...), which would fail the same way each time: that
    /// stops the worker, as under at-least-once. False under at-least-once
    /// (the caller produces the record again).
    pub(super) fn eos_failed_delivery(&mut self) -> bool {
        if self.eos.is_none() {
            return false;
        }
        let failures: Vec<_> = self
            .ledger
            .iter()
            .flat_map(|s| s.acks.take_failures())
            .collect();
        let describe = |f: &crate::kafka::produce::Failure| {
            (
                rdkafka::message::Message::topic(&f.message).to_string(),
                f.error.to_string(),
            )
        };
        if let Some(f) = failures.iter().find(|f| produce::is_permanent(&f.error)) {
            let (topic, error) = describe(f);
            // Nothing of the transaction counts as delivered any more.
            for sent in self.ledger.iter() {
                sent.acks.lose();
            }
            self.fatal
                .get_or_insert_with(|| format!("the broker refuses a record for {topic}: {error}"));
            return true;
        }
        let why = failures
            .first()
            .map(|f| {
                let (topic, error) = describe(f);
                format!("a record for {topic} could not be produced: {error}")
            })
            .unwrap_or_else(|| "a record could not be produced".into());
        self.eos_abort(&why);
        true
    }

    /// A batch (or timer call) could not produce a record: the worker
    /// fails with `why`, except under exactly-once when the producer
    /// refused the record because the transaction must be aborted (one of
    /// its records failed): then the transaction is aborted and its
    /// batches done again.
    pub(super) fn batch_failed(&mut self, why: String) {
        let refused = self
            .eos
            .as_ref()
            .is_some_and(|e| e.txn.producer().take_refused_in_transaction());
        if refused && self.fatal.is_none() {
            // The failed record's report tells an abortable failure from
            // a record refused for good: wait for the reports in flight.
            let end = Instant::now() + TXN_CALL_TIMEOUT;
            while self.ledger.pending_records() > 0 && Instant::now() < end {
                std::thread::park_timeout(std::time::Duration::from_millis(10));
            }
            self.eos_failed_delivery();
        } else {
            self.fatal.get_or_insert(why);
        }
    }

    /// Per input, the offset after the last record of every batch
    /// processed so far (in flight or settled); -1 where none.
    fn processed_offsets(&self) -> Vec<i64> {
        let mut next = self.ledger.committable().to_vec();
        for sent in self.ledger.iter() {
            for (n, s) in next.iter_mut().zip(&sent.next) {
                *n = (*n).max(*s);
            }
        }
        next
    }

    /// Aborts the open transaction and goes back to where the last
    /// committed one ended: batches dropped, inputs sought back, processor
    /// (and its state) started again.
    fn eos_abort(&mut self, why: &str) {
        let (stage, partition) = (self.shared.config.name.clone(), self.partition);
        let Some(eos) = &mut self.eos else {
            return;
        };
        tracing::warn!(
            "stage \"{stage}\", partition {partition}: transaction aborted ({why}); \
             processing again from the last commit"
        );
        self.shared
            .metrics
            .transaction_aborts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = eos.txn.abort() {
            self.fatal.get_or_insert(e.to_string());
            return;
        }
        let base = eos.base.clone();
        self.ledger = Ledger::new(self.shared.config.inputs.len());
        self.batch.clear();
        for (topic, offset) in self.shared.config.inputs.iter().zip(&base) {
            if *offset < 0 {
                continue;
            }
            if let Err(e) =
                self.consumer
                    .seek(topic, partition, Offset::Offset(*offset), TXN_CALL_TIMEOUT)
            {
                self.fatal.get_or_insert_with(|| {
                    format!("cannot go back to offset {offset} of {topic} after an abort: {e}")
                });
                return;
            }
        }
        match self.restart_runner() {
            Ok(()) => {}
            Err(e) => {
                self.fatal.get_or_insert_with(|| {
                    format!("cannot start the processor again after an abort: {e:#}")
                });
            }
        }
    }

    /// A fresh runner from the factory: the processor's in-memory effects
    /// of the aborted batches are dropped, and its state is opened again
    /// as of the last commit.
    fn restart_runner(&mut self) -> anyhow::Result<()> {
        // The old runner lets go of the state store first, unclean: the
        // new one empties it and restores it from the committed changelog.
        // The aborted batches' changelog records will never be
        // acknowledged: the new writer starts afresh with the new store.
        self.processing.release_state();
        self.processing = Processing::start(&self.shared, self.partition)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
