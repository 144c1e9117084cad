//! Writers: the host encodes batches, a guest encodes results and writes.

use alloc::vec::Vec;

use crate::{KEEP, NULL, VERSION};

#[inline]
fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

#[inline]
fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_u32(buf, len32(b.len()));
    buf.extend_from_slice(b);
}

#[inline]
fn put_opt(buf: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => put_bytes(buf, b),
        None => put_u32(buf, NULL),
    }
}

/// A length as `u32`; lengths at or above [`KEEP`] cannot be encoded.
#[inline]
fn len32(n: usize) -> u32 {
    match u32::try_from(n) {
        Ok(n) if n < KEEP => n,
        _ => panic!("field of {n} bytes is too large for the wire format"),
    }
}

#[inline]
fn patch_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Encodes a batch of records (host side).
///
/// Also remembers where each record starts, so that one record can be sent
/// again on its own ([`BatchWriter::single`]) when a batch has to be retried
/// record by record.
#[derive(Debug, Clone)]
pub struct BatchWriter {
    buf: Vec<u8>,
    /// Byte length of version + topic table.
    prefix: usize,
    count_at: usize,
    starts: Vec<u32>,
}

impl BatchWriter {
    /// Starts a batch whose records refer to `topics` by index.
    pub fn new<S: AsRef<str>>(topics: &[S]) -> Self {
        let mut buf = Vec::with_capacity(4096);
        buf.push(VERSION);
        put_u32(&mut buf, len32(topics.len()));
        for t in topics {
            put_bytes(&mut buf, t.as_ref().as_bytes());
        }
        let prefix = buf.len();
        put_u32(&mut buf, 0);
        BatchWriter {
            buf,
            prefix,
            count_at: prefix,
            starts: Vec::new(),
        }
    }

    /// Forgets all records, keeping the topic table and the allocation.
    pub fn clear(&mut self) {
        self.buf.truncate(self.prefix);
        put_u32(&mut self.buf, 0);
        self.starts.clear();
    }

    /// Appends one record. `headers` yields `(name, value)` pairs.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn push<'h>(
        &mut self,
        topic: u32,
        partition: i32,
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl ExactSizeIterator<Item = (&'h [u8], &'h [u8])>,
    ) {
        let buf = &mut self.buf;
        buf.reserve(40 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
        self.starts.push(len32(buf.len()));
        put_u32(buf, topic);
        buf.extend_from_slice(&partition.to_le_bytes());
        buf.extend_from_slice(&offset.to_le_bytes());
        buf.extend_from_slice(&timestamp.to_le_bytes());
        put_opt(buf, key);
        put_opt(buf, value);
        put_u32(buf, len32(headers.len()));
        for (k, v) in headers {
            put_bytes(buf, k);
            put_bytes(buf, v);
        }
        let n = len32(self.starts.len());
        patch_u32(buf, self.count_at, n);
    }

    /// Number of records pushed so far.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// True when no record has been pushed.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The encoded batch.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// A batch holding only record `i` of this one, with the same topics.
    pub fn single(&self, i: usize) -> Vec<u8> {
        let start = self.starts[i] as usize;
        let end = self
            .starts
            .get(i + 1)
            .map_or(self.buf.len(), |&e| e as usize);
        let mut out = Vec::with_capacity(self.prefix + 4 + end - start);
        out.extend_from_slice(&self.buf[..self.prefix]);
        put_u32(&mut out, 1);
        out.extend_from_slice(&self.buf[start..end]);
        out
    }
}

/// What one output sets; `None` in a field means "keep the input's".
#[derive(Debug, Clone, Copy, Default)]
pub struct OutputSpec<'a> {
    /// Index into the output names the processor declared at `init`.
    pub output: u32,
    /// `None`: keep the input key; `Some(None)`: no key; `Some(Some(k))`: `k`.
    pub key: Option<Option<&'a [u8]>>,
    /// Same three cases as `key`, for the value.
    pub value: Option<Option<&'a [u8]>>,
    /// `None`: keep the input headers; `Some(h)`: exactly `h`.
    pub headers: Option<&'a [(&'a str, &'a [u8])]>,
    /// `None`: keep the input timestamp; `Some(t)`: `t` (ms since epoch).
    pub timestamp: Option<i64>,
}

