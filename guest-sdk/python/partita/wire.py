"""The byte layout of what crosses the Partita processor boundary, version 1.

The counterpart in Python of the Rust crate ``partita-wire`` (wit/wire/src)
and of the layout documented in wit/processor.wit::

    batch    = u8 version, u32 n_topics, str * n_topics,
               u32 n_records, record * n_records
    record   = u32 topic_index, i32 partition, i64 offset, i64 timestamp_ms,
               opt key, opt value, headers
    headers  = u32 n, (str name, bytes value) * n
    results  = u8 version, u32 n_results, result * n_results
    result   = u8 0, outputs | u8 1, str reason
    outputs  = u32 n, output * n
    output   = u32 output_index, field key, field value, out_headers, ts
    field    = opt, where KEEP (0xFFFF_FFFE) means "as in the input record"
    out_headers = headers, where n = KEEP means "as in the input record"
    ts       = u8 0 (as in the input record) | u8 1, i64 timestamp_ms
    timer    = u8 version, outputs
    writes   = u8 version, u32 n, (u8 0, bytes key, bytes value
                                   | u8 1, bytes key) * n

Integers are little-endian and unaligned; ``bytes`` is a u32 length then the
bytes, ``str`` is ``bytes`` holding UTF-8, ``opt`` is a u32 length where NULL
(0xFFFF_FFFF) means absent.

The readers check every bound and raise a :class:`WireError` whose message
says what was wrong and at which byte, worded as the Rust reader words it
("truncated key at byte 57 (item 3)").
"""

import struct

from .record import Record

#: Version byte that starts every buffer of this layout.
VERSION = 1
#: Length marker for an absent key or value.
NULL = 0xFFFF_FFFF
#: Length (or header count) marker for "keep the input record's field".
KEEP_MARK = 0xFFFF_FFFE


