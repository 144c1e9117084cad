//! Readers: a guest reads batches, the host reads results, outputs and writes.
//!
//! Every reader checks bounds and returns a [`WireError`] instead of
//! panicking. The readers of guest-written buffers validate the whole buffer
//! in `parse`, so their iterators afterwards yield every item.

use alloc::vec::Vec;

use crate::{KEEP, NULL, VERSION, WireError};

/// A bounds-checked cursor over a buffer.
///
/// Reads return `Option` so that the hot path stays small; a failed read
/// records what was expected, and [`Cursor::error`] turns that into a
/// [`WireError`] at the API boundary.
#[derive(Clone)]
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    item: Option<u32>,
    failed: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            item: None,
            failed: "malformed buffer",
        }
    }

    /// Records a failure at the current position and returns `None`.
    #[cold]
    fn fail<T>(&mut self, what: &'static str) -> Option<T> {
        self.failed = what;
        None
    }

    /// The error of the last failed read.
    #[cold]
    fn error(&self) -> WireError {
        WireError {
            at: self.pos,
            what: self.failed,
            item: self.item,
        }
    }

    #[inline]
    fn take(&mut self, n: usize, what: &'static str) -> Option<&'a [u8]> {
        match self.buf.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(s) => {
                self.pos += n;
                Some(s)
            }
            None => self.fail(what),
        }
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &'static str) -> Option<[u8; N]> {
        match self.buf.get(self.pos..self.pos.wrapping_add(N)) {
            Some(s) => {
                self.pos += N;
                let mut a = [0u8; N];
                a.copy_from_slice(s);
                Some(a)
            }
            None => self.fail(what),
        }
    }

    #[inline]
    fn u8(&mut self, what: &'static str) -> Option<u8> {
        Some(self.array::<1>(what)?[0])
    }

    #[inline]
    fn u32(&mut self, what: &'static str) -> Option<u32> {
        Some(u32::from_le_bytes(self.array(what)?))
    }

    #[inline]
    fn i64(&mut self, what: &'static str) -> Option<i64> {
        Some(i64::from_le_bytes(self.array(what)?))
    }

    #[inline]
    fn bytes(&mut self, what: &'static str) -> Option<&'a [u8]> {
        let n = self.u32(what)?;
        if n >= KEEP {
            self.pos -= 4;
            return self.fail(what);
        }
        self.take(n as usize, what)
    }

    #[inline]
    fn str(&mut self, what: &'static str) -> Option<&'a str> {
        let at = self.pos;
        let b = self.bytes(what)?;
        match core::str::from_utf8(b) {
            Ok(s) => Some(s),
            Err(_) => {
                self.pos = at;
                self.fail("invalid UTF-8")
            }
        }
    }

    /// A length-prefixed field: `Null`, `Keep` (when allowed) or bytes.
    #[inline]
    fn field(&mut self, keep_ok: bool, what: &'static str) -> Option<Field<'a>> {
        match self.u32(what)? {
            NULL => Some(Field::Null),
            KEEP if keep_ok => Some(Field::Keep),
            KEEP => {
                self.pos -= 4;
                self.fail("unexpected KEEP marker")
            }
            n => Some(Field::Bytes(self.take(n as usize, what)?)),
        }
    }

    /// A header block of `n` pairs; checks names are UTF-8.
    #[inline]
    fn headers_body(&mut self, n: u32) -> Option<Headers<'a>> {
        let start = self.pos;
        for _ in 0..n {
            self.str("truncated header name")?;
            self.bytes("truncated header value")?;
        }
        Some(Headers {
            n,
            raw: &self.buf[start..self.pos],
        })
    }

    fn version(&mut self) -> Result<(), WireError> {
        match self.u8("empty buffer") {
            Some(VERSION) => Ok(()),
            Some(_) => Err(WireError {
                at: 0,
                what: "unsupported layout version",
                item: None,
            }),
            None => Err(self.error()),
        }
    }

    fn end(&self) -> Result<(), WireError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(WireError {
                at: self.pos,
                what: "trailing bytes after the last item",
                item: self.item,
            })
        }
    }
}

/// A field of an output: as in the input record, absent, or these bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// Keep the input record's value of this field.
    Keep,
    /// No value (a Kafka null key or tombstone value).
    Null,
    /// These bytes.
    Bytes(&'a [u8]),
}