/// Encodes results (guest side): one result per input record, in order.
///
/// For each record call [`ResultWriter::begin`], then [`ResultWriter::output`]
/// any number of times, then either nothing (the record is ok) or
/// [`ResultWriter::reject`], which discards that record's outputs.
#[derive(Debug, Clone)]
pub struct ResultWriter {
    buf: Vec<u8>,
    count: u32,
    /// Start of the current result, and where its output count lives.
    current: usize,
}

impl Default for ResultWriter {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl ResultWriter {
    /// Starts an empty result buffer with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(16));
        buf.push(VERSION);
        put_u32(&mut buf, 0);
        ResultWriter {
            buf,
            count: 0,
            current: 0,
        }
    }

    /// Starts the result of the next input record (ok, no outputs yet).
    #[inline]
    pub fn begin(&mut self) {
        self.count += 1;
        patch_u32(&mut self.buf, 1, self.count);
        self.current = self.buf.len();
        self.buf.push(0);
        put_u32(&mut self.buf, 0);
    }

    /// Adds an output to the current record's result.
    #[inline]
    pub fn output(&mut self, o: &OutputSpec<'_>) {
        debug_assert!(self.count > 0, "output before begin");
        let n_at = self.current + 1;
        let n = u32::from_le_bytes(self.buf[n_at..n_at + 4].try_into().unwrap_or_default());
        patch_u32(&mut self.buf, n_at, n + 1);
        encode_output(&mut self.buf, o);
    }

    /// Marks the current record rejected with `reason`, dropping its outputs.
    pub fn reject(&mut self, reason: &str) {
        self.buf.truncate(self.current);
        self.buf.push(1);
        put_bytes(&mut self.buf, reason.as_bytes());
    }

    /// The finished buffer.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// Encodes a timer's outputs: `u8 version, outputs`.
    pub fn timer_outputs(outputs: &[OutputSpec<'_>]) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.push(VERSION);
        put_u32(&mut buf, len32(outputs.len()));
        for o in outputs {
            encode_output(&mut buf, o);
        }
        buf
    }
}

/// Appends one output.
#[inline]
fn encode_output(buf: &mut Vec<u8>, o: &OutputSpec<'_>) {
    put_u32(buf, o.output);
    for f in [o.key, o.value] {
        match f {
            None => put_u32(buf, KEEP),
            Some(b) => put_opt(buf, b),
        }
    }
    match o.headers {
        None => put_u32(buf, KEEP),
        Some(hs) => {
            put_u32(buf, len32(hs.len()));
            for (k, v) in hs {
                put_bytes(buf, k.as_bytes());
                put_bytes(buf, v);
            }
        }
    }
    match o.timestamp {
        None => buf.push(0),
        Some(t) => {
            buf.push(1);
            buf.extend_from_slice(&t.to_le_bytes());
        }
    }
}

/// Encodes a list of state writes (guest side), applied by the host at once.
#[derive(Debug, Clone)]
pub struct WritesWriter {
    buf: Vec<u8>,
    count: u32,
}

impl Default for WritesWriter {
    fn default() -> Self {
        let mut buf = Vec::new();
        buf.push(VERSION);
        put_u32(&mut buf, 0);
        WritesWriter { buf, count: 0 }
    }
}

impl WritesWriter {
    /// Records `key = value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) {
        self.bump();
        self.buf.push(0);
        put_bytes(&mut self.buf, key);
        put_bytes(&mut self.buf, value);
    }

    /// Records the deletion of `key`.
    pub fn delete(&mut self, key: &[u8]) {
        self.bump();
        self.buf.push(1);
        put_bytes(&mut self.buf, key);
    }

    fn bump(&mut self) {
        self.count += 1;
        patch_u32(&mut self.buf, 1, self.count);
    }

    /// Number of writes recorded.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded writes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}