class _Keep:
    """The value of an output field that keeps the input record's."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self):
        return "KEEP"

    def __bool__(self):
        return False


#: An output field left as the input record's (in a timer call: absent).
KEEP = _Keep()

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_RECORD_HEAD = struct.Struct("<Iiqq")
_FAST_HEAD = struct.Struct("<IiqqI")
_KEEP_FIELDS = b"\xfe\xff\xff\xff" * 3 + b"\x00"
_VALUE_HEAD = b"\xfe\xff\xff\xff"
_VALUE_TAIL = b"\xfe\xff\xff\xff\x00"
_OUTPUT_HEAD = struct.Struct("<I")


class WireError(Exception):
    """Why a buffer could not be read: what was wrong and at which byte."""

    def __init__(self, what, at, item=None):
        self.what = what
        self.at = at
        self.item = item
        if item is None:
            super().__init__(f"{what} at byte {at}")
        else:
            super().__init__(f"{what} at byte {at} (item {item})")


class Cursor:
    """A bounds-checked cursor over a buffer; ``item`` names the record or
    result being read in errors."""

    __slots__ = ("buf", "pos", "item")

    def __init__(self, buf, pos=0):
        self.buf = buf
        self.pos = pos
        self.item = None

    def err(self, what, at=None):
        return WireError(what, self.pos if at is None else at, self.item)

    def need(self, n, what):
        if self.pos + n > len(self.buf):
            raise self.err(what)

    def u8(self, what):
        self.need(1, what)
        v = self.buf[self.pos]
        self.pos += 1
        return v

    def u32(self, what):
        self.need(4, what)
        v = _U32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return v

    def i32(self, what):
        self.need(4, what)
        v = _I32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        return v

    def i64(self, what):
        self.need(8, what)
        v = _I64.unpack_from(self.buf, self.pos)[0]
        self.pos += 8
        return v

    def take(self, n, what):
        self.need(n, what)
        s = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(s)

    def bytes_(self, what):
        n = self.u32(what)
        if n >= KEEP_MARK:
            raise self.err(what)
        return self.take(n, what)

    def str_(self, what):
        at = self.pos
        b = self.bytes_(what)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("invalid UTF-8", at, self.item) from None

    def opt(self, what):
        at = self.pos
        n = self.u32(what)
        if n == NULL:
            return None
        if n == KEEP_MARK:
            raise WireError("unexpected KEEP marker", at, self.item)
        return self.take(n, what)

    def headers(self, n):
        out = []
        for _ in range(n):
            name = self.str_("truncated header name")
            out.append((name, self.bytes_("truncated header value")))
        return out

    def version(self):
        if self.u8("empty buffer") != VERSION:
            raise WireError("unsupported layout version", 0)

    def end(self):
        if self.pos != len(self.buf):
            raise self.err("trailing bytes after the last item")


class BatchReader:
    """A batch of records as encoded by the host.

    The constructor reads the header (version, topics, count) and raises a
    :class:`WireError` if it cannot; :meth:`next` then returns each record in
    order as a :class:`Record`, and raises a :class:`WireError` for a record
    that cannot be read.
    """

    __slots__ = ("topics", "count", "_cur", "_index")

    def __init__(self, buf):
        cur = Cursor(buf)
        cur.version()
        n_topics = cur.u32("truncated topic count")
        self.topics = [cur.str_("truncated topic name") for _ in range(n_topics)]
        self.count = cur.u32("truncated record count")
        self._cur = cur
        self._index = 0

    def next(self):
        """The next record; call it exactly ``count`` times."""
        # Fast path: fixed part, key, value and an empty header block read
        # with two unpacks. Anything unusual, including every malformed
        # record, takes the checked path, which says what is wrong.
        cur = self._cur
        buf = cur.buf
        pos = cur.pos
        end = len(buf)
        if pos + 32 <= end:
            t, partition, offset, timestamp, kn = _FAST_HEAD.unpack_from(buf, pos)
            p = pos + 28
            if t < len(self.topics) and (kn == NULL or (kn < KEEP_MARK and p + kn + 8 <= end)):
                key = None
                if kn != NULL:
                    key = buf[p : p + kn]
                    p += kn
                vn = _U32.unpack_from(buf, p)[0]
                p += 4
                value = None
                if vn != NULL and vn < KEEP_MARK and p + vn + 4 <= end:
                    value = buf[p : p + vn]
                    p += vn
                if (vn == NULL or value is not None) and p + 4 <= end and _U32.unpack_from(buf, p)[0] == 0:
                    cur.pos = p + 4
                    self._index += 1
                    return Record(self.topics[t], partition, offset, timestamp, key, value, [])
        return self._checked()

    def _checked(self):
        """The next record, every field bounds-checked."""
        cur = self._cur
        cur.item = self._index
        self._index += 1
        pos = cur.pos
        whole = pos + 24 <= len(cur.buf)
        if whole:
            t, partition, offset, timestamp = _RECORD_HEAD.unpack_from(cur.buf, pos)
            cur.pos = pos + 4
        else:
            t = cur.u32("truncated record")
        if t >= len(self.topics):
            raise cur.err("topic index out of range")
        if whole:
            cur.pos = pos + 24
        else:
            partition = cur.i32("truncated record")
            offset = cur.i64("truncated record")
            timestamp = cur.i64("truncated record")
        key = cur.opt("truncated key")
        value = cur.opt("truncated value")
        n = cur.u32("truncated header count")
        headers = cur.headers(n) if n else []
        return Record(self.topics[t], partition, offset, timestamp, key, value, headers)


def _as_bytes(v, what):
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"{what} must be bytes or str, not {type(v).__name__}")


def _put_bytes(out, b):
    if len(b) >= KEEP_MARK:
        raise ValueError(f"field of {len(b)} bytes is too large for the wire format")
    out += _U32.pack(len(b))
    out += b


def _put_field(out, v, what):
    if v is KEEP:
        out += b"\xfe\xff\xff\xff"
    elif v is None:
        out += b"\xff\xff\xff\xff"
    else:
        _put_bytes(out, _as_bytes(v, what))


def encode_output(out, output, key=KEEP, value=KEEP, headers=KEEP, timestamp=KEEP):
    """Appends one output to the bytearray ``out``: ``output`` is the index of
    a declared output; a field that is :data:`KEEP` keeps the input record's;
    ``None`` makes key or value absent; headers are ``(name, value)`` pairs."""
    out += _OUTPUT_HEAD.pack(output)
    _put_field(out, key, "key")
    _put_field(out, value, "value")
    if headers is KEEP:
        out += b"\xfe\xff\xff\xff"
    else:
        out += _U32.pack(len(headers))
        for name, v in headers:
            if not isinstance(name, str):
                raise TypeError("a header name must be a str")
            _put_bytes(out, name.encode("utf-8"))
            _put_bytes(out, _as_bytes(v, f"header {name}"))
    if timestamp is KEEP:
        out.append(0)
    else:
        out.append(1)
        out += _I64.pack(timestamp)


class ResultWriter:
    """Encodes results: one result per input record, in order.

    For each record call :meth:`begin`, then :meth:`output` any number of
    times, then nothing (the record is ok) or :meth:`reject`, which discards
    that record's outputs.
    """

    __slots__ = ("buf", "count", "current", "n_outputs")

    def __init__(self):
        self.buf = bytearray(b"\x01\x00\x00\x00\x00")
        self.count = 0
        self.current = 0
        self.n_outputs = 0

    def begin(self):
        self.count += 1
        self.current = len(self.buf)
        self.n_outputs = 0
        self.buf += b"\x00\x00\x00\x00\x00"

    def output(self, output, key=KEEP, value=KEEP, headers=KEEP, timestamp=KEEP):
        self.n_outputs += 1
        _U32.pack_into(self.buf, self.current + 1, self.n_outputs)
        encode_output(self.buf, output, key, value, headers, timestamp)

    def forward(self, output):
        """Adds an output that keeps every field of the input record."""
        self.n_outputs += 1
        _U32.pack_into(self.buf, self.current + 1, self.n_outputs)
        self.buf += _U32.pack(output)
        self.buf += _KEEP_FIELDS

    def value(self, value):
        """Adds an output to index 0 with ``value`` (str or bytes), keeping
        the input's key, headers and timestamp."""
        data = value.encode("utf-8") if isinstance(value, str) else _as_bytes(value, "value")
        if len(data) >= KEEP_MARK:
            raise ValueError(f"field of {len(data)} bytes is too large for the wire format")
        self.n_outputs += 1
        buf = self.buf
        _U32.pack_into(buf, self.current + 1, self.n_outputs)
        buf += b"\x00\x00\x00\x00"
        buf += _VALUE_HEAD
        buf += _U32.pack(len(data))
        buf += data
        buf += _VALUE_TAIL

    def reject(self, reason):
        del self.buf[self.current :]
        self.buf.append(1)
        _put_bytes(self.buf, str(reason).encode("utf-8"))

    def finish(self):
        _U32.pack_into(self.buf, 1, self.count)
        return bytes(self.buf)