impl<'a> Field<'a> {
    /// Resolves `Keep` against the input record's field.
    #[inline]
    pub fn or_input(self, input: Option<&'a [u8]>) -> Option<&'a [u8]> {
        match self {
            Field::Keep => input,
            Field::Null => None,
            Field::Bytes(b) => Some(b),
        }
    }
}

/// A validated block of headers, read without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    n: u32,
    raw: &'a [u8],
}

impl<'a> Headers<'a> {
    /// An empty header block.
    pub const EMPTY: Headers<'static> = Headers { n: 0, raw: &[] };

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The `(name, value)` pairs in order.
    pub fn iter(&self) -> HeaderIter<'a> {
        HeaderIter {
            cur: Cursor::new(self.raw),
            left: self.n,
        }
    }
}

/// Iterator over [`Headers`].
#[derive(Clone)]
pub struct HeaderIter<'a> {
    cur: Cursor<'a>,
    left: u32,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The block was validated when it was read; an error cannot occur.
        let k = self.cur.str("")?;
        let v = self.cur.bytes("")?;
        Some((k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for HeaderIter<'_> {}

/// One input record, borrowed from a batch buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Topic the record was read from.
    pub topic: &'a str,
    /// Partition the record was read from.
    pub partition: i32,
    /// Offset of the record in its partition.
    pub offset: i64,
    /// Record timestamp, milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Record key, if any.
    pub key: Option<&'a [u8]>,
    /// Record value, if any (`None` is a tombstone).
    pub value: Option<&'a [u8]>,
    /// Record headers.
    pub headers: Headers<'a>,
}

/// A batch of records as encoded by the host.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    topics: Vec<&'a str>,
    count: u32,
    body: &'a [u8],
    body_at: usize,
}

impl<'a> Batch<'a> {
    /// Reads the batch header (version, topic table, record count).
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let mut cur = Cursor::new(buf);
        cur.version()?;
        let header = |cur: &mut Cursor<'a>| {
            let n_topics = cur.u32("truncated topic count")?;
            let mut topics = Vec::with_capacity(n_topics.min(1024) as usize);
            for _ in 0..n_topics {
                topics.push(cur.str("truncated topic name")?);
            }
            Some((topics, cur.u32("truncated record count")?))
        };
        let (topics, count) = header(&mut cur).ok_or_else(|| cur.error())?;
        Ok(Batch {
            topics,
            count,
            body: &buf[cur.pos..],
            body_at: cur.pos,
        })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The records in order; an item is an error if the buffer is malformed.
    pub fn records(&self) -> RecordIter<'_, 'a> {
        RecordIter {
            batch: self,
            cur: Cursor::new(self.body),
            index: 0,
        }
    }
}

/// Iterator over the records of a [`Batch`].
pub struct RecordIter<'b, 'a> {
    batch: &'b Batch<'a>,
    cur: Cursor<'a>,
    index: u32,
}

impl<'a> RecordIter<'_, 'a> {
    #[inline]
    fn read(&mut self) -> Option<RecordRef<'a>> {
        let cur = &mut self.cur;
        let t = cur.u32("truncated record")?;
        let Some(&topic) = self.batch.topics.get(t as usize) else {
            cur.pos -= 4;
            return cur.fail("topic index out of range");
        };
        let partition = cur.u32("truncated record")? as i32;
        let offset = cur.i64("truncated record")?;
        let timestamp = cur.i64("truncated record")?;
        let key = cur.field(false, "truncated key")?.or_input(None);
        let value = cur.field(false, "truncated value")?.or_input(None);
        let n = cur.u32("truncated header count")?;
        let headers = cur.headers_body(n)?;
        Some(RecordRef {
            topic,
            partition,
            offset,
            timestamp,
            key,
            value,
            headers,
        })
    }
}

impl<'a> Iterator for RecordIter<'_, 'a> {
    type Item = Result<RecordRef<'a>, WireError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.batch.count {
            return None;
        }
        match self.read() {
            Some(r) => {
                self.index += 1;
                Some(Ok(r))
            }
            None => {
                self.cur.item = Some(self.index);
                let mut e = self.cur.error();
                e.at += self.batch.body_at;
                self.index = self.batch.count;
                Some(Err(e))
            }
        }
    }
}

