// The byte layout of what crosses the Partita processor boundary, version 1,
// in JavaScript: the counterpart of the Rust crate `partita-wire`
// (wit/wire/src) and of the layout documented in wit/processor.wit.
//
// Integers are little-endian and unaligned. `bytes` is a u32 length then
// that many bytes; `str` is `bytes` holding UTF-8; `opt` is a u32 length
// where NULL (0xFFFF_FFFF) means absent.
//
//   batch    = u8 version, u32 n_topics, str x n_topics,
//              u32 n_records, record x n_records
//   record   = u32 topic_index, i32 partition, i64 offset, i64 timestamp_ms,
//              opt key, opt value, headers
//   headers  = u32 n, (str name, bytes value) x n
//   results  = u8 version, u32 n_results, result x n_results
//   result   = u8 0, outputs | u8 1, str reason
//   outputs  = u32 n, output x n
//   output   = u32 output_index, field key, field value, out_headers, ts
//   field    = opt, where KEEP (0xFFFF_FFFE) means "as in the input record"
//   out_headers = headers, where n = KEEP means "as in the input record"
//   ts       = u8 0 (as in the input record) | u8 1, i64 timestamp_ms
//   timer    = u8 version, outputs
//   writes   = u8 version, u32 n, (u8 0, bytes key, bytes value
//                                  | u8 1, bytes key) x n
//
// The readers check every bound and throw a WireError whose message says
// what was wrong and at which byte, worded as the Rust reader words it
// ("truncated key at byte 57 (item 3)"). 64-bit integers are read into
// Numbers: exact for magnitudes below 2^53, which covers offsets and
// millisecond timestamps.

import { Record } from './record.js';

/** Version byte that starts every buffer of this layout. */
export const VERSION = 1;
/** Length marker for an absent key or value. */
export const NULL = 0xffffffff;
/** Length (or header count) marker for "keep the input record's field". */
export const KEEP = 0xfffffffe;

const TWO_32 = 4294967296;
const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/** Why a buffer could not be read: what was wrong and at which byte. */
export class WireError extends Error {
  /**
   * @param {string} what what was expected or found
   * @param {number} at byte offset in the buffer
   * @param {number | undefined} item index of the record or result, if any
   */
  constructor(what, at, item) {
    super(item === undefined ? `${what} at byte ${at}` : `${what} at byte ${at} (item ${item})`);
    this.name = 'WireError';
    this.what = what;
    this.at = at;
    this.item = item;
  }
}

/** UTF-8 bytes of `s`. */
export function utf8(s) {
  return utf8Encoder.encode(s);
}

/** The bytes of a key, value or header value given as bytes or text. */
export function asBytes(v, what) {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return utf8Encoder.encode(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  throw new TypeError(`${what} must be a Uint8Array or a string, not ${v === null ? 'null' : typeof v}`);
}

/** Text of `bytes`, or a WireError naming `what` at `at`. */
function strictText(bytes, what, at, item) {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    throw new WireError(what, at, item);
  }
}

/**
 * A bounds-checked cursor over a buffer. `item` is the index of the record
 * or result being read, for error messages.
 */
