//! The producer shared by every stage, and delivery tracking per batch.
//!
//! Each batch gets an [`Acks`]: a count of records sent and not yet
//! acknowledged, the failures the client gave up on, and the worker thread
//! to wake when it changes. The delivery callback (on the producer's own
//! polling thread) only touches that counter, so tracking costs one atomic
//! operation per record instead of a future and a channel per record.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::Duration;

use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseRecord, Producer as _, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};

use super::client::{self, producer_config};
use crate::config::KafkaConfig;

/// A record the client gave up on, with the error.
pub struct Failure {
    /// Why it failed.
    pub error: KafkaError,
    /// The record, to be produced again.
    pub message: OwnedMessage,
}

/// What an [`Acks`] wakes when its batch completes: a thread, and, when
/// that thread runs several workers in turns, the flag that tells it which
/// one has something new.
#[derive(Debug, Clone)]
pub struct Waker {
    thread: Thread,
    flag: Option<Arc<AtomicBool>>,
}

impl Waker {
    /// Wakes `thread`, setting `flag` first.
    pub fn new(thread: Thread, flag: Arc<AtomicBool>) -> Waker {
        Waker {
            thread,
            flag: Some(flag),
        }
    }

    /// Sets the flag, if any, and unparks the thread.
    pub fn wake(&self) {
        if let Some(flag) = &self.flag {
            flag.store(true, Ordering::Release);
        }
        self.thread.unpark();
    }
}

impl From<Thread> for Waker {
    fn from(thread: Thread) -> Waker {
        Waker { thread, flag: None }
    }
}

/// Delivery state of one batch's records.
pub struct Acks {
    /// Records sent and not yet reported, plus one while the batch is open.
    pending: AtomicUsize,
    failed: AtomicBool,
    /// A record of the batch is lost for good: the batch never completes.
    lost: AtomicBool,
    failures: Mutex<Vec<Failure>>,
    waiter: Waker,
    /// The topic whose acknowledged offsets are tracked (a changelog).
    tracked: std::sync::OnceLock<Arc<str>>,
    /// The highest offset acknowledged on `tracked`, -1 before any.
    tracked_offset: std::sync::atomic::AtomicI64,
}

impl Acks {
    /// An open batch whose changes wake `waiter`.
    pub fn new(waiter: impl Into<Waker>) -> Arc<Acks> {
        let waiter = waiter.into();
        Arc::new(Acks {
            pending: AtomicUsize::new(1),
            failed: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            failures: Mutex::default(),
            waiter,
            tracked: std::sync::OnceLock::new(),
            tracked_offset: std::sync::atomic::AtomicI64::new(-1),
        })
    }

    /// Tracks the highest offset acknowledged on `topic` (one partition of
    /// it) for records of this batch; the first topic set stays.
    pub fn track_offsets_of(&self, topic: &Arc<str>) {
        let _ = self.tracked.set(topic.clone());
    }

    /// The highest offset acknowledged so far on the tracked topic, or -1.
    /// A broker that reports no offset (-1) or a wrong one after a restart
    /// (0) only makes it lower than the truth, never higher.
    pub fn tracked_offset(&self) -> i64 {
        self.tracked_offset.load(Ordering::Acquire)
    }

    /// A record of the batch was acknowledged at `offset` of `topic`.
    pub(crate) fn delivered(&self, topic: &str, offset: i64) {
        if self.tracked.get().is_some_and(|t| &**t == topic) {
            self.tracked_offset.fetch_max(offset, Ordering::AcqRel);
        }
    }

    /// Counts one more record whose delivery will be reported.
    pub fn track(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// Closes the batch: no record will be added to it.
    pub fn close(&self) {
        self.settle();
    }

    fn settle(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.waiter.wake();
        }
    }

    /// True when the batch is closed, every record was acknowledged, no
    /// failure is waiting to be produced again and none was lost.
    pub fn is_done(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
            && !self.failed.load(Ordering::Acquire)
            && !self.lost.load(Ordering::Acquire)
    }

    /// Marks a record of the batch lost for good (the broker refuses it):
    /// the batch never completes, so nothing from it on is committed.
    pub fn lose(&self) {
        self.lost.store(true, Ordering::Release);
    }

