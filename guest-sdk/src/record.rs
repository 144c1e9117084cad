//! The input record a processor sees: a view into the batch buffer.

use partita_wire::{HeaderIter, RecordRef};

use crate::Reject;

/// One input record, borrowed from the batch the host sent: reading it
/// copies nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    raw: RecordRef<'a>,
}

impl<'a> Record<'a> {
    pub(crate) fn new(raw: RecordRef<'a>) -> Self {
        Record { raw }
    }

    /// The key, if any.
    #[inline]
    pub fn key(&self) -> Option<&'a [u8]> {
        self.raw.key
    }

    /// The value, if any (`None` is a tombstone).
    #[inline]
    pub fn value(&self) -> Option<&'a [u8]> {
        self.raw.value
    }

    /// The key as UTF-8 text; a rejection if there is none or it is not
    /// UTF-8.
    pub fn key_str(&self) -> Result<&'a str, Reject> {
        utf8(self.raw.key, "key")
    }

    /// The value as UTF-8 text; a rejection if there is none or it is not
    /// UTF-8.
    pub fn value_str(&self) -> Result<&'a str, Reject> {
        utf8(self.raw.value, "value")
    }

    /// The headers, `(name, value)` in order.
    pub fn headers(&self) -> HeaderIter<'a> {
        self.raw.headers.iter()
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.raw
            .headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The record's timestamp, milliseconds since the Unix epoch.
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.raw.timestamp
    }

    /// The topic it was read from.
    pub fn topic(&self) -> &'a str {
        self.raw.topic
    }

    /// The partition it was read from.
    pub fn partition(&self) -> i32 {
        self.raw.partition
    }

    /// Its offset in the partition.
    pub fn offset(&self) -> i64 {
        self.raw.offset
    }

    /// The underlying wire view.
    pub fn raw(&self) -> &RecordRef<'a> {
        &self.raw
    }
}

fn utf8<'a>(bytes: Option<&'a [u8]>, what: &str) -> Result<&'a str, Reject> {
    let bytes = bytes.ok_or_else(|| Reject::new(format!("record has no {what}")))?;
    std::str::from_utf8(bytes).map_err(|e| {
        Reject::new(format!(
            "{what} is not UTF-8: invalid byte at offset {}",
            e.valid_up_to()
        ))
    })
}