export class Cursor {
  /** @param {Uint8Array} buf */
  constructor(buf, pos = 0) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = pos;
    this.item = undefined;
  }

  err(what, at = this.pos) {
    return new WireError(what, at, this.item);
  }

  need(n, what) {
    if (this.pos + n > this.buf.length) throw this.err(what);
  }

  u8(what) {
    this.need(1, what);
    return this.buf[this.pos++];
  }

  u32(what) {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  i32(what) {
    this.need(4, what);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }

  i64(what) {
    this.need(8, what);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getInt32(this.pos + 4, true);
    this.pos += 8;
    return hi * TWO_32 + lo;
  }

  /** `n` bytes as a view into the buffer (no copy). */
  take(n, what) {
    this.need(n, what);
    const s = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  bytes(what) {
    const n = this.u32(what);
    if (n >= KEEP) throw this.err(what);
    return this.take(n, what);
  }

  str(what) {
    const at = this.pos;
    const b = this.bytes(what);
    return strictText(b, 'invalid UTF-8', at, this.item);
  }

  /** An `opt` of an input record: null or a view. */
  opt(what) {
    const at = this.pos;
    const n = this.u32(what);
    if (n === NULL) return null;
    if (n === KEEP) throw new WireError('unexpected KEEP marker', at, this.item);
    return this.take(n, what);
  }

  /** `n` header pairs as [name, value] arrays. */
  headers(n) {
    const out = new Array(n);
    for (let i = 0; i < n; i++) {
      const name = this.str('truncated header name');
      out[i] = [name, this.bytes('truncated header value')];
    }
    return out;
  }

  version() {
    if (this.u8('empty buffer') !== VERSION) throw new WireError('unsupported layout version', 0, undefined);
  }

  end() {
    if (this.pos !== this.buf.length) throw this.err('trailing bytes after the last item');
  }
}

/**
 * A batch of records as encoded by the host.
 *
 * `new BatchReader(buf)` reads the header (version, topics, count) and
 * throws a WireError if it cannot; `next()` then returns each record in
 * order as a Record whose key and value are views into `buf` (or null), and
 * throws a WireError for a record that cannot be read.
 */
export class BatchReader {
  /** @param {Uint8Array} buf */
  constructor(buf) {
    const cur = new Cursor(buf);
    cur.version();
    const nTopics = cur.u32('truncated topic count');
    const topics = [];
    for (let i = 0; i < nTopics; i++) topics.push(cur.str('truncated topic name'));
    this.topics = topics;
    this.count = cur.u32('truncated record count');
    this.cur = cur;
    this.index = 0;
  }

  /** The next record; call it exactly `count` times. */
  next() {
    // Fast path: the fixed part, key and value read inline (an interpreter
    // pays for every call). Anything unusual, including every malformed
    // record, takes the checked path below, which says what is wrong.
    const cur = this.cur;
    const b = cur.buf;
    const end = b.length;
    const start = cur.pos;
    let p = start;
    const dv = cur.view;
    if (p + 32 <= end) {
      const topic = this.topics[dv.getUint32(p, true)];
      const kn = dv.getUint32(p + 24, true);
      if (topic !== undefined && (kn === NULL || kn < KEEP)) {
        p += 28;
        let key = null;
        if (kn !== NULL) {
          key = p + kn <= end ? b.subarray(p, p + kn) : undefined;
          p += kn;
        }
        if (key !== undefined && p + 8 <= end) {
          const vn = dv.getUint32(p, true);
          p += 4;
          let value = null;
          if (vn !== NULL) value = vn < KEEP && p + vn <= end ? b.subarray(p, p + vn) : undefined;
          if (value !== undefined) {
            if (value !== null) p += vn;
            if (p + 4 <= end && dv.getUint32(p, true) === 0) {
              const partition = dv.getInt32(start + 4, true);
              const offset = dv.getInt32(start + 12, true) * TWO_32 + dv.getUint32(start + 8, true);
              const timestamp = dv.getInt32(start + 20, true) * TWO_32 + dv.getUint32(start + 16, true);
              cur.pos = p + 4;
              this.index++;
              return new Record(topic, partition, offset, timestamp, key, value, EMPTY);
            }
          }
        }
      }
    }
    return this.checked();
  }

  /** The next record, every field bounds-checked. */
  checked() {
    const cur = this.cur;
    cur.item = this.index++;
    const t = cur.u32('truncated record');
    if (t >= this.topics.length) throw cur.err('topic index out of range');
    const partition = cur.i32('truncated record');
    const offset = cur.i64('truncated record');
    const timestamp = cur.i64('truncated record');
    const key = cur.opt('truncated key');
    const value = cur.opt('truncated value');
    const n = cur.u32('truncated header count');
    const headers = n === 0 ? EMPTY : cur.headers(n);
    return new Record(this.topics[t], partition, offset, timestamp, key, value, headers);
  }
}

const EMPTY = Object.freeze([]);

/** A growable little-endian byte buffer. */
export class ByteWriter {
  constructor(capacity = 256) {
    this.buf = new Uint8Array(Math.max(16, capacity));
    this.dv = new DataView(this.buf.buffer);
    this.len = 0;
  }

  reserve(n) {
    const need = this.len + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }

  u8(v) {
    this.reserve(1);
    this.buf[this.len++] = v;
  }

  u32(v) {
    this.reserve(4);
    this.dv.setUint32(this.len, v, true);
    this.len += 4;
  }

  i32(v) {
    this.reserve(4);
    this.dv.setInt32(this.len, v, true);
    this.len += 4;
  }

  i64(v) {
    if (!Number.isSafeInteger(v)) throw new RangeError(`${v} is not an integer this layout can carry exactly`);
    this.reserve(8);
    const lo = v % TWO_32;
    const loU = lo < 0 ? lo + TWO_32 : lo;
    this.dv.setUint32(this.len, loU, true);
    this.dv.setInt32(this.len + 4, (v - loU) / TWO_32, true);
    this.len += 8;
  }

  patchU32(at, v) {
    this.dv.setUint32(at, v, true);
  }

  getU32(at) {
    return this.dv.getUint32(at, true);
  }

  raw(bytes) {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
  }

  /** `bytes`: u32 length, then the bytes (a string is written as UTF-8). */
  bytes(b) {
    if (typeof b === 'string') {
      this.str(b);
      return;
    }
    if (b.length >= KEEP) throw new RangeError(`field of ${b.length} bytes is too large for the wire format`);
    this.u32(b.length);
    this.raw(b);
  }

  /** `str`: UTF-8 with a u32 length, encoded in place. */
  str(s) {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    this.reserve(4 + s.length * 3);
    const at = this.len;
    const { written } = utf8Encoder.encodeInto(s, this.buf.subarray(at + 4));
    this.dv.setUint32(at, written, true);
    this.len = at + 4 + written;
  }

  /** A copy of the bytes written so far. */
  finish() {
    return this.buf.slice(0, this.len);
  }

  /** The bytes written so far, as a view (valid until the next write). */
  view() {
    return this.buf.subarray(0, this.len);
  }

  truncate(len) {
    this.len = len;
  }
}

/** An output field: undefined keeps the input's, null is absent. */
function field(w, v, what) {
  if (v === undefined) w.u32(KEEP);
  else if (v === null) w.u32(NULL);
  else w.bytes(typeof v === 'string' ? v : asBytes(v, what));
}

/**
 * Appends one output. `o` is `{ output, key, value, headers, timestamp }`:
 * `output` the index of a declared output; key, value, headers and
 * timestamp undefined to keep the input record's; key and value null for
 * none; headers an array of [name, value] pairs.
 */
export function encodeOutput(w, o) {
  w.u32(o.output);
  field(w, o.key, 'key');
  field(w, o.value, 'value');
  const hs = o.headers;
  if (hs === undefined) {
    w.u32(KEEP);
  } else {
    w.u32(hs.length);
    for (const [name, value] of hs) {
      if (typeof name !== 'string') throw new TypeError('a header name must be a string');
      w.str(name);
      w.bytes(typeof value === 'string' ? value : asBytes(value, `header ${name}`));
    }
  }
  if (o.timestamp === undefined) {
    w.u8(0);
  } else {
    w.u8(1);
    w.i64(o.timestamp);
  }
}

/**
 * Encodes results: one result per input record, in order. For each record
 * call begin(), then output() any number of times, then nothing (the record
 * is ok) or reject(reason), which discards that record's outputs.
 */
export class ResultWriter {
  constructor(capacity = 256) {
    this.w = new ByteWriter(capacity);
    this.w.u8(VERSION);
    this.w.u32(0);
    this.count = 0;
    this.current = 0;
  }

  begin() {
    this.count += 1;
    this.w.patchU32(1, this.count);
    this.current = this.w.len;
    this.w.u8(0);
    this.w.u32(0);
  }

  output(o) {
    const at = this.current + 1;
    this.w.patchU32(at, this.w.getU32(at) + 1);
    encodeOutput(this.w, o);
  }

  /** Adds an output that keeps every field of the input record. */
  forward(output) {
    const w = this.w;
    w.reserve(17);
    const b = w.buf;
    const at = this.current + 1;
    w.patchU32(at, w.getU32(at) + 1);
    const p = w.len;
    const dv = w.dv;
    dv.setUint32(p, output, true);
    dv.setUint32(p + 4, KEEP, true);
    dv.setUint32(p + 8, KEEP, true);
    dv.setUint32(p + 12, KEEP, true);
    b[p + 16] = 0;
    w.len = p + 17;
  }

  /** Adds an output to index 0 with `value` (a string or bytes), keeping
   * the input's key, headers and timestamp. */
  value(value) {
    const w = this.w;
    const at = this.current + 1;
    w.patchU32(at, w.getU32(at) + 1);
    w.reserve(8);
    const p = w.len;
    w.dv.setUint32(p, 0, true);
    w.dv.setUint32(p + 4, KEEP, true);
    w.len = p + 8;
    if (typeof value === 'string') w.str(value);
    else w.bytes(asBytes(value, 'value'));
    w.u32(KEEP);
    w.u8(0);
  }

  reject(reason) {
    this.w.truncate(this.current);
    this.w.u8(1);
    this.w.str(String(reason));
  }

  /** The finished buffer (a view; the writer must not be used after). */
  finish() {
    return this.w.view();
  }
}

/** Encodes a timer call's outputs: `u8 version, outputs`. */
export function timerOutputs(outputs) {
  const w = new ByteWriter(64);
  w.u8(VERSION);
  w.u32(outputs.length);
  for (const o of outputs) encodeOutput(w, o);
  return w.finish();
}

/** Encodes state writes: `[key, value]` puts and `[key, null]` deletes. */
export function encodeWrites(writes) {
  const w = new ByteWriter(64);
  w.u8(VERSION);
  w.u32(writes.length);
  for (const [key, value] of writes) {
    if (value === null) {
      w.u8(1);
      w.bytes(key);
    } else {
      w.u8(0);
      w.bytes(key);
      w.bytes(value);
    }
  }
  return w.finish();
}

/** Encodes a batch (what the host sends), for tests: `records` are objects
 * as BatchReader returns them, with `topic` names. */
export function encodeBatch(records) {
  const topics = [];
  const index = new Map();
  for (const r of records) {
    if (!index.has(r.topic)) {
      index.set(r.topic, topics.length);
      topics.push(r.topic);
    }
  }
  const w = new ByteWriter(256);
  w.u8(VERSION);
  w.u32(topics.length);
  for (const t of topics) w.str(t);
  w.u32(records.length);
  for (const r of records) {
    w.u32(index.get(r.topic));
    w.i32(r.partition);
    w.i64(r.offset);
    w.i64(r.timestamp);
    for (const f of [r.key, r.value]) {
      if (f === null) w.u32(NULL);
      else w.bytes(asBytes(f, 'field'));
    }
    w.u32(r.headers.length);
    for (const [name, value] of r.headers) {
      w.str(name);
      w.bytes(asBytes(value, 'header value'));
    }
  }
  return w.finish();
}

function readOutput(cur, nOutputs) {
  const at = cur.pos;
  const output = cur.u32('truncated output');
  if (output >= nOutputs) throw new WireError('output index out of range', at, cur.item);
  const outField = (what) => {
    const n = cur.u32(what);
    if (n === NULL) return null;
    if (n === KEEP) return undefined;
    return cur.take(n, what);
  };
  const key = outField('truncated output key');
  const value = outField('truncated output value');
  const n = cur.u32('truncated output header count');
  const headers = n === KEEP ? undefined : cur.headers(n);
  const tag = cur.u8('truncated output timestamp');
  let timestamp;
  if (tag === 1) timestamp = cur.i64('truncated output timestamp');
  else if (tag !== 0) throw cur.err('bad output timestamp tag');
  return { output, key, value, headers, timestamp };
}

function readOutputs(cur, nOutputs) {
  const n = cur.u32('truncated output count');
  const out = [];
  for (let i = 0; i < n; i++) out.push(readOutput(cur, nOutputs));
  return out;
}

/**
 * Reads a result buffer (what a processor returns), for tests: an array of
 * `{ outputs }` or `{ rejected }` entries; a kept field is undefined.
 */
export function decodeResults(buf, expected, nOutputs) {
  const cur = new Cursor(buf);
  cur.version();
  const count = cur.u32('truncated result count');
  if (count !== expected) throw new WireError('result count differs from record count', 1, undefined);
  const results = [];
  for (let i = 0; i < count; i++) {
    cur.item = i;
    const tag = cur.u8('truncated result');
    if (tag === 0) results.push({ outputs: readOutputs(cur, nOutputs) });
    else if (tag === 1) results.push({ rejected: cur.str('truncated rejection reason') });
    else throw cur.err('bad result tag', cur.pos - 1);
  }
  cur.item = undefined;
  cur.end();
  return results;
}

/** Reads a timer buffer, for tests. */
export function decodeTimer(buf, nOutputs) {
  const cur = new Cursor(buf);
  cur.version();
  const outputs = readOutputs(cur, nOutputs);
  cur.end();
  return outputs;
}

/** Reads a writes buffer: `[key, value]` puts and `[key, null]` deletes. */
export function decodeWrites(buf) {
  const cur = new Cursor(buf);
  cur.version();
  const n = cur.u32('truncated write count');
  const out = [];
  for (let i = 0; i < n; i++) {
    cur.item = i;
    const tag = cur.u8('truncated write');
    if (tag === 0) {
      const key = cur.bytes('truncated write key');
      out.push([key, cur.bytes('truncated write value')]);
    } else if (tag === 1) {
      out.push([cur.bytes('truncated write key'), null]);
    } else {
      throw cur.err('bad write tag', cur.pos - 1);
    }
  }
  cur.item = undefined;
  cur.end();
  return out;
}