/// One output, borrowed from a result or timer buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputRef<'a> {
    /// Index into the output names declared at `init`.
    pub output: u32,
    /// The key to produce.
    pub key: Field<'a>,
    /// The value to produce.
    pub value: Field<'a>,
    /// The headers to produce; `None` keeps the input's.
    pub headers: Option<Headers<'a>>,
    /// The timestamp to produce; `None` keeps the input's.
    pub timestamp: Option<i64>,
}

impl OutputRef<'_> {
    /// The bytes this output gives of its own: key, value and header
    /// block (fields kept from the input count nothing: the input fitted).
    #[inline]
    pub fn own_bytes(&self) -> usize {
        let field = |f: &Field<'_>| match f {
            Field::Bytes(b) => b.len(),
            Field::Keep | Field::Null => 0,
        };
        field(&self.key) + field(&self.value) + self.headers.map_or(0, |h| h.raw.len())
    }
}

#[inline]
fn read_output<'a>(cur: &mut Cursor<'a>, n_outputs: u32) -> Option<OutputRef<'a>> {
    let output = cur.u32("truncated output")?;
    if output >= n_outputs {
        cur.pos -= 4;
        return cur.fail("output index out of range");
    }
    let key = cur.field(true, "truncated output key")?;
    let value = cur.field(true, "truncated output value")?;
    let headers = match cur.u32("truncated output header count")? {
        KEEP => None,
        n => Some(cur.headers_body(n)?),
    };
    let timestamp = match cur.u8("truncated output timestamp")? {
        0 => None,
        1 => Some(cur.i64("truncated output timestamp")?),
        _ => {
            cur.pos -= 1;
            return cur.fail("bad output timestamp tag");
        }
    };
    Some(OutputRef {
        output,
        key,
        value,
        headers,
        timestamp,
    })
}

/// The validated outputs of one record, or of a timer call.
#[derive(Debug, Clone, Copy)]
pub struct Outputs<'a> {
    n: u32,
    raw: &'a [u8],
    n_outputs: u32,
}

/// What a validation of one record's outputs learned of their sizes.
#[derive(Debug, Clone, Copy, Default)]
struct OutputSizes {
    /// The largest [`OutputRef::own_bytes`] among them.
    largest: usize,
    /// The sum of their [`OutputRef::own_bytes`].
    bytes: usize,
}

impl<'a> Outputs<'a> {
    /// Validates a timer buffer (`u8 version, outputs`) whose output indices
    /// must be below `n_outputs`.
    pub fn parse(buf: &'a [u8], n_outputs: u32) -> Result<Self, WireError> {
        let mut cur = Cursor::new(buf);
        cur.version()?;
        let (o, _) = Self::read(&mut cur, n_outputs).ok_or_else(|| cur.error())?;
        cur.end()?;
        Ok(o)
    }

    /// Reads and validates the outputs at the cursor.
    #[inline]
    fn read(cur: &mut Cursor<'a>, n_outputs: u32) -> Option<(Self, OutputSizes)> {
        let n = cur.u32("truncated output count")?;
        let start = cur.pos;
        let mut sizes = OutputSizes::default();
        for _ in 0..n {
            let own = read_output(cur, n_outputs)?.own_bytes();
            sizes.largest = sizes.largest.max(own);
            sizes.bytes = sizes.bytes.saturating_add(own);
        }
        let outputs = Outputs {
            n,
            raw: &cur.buf[start..cur.pos],
            n_outputs,
        };
        Some((outputs, sizes))
    }

    /// The size of the largest output, counting what it gives of its own
    /// ([`OutputRef::own_bytes`]); 0 when there are none.
    pub fn largest(&self) -> usize {
        self.iter().map(|o| o.own_bytes()).max().unwrap_or(0)
    }

    /// The size of all the outputs together, each counting what it gives
    /// of its own ([`OutputRef::own_bytes`]).
    pub fn bytes(&self) -> usize {
        self.iter()
            .fold(0, |sum: usize, o| sum.saturating_add(o.own_bytes()))
    }

    /// Number of outputs.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The outputs in order.
    pub fn iter(&self) -> OutputIter<'a> {
        OutputIter {
            cur: Cursor::new(self.raw),
            left: self.n,
            n_outputs: self.n_outputs,
        }
    }
}