    /// True when records the client gave up on wait to be produced again.
    pub fn has_failures(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Records sent and not yet reported (plus one while open).
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Takes the records the client gave up on.
    pub fn take_failures(&self) -> Vec<Failure> {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        self.failed.store(false, Ordering::Release);
        std::mem::take(&mut *f)
    }

    fn fail(&self, failure: Failure) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(failure);
        self.failed.store(true, Ordering::Release);
        self.settle();
    }
}

/// Routes delivery reports to their batch's [`Acks`] and logs the
/// producer's messages.
#[derive(Default)]
pub struct DeliveryContext {
    errors: client::ErrorLog,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        client::log("producer", level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.error("producer", &error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<Acks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<Acks>) {
        match result {
            Ok(m) => {
                acks.delivered(m.topic(), m.offset());
                acks.settle();
            }
            Err((error, message)) => acks.fail(Failure {
                error: error.clone(),
                message: message.detach(),
            }),
        }
    }
}

/// True for produce errors that retrying cannot fix: the record is too
/// large, the topic is invalid or forbidden, or the producer is fenced or
/// in a fatal state.
pub fn is_permanent(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidMessageSize
                | C::InvalidMessage
                | C::InvalidRecord
                | C::MessageBatchTooLarge
                | C::InvalidTopic
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::InvalidArgument
                | C::Fatal
                | C::UnsupportedForMessageFormat
        )
    )
}

/// One record to produce; `None` fields are left to the client (no key, no
/// value, no headers, the current time, the partitioner's choice).
#[derive(Default)]
pub struct OutRecord<'a> {
    /// The key.
    pub key: Option<&'a [u8]>,
    /// The value.
    pub value: Option<&'a [u8]>,
    /// The headers.
    pub headers: Option<OwnedHeaders>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// A fixed partition.
    pub partition: Option<i32>,
}

/// Headers from `(name, value)` pairs; `None` when there are none.
pub fn headers<'h>(
    pairs: impl ExactSizeIterator<Item = (&'h str, &'h [u8])>,
) -> Option<OwnedHeaders> {
    if pairs.len() == 0 {
        return None;
    }
    let mut h = OwnedHeaders::new_with_capacity(pairs.len());
    for (key, value) in pairs {
        h = h.insert(Header {
            key,
            value: Some(value),
        });
    }
    Some(h)
}

/// The process's producer.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<ThreadedProducer<DeliveryContext>>,
    /// Set when a send was refused because the producer's transaction
    /// must be aborted first (librdkafka's "Erroneous state").
    refused_in_transaction: Arc<AtomicBool>,
}

impl Producer {
    /// Builds the producer from the `[kafka]` table.
    pub fn new(kafka: &KafkaConfig) -> Result<Producer, KafkaError> {
        let inner = ThreadedProducer::from_config_and_context(
            &producer_config(kafka),
            DeliveryContext::default(),
        )?;
        Ok(Producer {
            inner: Arc::new(inner),
            refused_in_transaction: Arc::default(),
        })
    }

    /// Builds a producer from client settings of its own (a worker's
    /// transactional producer under exactly-once).
    pub fn with_config(config: &ClientConfig) -> Result<Producer, KafkaError> {
        let inner = ThreadedProducer::from_config_and_context(config, DeliveryContext::default())?;
        Ok(Producer {
            inner: Arc::new(inner),
            refused_in_transaction: Arc::default(),
        })
    }

    /// The rdkafka producer, for the transaction calls.
    pub(crate) fn client(&self) -> &ThreadedProducer<DeliveryContext> {
        &self.inner
    }

