//! The transactional producer of one worker under
//! `guarantee = "exactly-once"`.
//!
//! Each (stage, partition) worker owns a producer whose `transactional.id`
//! is `<group>.<stage>.<partition>`: stable across restarts and hosts, so
//! the instance that takes a partition over fences the one that had it
//! (its open transaction is aborted by the broker, its later writes are
//! refused). Everything the worker writes for its batches (outputs, dead
//! letters, changelog records) goes through that producer, inside the open
//! transaction, and the input offsets join the same transaction through
//! `send_offsets_to_transaction`; `commit_transaction` then makes all of it
//! visible to `read_committed` readers at once, or none of it.
//!
//! Errors come back as [`TxnError`]: [`TxnError::Abortable`] means the
//! transaction is lost but the producer can go on after an abort (the
//! worker rewinds to the last commit), [`TxnError::Fatal`] that it cannot
//! (fenced by a newer instance, or in librdkafka's fatal state).

use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer as _;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;

use super::client::transactional_producer_config;
use super::produce::Producer;
use crate::config::KafkaConfig;

/// How long one transaction call (init, send offsets, commit, abort) may
/// wait for the cluster.
pub const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Attempts of a call whose error says that trying again may work.
const RETRIES: usize = 3;

/// Why a transaction call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// The open transaction failed: abort it, then go on from the last
    /// commit.
    #[error("{0}")]
    Abortable(String),
    /// The producer cannot go on: another instance with the same
    /// transactional id fenced it, or librdkafka reports a fatal error.
    #[error("{0}")]
    Fatal(String),
}

impl TxnError {
    /// Sorts a librdkafka error of the call `what`.
    pub fn of(what: &str, e: &KafkaError) -> TxnError {
        let message = format!("{what}: {e}");
        if let KafkaError::Transaction(r) = e {
            if r.is_fatal() {
                return TxnError::Fatal(message);
            }
            if r.txn_requires_abort() || r.is_retriable() {
                return TxnError::Abortable(message);
            }
        }
        match e.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed,
            ) => TxnError::Fatal(message),
            _ => TxnError::Abortable(message),
        }
    }
}

/// True when trying the same call again may succeed.
fn retriable(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(r) if r.is_retriable() && !r.is_fatal())
}

/// A worker's transactional producer and whether a transaction is open.
pub struct Transactions {
    producer: Producer,
    id: String,
    open: bool,
}