/// Iterator over [`Outputs`].
pub struct OutputIter<'a> {
    cur: Cursor<'a>,
    left: u32,
    n_outputs: u32,
}

impl<'a> Iterator for OutputIter<'a> {
    type Item = OutputRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        read_output(&mut self.cur, self.n_outputs)
    }
}

/// What the processor did with one input record.
#[derive(Debug, Clone, Copy)]
pub enum RecordResult<'a> {
    /// Accepted, with these outputs (possibly none).
    Ok(Outputs<'a>),
    /// Rejected, with the processor's reason.
    Rejected(&'a str),
}

/// A validated result buffer: one [`RecordResult`] per input record.
#[derive(Debug, Clone, Copy)]
pub struct Results<'a> {
    count: u32,
    body: &'a [u8],
    n_outputs: u32,
    /// The most outputs any one record has.
    most_outputs: usize,
    /// The largest output of any record ([`OutputRef::own_bytes`]).
    largest_output: usize,
    /// The most bytes of outputs any one record has ([`Outputs::bytes`]).
    most_output_bytes: usize,
    /// The outputs of all the records together.
    outputs: usize,
    /// The bytes of all the records' outputs together.
    output_bytes: usize,
    /// Where each result ends in `body`, when [`Results::parse_indexed`]
    /// kept them (empty otherwise): iterating then reads each record's
    /// outputs once, where the consumer walks them, instead of walking
    /// them first to find the next result.
    ends: &'a [usize],
}

/// Reads and validates the result at the cursor.
#[inline]
fn read_result<'a>(
    cur: &mut Cursor<'a>,
    n_outputs: u32,
) -> Option<(RecordResult<'a>, OutputSizes)> {
    match cur.u8("truncated result")? {
        0 => {
            let (outputs, sizes) = Outputs::read(cur, n_outputs)?;
            Some((RecordResult::Ok(outputs), sizes))
        }
        1 => Some((
            RecordResult::Rejected(cur.str("truncated rejection reason")?),
            OutputSizes::default(),
        )),
        _ => {
            cur.pos -= 1;
            cur.fail("bad result tag")
        }
    }
}

impl<'a> Results<'a> {
    /// Validates a result buffer that must hold `expected` results whose
    /// output indices are below `n_outputs`.
    pub fn parse(buf: &'a [u8], expected: usize, n_outputs: u32) -> Result<Self, WireError> {
        Self::validate(buf, expected, n_outputs, |_| {})
    }

    /// [`Results::parse`], keeping in `ends` (cleared first) where each
    /// result ends, so that iterating needs no second walk over the
    /// outputs.
    pub fn parse_indexed(
        buf: &'a [u8],
        expected: usize,
        n_outputs: u32,
        ends: &'a mut Vec<usize>,
    ) -> Result<Self, WireError> {
        ends.clear();
        ends.reserve(expected);
        let mut results = Self::validate(buf, expected, n_outputs, |end| ends.push(end))?;
        results.ends = ends;
        Ok(results)
    }

    /// Validates the buffer, telling `ended` where in the body each result
    /// ends.
    fn validate(
        buf: &'a [u8],
        expected: usize,
        n_outputs: u32,
        mut ended: impl FnMut(usize),
    ) -> Result<Self, WireError> {
        let mut cur = Cursor::new(buf);
        cur.version()?;
        let count = cur
            .u32("truncated result count")
            .ok_or_else(|| cur.error())?;
        if count as usize != expected {
            return Err(WireError {
                at: 1,
                what: "result count differs from record count",
                item: None,
            });
        }
        let start = cur.pos;
        let mut most_outputs = 0;
        let mut largest_output = 0;
        let mut most_output_bytes = 0;
        let mut outputs = 0usize;
        let mut output_bytes = 0usize;
        for i in 0..count {
            cur.item = Some(i);
            let (result, sizes) = read_result(&mut cur, n_outputs).ok_or_else(|| cur.error())?;
            ended(cur.pos - start);
            if let RecordResult::Ok(o) = result {
                most_outputs = most_outputs.max(o.len());
                largest_output = largest_output.max(sizes.largest);
                most_output_bytes = most_output_bytes.max(sizes.bytes);
                outputs += o.len();
                output_bytes = output_bytes.saturating_add(sizes.bytes);
            }
        }
        cur.item = None;
        cur.end()?;
        Ok(Results {
            count,
            body: &buf[start..],
            n_outputs,
            most_outputs,
            largest_output,
            most_output_bytes,
            outputs,
            output_bytes,
            ends: &[],
        })
    }

