//! Building a batch: records are encoded straight from the consumer's
//! messages into one [`BatchWriter`] buffer, and the batch closes at its
//! record limit, at its byte limit, or `max_wait` after its first record.

use std::time::Instant;

use partita_wire::BatchWriter;
use rdkafka::message::{Headers, Message};

use crate::config::BatchLimits;

/// One batch under construction, reused from batch to batch.
pub(crate) struct BatchBuilder {
    writer: BatchWriter,
    /// The input (index into the stage's inputs) of each record, in order.
    inputs: Vec<u32>,
    limits: BatchLimits,
    opened: Option<Instant>,
}

impl BatchBuilder {
    /// An empty batch over the stage's `inputs`.
    pub(crate) fn new(inputs: &[String], limits: BatchLimits) -> Self {
        BatchBuilder {
            writer: BatchWriter::new(inputs),
            inputs: Vec::with_capacity(limits.max_records.min(65_536)),
            limits,
            opened: None,
        }
    }

    /// Appends one record read from input `input`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push<'h>(
        &mut self,
        input: u32,
        partition: i32,
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl ExactSizeIterator<Item = (&'h [u8], &'h [u8])>,
    ) {
        if self.opened.is_none() {
            self.opened = Some(Instant::now());
        }
        self.writer
            .push(input, partition, offset, timestamp, key, value, headers);
        self.inputs.push(input);
    }

    /// Appends a consumed message read from input `input`. A header with a
    /// null value is encoded as an empty value; a message without a
    /// timestamp gets -1.
    pub(crate) fn push_message<M: Message>(&mut self, input: u32, m: &M) {
        let timestamp = m.timestamp().to_millis().unwrap_or(-1);
        match m.headers() {
            Some(h) => {
                let pairs = (0..h.count()).map(|i| {
                    let header = h.get(i);
                    (header.key.as_bytes(), header.value.unwrap_or_default())
                });
                self.push(
                    input,
                    m.partition(),
                    m.offset(),
                    timestamp,
                    m.key(),
                    m.payload(),
                    pairs,
                );
            }
            None => {
                self.push(
                    input,
                    m.partition(),
                    m.offset(),
                    timestamp,
                    m.key(),
                    m.payload(),
                    std::iter::empty(),
                );
            }
        }
    }

    /// True once the batch reached its record or byte limit.
    pub(crate) fn is_full(&self) -> bool {
        self.inputs.len() >= self.limits.max_records
            || self.writer.as_bytes().len() >= self.limits.max_bytes
    }

    /// When the batch must close even if not full: `max_wait` after its
    /// first record; `None` while empty.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.opened.map(|t| t + self.limits.max_wait)
    }

    /// True when no record was added since the last [`BatchBuilder::clear`].
    pub(crate) fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// The input index of record `i`.
    pub(crate) fn input_of(&self, i: usize) -> u32 {
        self.inputs[i]
    }

    /// The encoded batch.
    pub(crate) fn writer(&self) -> &BatchWriter {
        &self.writer
    }

    /// Empties the batch, keeping its buffers.
    pub(crate) fn clear(&mut self) {
        self.writer.clear();
        self.inputs.clear();
        self.opened = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use partita_wire::Batch;
    use rdkafka::Timestamp;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
    use std::time::Duration;

    fn limits(records: usize, bytes: usize, wait_ms: u64) -> BatchLimits {
        BatchLimits {
            max_records: records,
            max_bytes: bytes,
            max_wait: Duration::from_millis(wait_ms),
        }
    }

    fn push(b: &mut BatchBuilder, input: u32, offset: i64, value: &[u8]) {
        b.push(
            input,
            3,
            offset,
            1000 + offset,
            Some(b"k"),
            Some(value),
            std::iter::empty(),
        );
    }

    #[test]
    fn closes_at_the_record_limit() {
        let mut b = BatchBuilder::new(&["a".to_string()], limits(3, 1 << 20, 10));
        assert!(b.deadline().is_none());
        push(&mut b, 0, 0, b"x");
        push(&mut b, 0, 1, b"x");
        assert!(!b.is_full());
        push(&mut b, 0, 2, b"x");
        assert!(b.is_full());
        assert_eq!(b.writer().len(), 3);
    }

    #[test]
    fn closes_once_the_byte_limit_is_reached() {
        let mut b = BatchBuilder::new(&["a".to_string()], limits(1000, 200, 10));
        push(&mut b, 0, 0, &[7; 100]);
        assert!(!b.is_full());
        push(&mut b, 0, 1, &[7; 100]);
        assert!(b.is_full(), "{} bytes", b.writer().as_bytes().len());
    }

    #[test]
    fn the_deadline_runs_from_the_first_record_and_clear_resets_it() {
        let mut b = BatchBuilder::new(&["a".to_string()], limits(10, 1 << 20, 50));
        let before = Instant::now();
        push(&mut b, 0, 0, b"x");
        let d = b.deadline().unwrap();
        assert!(d >= before + Duration::from_millis(50));
        push(&mut b, 0, 1, b"x");
        assert_eq!(
            b.deadline(),
            Some(d),
            "later records do not move the deadline"
        );
        b.clear();
        assert!(b.is_empty());
        assert!(b.deadline().is_none());
        assert_eq!(Batch::parse(b.writer().as_bytes()).unwrap().len(), 0);
    }

    #[test]
    fn messages_are_encoded_with_their_input_and_fields() {
        let inputs = ["a".to_string(), "b".to_string()];
        let mut b = BatchBuilder::new(&inputs, limits(10, 1 << 20, 10));
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "h1",
                value: Some("v1"),
            })
            .insert(Header::<&[u8]> {
                key: "null",
                value: None,
            });
        let m1 = OwnedMessage::new(
            Some(b"value".to_vec()),
            Some(b"key".to_vec()),
            "b".into(),
            Timestamp::CreateTime(42),
            5,
            17,
            Some(headers),
        );
        let m2 = OwnedMessage::new(None, None, "a".into(), Timestamp::NotAvailable, 5, 9, None);
        b.push_message(1, &m1);
        b.push_message(0, &m2);
        assert_eq!((b.input_of(0), b.input_of(1)), (1, 0));
        let batch = Batch::parse(b.writer().as_bytes()).unwrap();
        let records: Vec<_> = batch.records().map(|r| r.unwrap()).collect();
        assert_eq!(records.len(), 2);
        let r = &records[0];
        assert_eq!(
            (r.topic, r.partition, r.offset, r.timestamp),
            ("b", 5, 17, 42)
        );
        assert_eq!((r.key, r.value), (Some(&b"key"[..]), Some(&b"value"[..])));
        let hs: Vec<_> = r.headers.iter().collect();
        assert_eq!(hs, [("h1", &b"v1"[..]), ("null", &b""[..])]);
        let r = &records[1];
        assert_eq!(
            (r.topic, r.offset, r.timestamp, r.key, r.value),
            ("a", 9, -1, None, None)
        );
        assert!(r.headers.is_empty());
    }
}