impl Transactions {
    /// Creates the producer with `transactional.id = id` and registers it
    /// with the cluster (`init_transactions`), which fences any earlier
    /// producer with the same id and aborts its open transaction.
    pub fn start(kafka: &KafkaConfig, id: &str) -> Result<Transactions, TxnError> {
        let producer = Producer::with_config(&transactional_producer_config(kafka, id))
            .map_err(|e| TxnError::Fatal(format!("cannot create the producer {id}: {e}")))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match producer.client().init_transactions(TXN_CALL_TIMEOUT) {
                Ok(()) => break,
                Err(e) if retriable(&e) && attempt < RETRIES => {
                    tracing::warn!("transactional producer {id}: init_transactions: {e}; again");
                }
                Err(e) => {
                    // Whatever the kind, a producer that could not register
                    // cannot write a transaction.
                    let what = format!("transactional producer {id}: init_transactions");
                    return Err(TxnError::Fatal(TxnError::of(&what, &e).to_string()));
                }
            }
        }
        tracing::debug!("transactional producer {id} registered");
        Ok(Transactions {
            producer,
            id: id.to_string(),
            open: false,
        })
    }

    /// The transactional id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The producer to send the transaction's records through.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// True while a transaction is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Opens a transaction unless one is open.
    pub fn begin(&mut self) -> Result<(), TxnError> {
        if self.open {
            return Ok(());
        }
        self.producer
            .client()
            .begin_transaction()
            .map_err(|e| TxnError::of(&format!("{}: begin_transaction", self.id), &e))?;
        self.open = true;
        Ok(())
    }

    /// Adds `offsets` (the next offset to read per input partition) to the
    /// open transaction as `group`'s commit, then commits it: waits until
    /// every record sent in it is acknowledged, and makes records and
    /// offsets visible together. Does nothing when no transaction is open.
    pub fn commit(
        &mut self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), TxnError> {
        if !self.open {
            return Ok(());
        }
        let client = self.producer.client();
        if offsets.count() > 0 {
            self.retry("send_offsets_to_transaction", || {
                client.send_offsets_to_transaction(offsets, group, TXN_CALL_TIMEOUT)
            })?;
        }
        self.retry("commit_transaction", || {
            client.commit_transaction(TXN_CALL_TIMEOUT)
        })?;
        self.open = false;
        Ok(())
    }

    /// Aborts the open transaction: none of its records or offsets will be
    /// visible to `read_committed` readers. Does nothing when none is open.
    pub fn abort(&mut self) -> Result<(), TxnError> {
        if !self.open {
            return Ok(());
        }
        let client = self.producer.client();
        let result = self.retry("abort_transaction", || {
            client.abort_transaction(TXN_CALL_TIMEOUT)
        });
        match result {
            Ok(()) => {
                self.open = false;
                Ok(())
            }
            // An abort that fails leaves nothing to go on with.
            Err(e) => Err(TxnError::Fatal(e.to_string())),
        }
    }

    /// Runs `call` up to [`RETRIES`] times while its error is retriable.
    fn retry(
        &self,
        what: &str,
        mut call: impl FnMut() -> Result<(), KafkaError>,
    ) -> Result<(), TxnError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match call() {
                Ok(()) => return Ok(()),
                Err(e) if retriable(&e) && attempt < RETRIES => {
                    tracing::warn!("transactional producer {}: {what}: {e}; again", self.id);
                }
                Err(e) => return Err(TxnError::of(&format!("{}: {what}", self.id), &e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::produce::{Acks, OutRecord};
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::RDKafkaRespErr;
    use rdkafka::{ClientConfig, Offset};

    fn group_metadata(bootstrap: &str) -> (BaseConsumer, ConsumerGroupMetadata) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "g.s")
            .create()
            .unwrap();
        let meta = consumer.group_metadata().unwrap();
        (consumer, meta)
    }

    fn send(t: &Transactions, value: &str) -> std::sync::Arc<Acks> {
        let acks = Acks::new(std::thread::current());
        let record = OutRecord {
            value: Some(value.as_bytes()),
            ..OutRecord::default()
        };
        t.producer().send("out", record, &acks).unwrap();
        acks.close();
        acks
    }

    #[test]
    fn a_transaction_commits_its_records_and_offsets() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("out", 1, 1).unwrap();
        cluster.create_topic("in", 1, 1).unwrap();
        let kafka = KafkaConfig::new(cluster.bootstrap_servers(), "g");
        let mut t = Transactions::start(&kafka, "g.s.0").unwrap();
        assert_eq!(t.id(), "g.s.0");
        let (_consumer, meta) = group_metadata(&cluster.bootstrap_servers());
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("in", 0, Offset::Offset(1))
            .unwrap();
        assert!(!t.is_open());
        t.commit(&offsets, &meta).unwrap();
        t.begin().unwrap();
        t.begin().unwrap();
        assert!(t.is_open());
        let acks = send(&t, "one");
        t.commit(&offsets, &meta).unwrap();
        assert!(!t.is_open());
        // The commit waited for the broker; the delivery report follows.
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while !acks.is_done() && std::time::Instant::now() < end {
            std::thread::park_timeout(Duration::from_millis(20));
        }
        assert!(acks.is_done());
        t.begin().unwrap();
        send(&t, "two");
        t.abort().unwrap();
        assert!(!t.is_open());
        t.abort().unwrap();
    }

    #[test]
    fn a_failed_commit_is_abortable_and_the_producer_goes_on_after_the_abort() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("out", 1, 1).unwrap();
        let kafka = KafkaConfig::new(cluster.bootstrap_servers(), "g");
        let mut t = Transactions::start(&kafka, "g.s.1").unwrap();
        let (_consumer, meta) = group_metadata(&cluster.bootstrap_servers());
        // The broker refuses to add the output partition to the
        // transaction: the record cannot be part of it.
        cluster.request_errors(
            rdkafka::types::RDKafkaApiKey::AddPartitionsToTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS],
        );
        t.begin().unwrap();
        send(&t, "lost");
        let err = t.commit(&TopicPartitionList::new(), &meta).unwrap_err();
        assert!(matches!(err, TxnError::Abortable(_)), "{err:?}");
        assert!(
            err.to_string().starts_with("g.s.1: commit_transaction: "),
            "{err}"
        );
        assert!(t.is_open());
        t.abort().unwrap();
        t.begin().unwrap();
        send(&t, "kept");
        t.commit(&TopicPartitionList::new(), &meta).unwrap();
    }

    #[test]
    fn a_send_refused_until_the_failed_transaction_is_aborted_is_flagged_once() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("out", 1, 1).unwrap();
        let kafka = KafkaConfig::new(cluster.bootstrap_servers(), "g");
        let mut t = Transactions::start(&kafka, "g.s.3").unwrap();
        cluster.request_errors(
            rdkafka::types::RDKafkaApiKey::AddPartitionsToTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS],
        );
        t.begin().unwrap();
        let acks = send(&t, "lost");
        let end = std::time::Instant::now() + Duration::from_secs(10);
        while acks.pending() > 0 && std::time::Instant::now() < end {
            std::thread::park_timeout(Duration::from_millis(20));
        }
        assert!(acks.has_failures(), "the record's report is a failure");
        assert!(!t.producer().take_refused_in_transaction());
        let again = Acks::new(std::thread::current());
        let err = t
            .producer()
            .send("out", OutRecord::default(), &again)
            .unwrap_err();
        assert_eq!(
            err.rdkafka_error_code(),
            Some(RDKafkaErrorCode::State),
            "{err}"
        );
        assert!(t.producer().take_refused_in_transaction());
        assert!(!t.producer().take_refused_in_transaction(), "once");
        t.abort().unwrap();
        t.begin().unwrap();
        send(&t, "kept");
        assert!(!t.producer().take_refused_in_transaction());
    }

    #[test]
    fn a_fenced_producer_is_fatal() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("out", 1, 1).unwrap();
        let kafka = KafkaConfig::new(cluster.bootstrap_servers(), "g");
        let mut t = Transactions::start(&kafka, "g.s.2").unwrap();
        let (_consumer, meta) = group_metadata(&cluster.bootstrap_servers());
        t.begin().unwrap();
        send(&t, "zombie");
        cluster.request_errors(
            rdkafka::types::RDKafkaApiKey::EndTxn,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
        );
        let err = t.commit(&TopicPartitionList::new(), &meta).unwrap_err();
        assert!(matches!(err, TxnError::Fatal(_)), "{err:?}");
    }

    #[test]
    fn errors_are_sorted_by_what_can_follow() {
        let fenced = KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced);
        assert!(matches!(TxnError::of("x", &fenced), TxnError::Fatal(_)));
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert_eq!(
            TxnError::of("commit", &timeout),
            TxnError::Abortable(format!("commit: {timeout}"))
        );
    }
}