    /// Sends `record` to `topic` as part of the batch `acks`, waiting while
    /// the client's queue is full. An error here is permanent (the record
    /// cannot be queued at all).
    pub fn send(
        &self,
        topic: &str,
        record: OutRecord<'_>,
        acks: &Arc<Acks>,
    ) -> Result<(), KafkaError> {
        let mut r = BaseRecord::with_opaque_to(topic, acks.clone());
        if let Some(k) = record.key {
            r = r.key(k);
        }
        if let Some(v) = record.value {
            r = r.payload(v);
        }
        if let Some(h) = record.headers {
            r = r.headers(h);
        }
        if let Some(t) = record.timestamp.filter(|t| *t >= 0) {
            r = r.timestamp(t);
        }
        if let Some(p) = record.partition.filter(|p| *p >= 0) {
            r = r.partition(p);
        }
        acks.track();
        loop {
            match self.inner.send(r) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    r = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, back)) => {
                    if let KafkaError::MessageProduction(RDKafkaErrorCode::State) = e {
                        self.refused_in_transaction.store(true, Ordering::Release);
                    }
                    // The opaque came back with the record: nothing will
                    // report this one.
                    drop(back);
                    acks.pending.fetch_sub(1, Ordering::AcqRel);
                    return Err(e);
                }
            }
        }
    }

    /// True (once) if a send was refused because the producer's open
    /// transaction must be aborted: a transactional producer refuses
    /// records after one of the transaction's records failed.
    pub fn take_refused_in_transaction(&self) -> bool {
        self.refused_in_transaction.swap(false, Ordering::AcqRel)
    }

    /// Produces again a record the client gave up on, to the same topic and
    /// partition, as part of the same batch.
    pub fn resend(&self, message: &OwnedMessage, acks: &Arc<Acks>) -> Result<(), KafkaError> {
        let record = OutRecord {
            key: message.key(),
            value: message.payload(),
            headers: message.headers().map(|h| h.as_borrowed().detach()),
            timestamp: message.timestamp().to_millis(),
            partition: Some(message.partition()),
        };
        self.send(message.topic(), record, acks)
    }

    /// Records queued in the client and not yet reported.
    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }

    /// Waits up to `timeout` for every queued record to be reported.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner.flush(timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;
    use rdkafka::mocking::MockCluster;
    use std::time::Instant;

    /// Waits until every record of `acks` is reported.
    fn wait_reported(acks: &Acks) {
        let end = Instant::now() + Duration::from_secs(30);
        while acks.pending() > 0 {
            assert!(Instant::now() < end, "no delivery report");
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }

    #[test]
    fn acks_count_open_batches_and_records() {
        let acks = Acks::new(std::thread::current());
        assert!(!acks.is_done(), "open");
        acks.close();
        assert!(acks.is_done(), "closed, nothing sent");
        let acks = Acks::new(std::thread::current());
        acks.pending.fetch_add(2, Ordering::AcqRel);
        acks.close();
        acks.settle();
        assert!(!acks.is_done());
        let message = OwnedMessage::new(
            None,
            None,
            "t".into(),
            rdkafka::Timestamp::NotAvailable,
            0,
            0,
            None,
        );
        acks.fail(Failure {
            error: KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
            message,
        });
        assert_eq!(acks.pending(), 0);
        assert!(!acks.is_done(), "a failure waits to be produced again");
        assert_eq!(acks.take_failures().len(), 1);
        assert!(acks.is_done());
        acks.lose();
        assert!(
            !acks.is_done(),
            "a lost record holds the batch back for good"
        );
    }

    #[test]
    fn permanent_errors_are_told_apart_from_transient_ones() {
        assert!(is_permanent(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
        )));
        assert!(is_permanent(&KafkaError::MessageProduction(
            RDKafkaErrorCode::TopicAuthorizationFailed
        )));
        assert!(!is_permanent(&KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageTimedOut
        )));
        assert!(!is_permanent(&KafkaError::MessageProduction(
            RDKafkaErrorCode::NotLeaderForPartition
        )));
        assert!(!is_permanent(&KafkaError::MessageProduction(
            RDKafkaErrorCode::AllBrokersDown
        )));
    }

    #[test]
    fn sends_are_acknowledged_and_headers_kept() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("out", 1, 1).unwrap();
        let kafka = KafkaConfig::new(cluster.bootstrap_servers(), "g");
        let producer = Producer::new(&kafka).unwrap();
        let acks = Acks::new(std::thread::current());
        let pairs: [(&str, &[u8]); 2] = [("a", b"1"), ("b", b"")];
        let h = headers(pairs.into_iter()).unwrap();
        assert_eq!(h.count(), 2);
        assert_eq!(h.get(1).value, Some(&b""[..]));
        assert!(headers(std::iter::empty()).is_none());
        let record = OutRecord {
            key: Some(b"k"),
            value: Some(b"v"),
            headers: Some(h),
            timestamp: Some(1000),
            partition: None,
        };
        producer.send("out", record, &acks).unwrap();
        producer.send("out", OutRecord::default(), &acks).unwrap();
        acks.close();
        wait_reported(&acks);
        let failures: Vec<String> = acks
            .take_failures()
            .iter()
            .map(|f| f.error.to_string())
            .collect();
        assert!(failures.is_empty(), "{failures:?}");
        assert!(acks.is_done());
    }
}