    /// The most bytes of outputs any one record has ([`Outputs::bytes`]; 0
    /// when none has any).
    pub fn most_output_bytes(&self) -> usize {
        self.most_output_bytes
    }

    /// The number of outputs of all the records together.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// The bytes of all the records' outputs together ([`Outputs::bytes`]).
    pub fn output_bytes(&self) -> usize {
        self.output_bytes
    }

    /// The size of the largest output of any record
    /// ([`OutputRef::own_bytes`]; 0 when none has any).
    pub fn largest_output(&self) -> usize {
        self.largest_output
    }

    /// The most outputs any one record has (0 when none has any).
    pub fn most_outputs(&self) -> usize {
        self.most_outputs
    }

    /// Number of results.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The results in input order.
    pub fn iter(&self) -> ResultIter<'a> {
        ResultIter {
            cur: Cursor::new(self.body),
            left: self.count,
            n_outputs: self.n_outputs,
            ends: self.ends,
        }
    }
}

/// Iterator over [`Results`].
pub struct ResultIter<'a> {
    cur: Cursor<'a>,
    left: u32,
    n_outputs: u32,
    /// Where each result left ends, when the parse kept them.
    ends: &'a [usize],
}

impl<'a> ResultIter<'a> {
    /// The result at the cursor, which ends at `end` (a validated buffer):
    /// the outputs are not walked.
    #[inline]
    fn read_known(&mut self, end: usize) -> Option<RecordResult<'a>> {
        let cur = &mut self.cur;
        let result = match cur.u8("truncated result")? {
            0 => {
                let n = cur.u32("truncated output count")?;
                RecordResult::Ok(Outputs {
                    n,
                    raw: cur.buf.get(cur.pos..end)?,
                    n_outputs: self.n_outputs,
                })
            }
            // The validation let only tags 0 and 1 through.
            _ => RecordResult::Rejected(cur.str("truncated rejection reason")?),
        };
        cur.pos = end;
        Some(result)
    }
}

impl<'a> Iterator for ResultIter<'a> {
    type Item = RecordResult<'a>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        match self.ends.split_first() {
            Some((&end, rest)) => {
                self.ends = rest;
                self.read_known(end)
            }
            None => read_result(&mut self.cur, self.n_outputs).map(|(r, _)| r),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// One state write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write<'a> {
    /// Set `key` to `value`.
    Put(&'a [u8], &'a [u8]),
    /// Remove `key`.
    Delete(&'a [u8]),
}

/// A validated list of state writes.
#[derive(Debug, Clone, Copy)]
pub struct Writes<'a> {
    count: u32,
    body: &'a [u8],
}

fn read_write<'a>(cur: &mut Cursor<'a>) -> Option<Write<'a>> {
    match cur.u8("truncated write")? {
        0 => Some(Write::Put(
            cur.bytes("truncated write key")?,
            cur.bytes("truncated write value")?,
        )),
        1 => Some(Write::Delete(cur.bytes("truncated write key")?)),
        _ => {
            cur.pos -= 1;
            cur.fail("bad write tag")
        }
    }
}

impl<'a> Writes<'a> {
    /// Validates a writes buffer.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let mut cur = Cursor::new(buf);
        cur.version()?;
        let count = cur
            .u32("truncated write count")
            .ok_or_else(|| cur.error())?;
        let start = cur.pos;
        for i in 0..count {
            cur.item = Some(i);
            read_write(&mut cur).ok_or_else(|| cur.error())?;
        }
        cur.item = None;
        cur.end()?;
        Ok(Writes {
            count,
            body: &buf[start..],
        })
    }

    /// Number of writes.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The writes in order.
    pub fn iter(&self) -> WriteIter<'a> {
        WriteIter {
            cur: Cursor::new(self.body),
            left: self.count,
        }
    }
}

/// Iterator over [`Writes`].
pub struct WriteIter<'a> {
    cur: Cursor<'a>,
    left: u32,
}

impl<'a> Iterator for WriteIter<'a> {
    type Item = Write<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        read_write(&mut self.cur)
    }
}