def timer_outputs(outputs):
    """Encodes a timer call's outputs, each a dict of :func:`encode_output`'s
    arguments."""
    out = bytearray(b"\x01")
    out += _U32.pack(len(outputs))
    for o in outputs:
        encode_output(out, **o)
    return bytes(out)


def encode_writes(writes):
    """Encodes state writes: ``(key, value)`` puts and ``(key, None)``
    deletes."""
    out = bytearray(b"\x01")
    out += _U32.pack(len(writes))
    for key, value in writes:
        if value is None:
            out.append(1)
            _put_bytes(out, key)
        else:
            out.append(0)
            _put_bytes(out, key)
            _put_bytes(out, value)
    return bytes(out)


def encode_batch(records):
    """Encodes a batch as the host does, for tests: ``records`` are
    :class:`Record` objects (or anything with the same attributes)."""
    topics = []
    index = {}
    for r in records:
        if r.topic not in index:
            index[r.topic] = len(topics)
            topics.append(r.topic)
    out = bytearray(b"\x01")
    out += _U32.pack(len(topics))
    for t in topics:
        _put_bytes(out, t.encode("utf-8"))
    out += _U32.pack(len(records))
    for r in records:
        out += _RECORD_HEAD.pack(index[r.topic], r.partition, r.offset, r.timestamp)
        for f in (r.key, r.value):
            if f is None:
                out += b"\xff\xff\xff\xff"
            else:
                _put_bytes(out, _as_bytes(f, "field"))
        out += _U32.pack(len(r.headers))
        for name, v in r.headers:
            _put_bytes(out, name.encode("utf-8"))
            _put_bytes(out, _as_bytes(v, "header value"))
    return bytes(out)


def _read_output(cur, n_outputs):
    at = cur.pos
    output = cur.u32("truncated output")
    if output >= n_outputs:
        raise WireError("output index out of range", at, cur.item)

    def field(what):
        n = cur.u32(what)
        if n == NULL:
            return None
        if n == KEEP_MARK:
            return KEEP
        return cur.take(n, what)

    key = field("truncated output key")
    value = field("truncated output value")
    n = cur.u32("truncated output header count")
    headers = KEEP if n == KEEP_MARK else cur.headers(n)
    tag = cur.u8("truncated output timestamp")
    if tag == 0:
        timestamp = KEEP
    elif tag == 1:
        timestamp = cur.i64("truncated output timestamp")
    else:
        raise cur.err("bad output timestamp tag")
    return {"output": output, "key": key, "value": value, "headers": headers, "timestamp": timestamp}


def _read_outputs(cur, n_outputs):
    n = cur.u32("truncated output count")
    return [_read_output(cur, n_outputs) for _ in range(n)]


def decode_results(buf, expected, n_outputs):
    """Reads a result buffer, for tests: a list of ``("ok", [output dict])``
    or ``("rejected", reason)``; a kept field is :data:`KEEP`."""
    cur = Cursor(buf)
    cur.version()
    count = cur.u32("truncated result count")
    if count != expected:
        raise WireError("result count differs from record count", 1)
    results = []
    for i in range(count):
        cur.item = i
        tag = cur.u8("truncated result")
        if tag == 0:
            results.append(("ok", _read_outputs(cur, n_outputs)))
        elif tag == 1:
            results.append(("rejected", cur.str_("truncated rejection reason")))
        else:
            raise cur.err("bad result tag", cur.pos - 1)
    cur.item = None
    cur.end()
    return results


def decode_timer(buf, n_outputs):
    """Reads a timer buffer, for tests."""
    cur = Cursor(buf)
    cur.version()
    outputs = _read_outputs(cur, n_outputs)
    cur.end()
    return outputs


def decode_writes(buf):
    """Reads a writes buffer: ``(key, value)`` puts and ``(key, None)``
    deletes."""
    cur = Cursor(buf)
    cur.version()
    n = cur.u32("truncated write count")
    out = []
    for i in range(n):
        cur.item = i
        tag = cur.u8("truncated write")
        if tag == 0:
            key = cur.bytes_("truncated write key")
            out.append((key, cur.bytes_("truncated write value")))
        elif tag == 1:
            out.append((cur.bytes_("truncated write key"), None))
        else:
            raise cur.err("bad write tag", cur.pos - 1)
    cur.item = None
    cur.end()
    return out
