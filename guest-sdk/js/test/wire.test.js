// Round trips and malformed-buffer cases of the JavaScript wire codec.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  BatchReader,
  ByteWriter,
  KEEP,
  NULL,
  ResultWriter,
  WireError,
  decodeResults,
  decodeTimer,
  decodeWrites,
  encodeBatch,
  encodeWrites,
  timerOutputs,
  utf8,
} from '../wire.js';

const text = (b) => new TextDecoder().decode(b);

function sampleBatch() {
  return encodeBatch([
    { topic: 'in', partition: 3, offset: 10, timestamp: 1000, key: utf8('k1'), value: utf8('v1'), headers: [['h', utf8('x')]] },
    { topic: 'other', partition: 3, offset: 11, timestamp: 1001, key: null, value: null, headers: [] },
  ]);
}

function readAll(buf) {
  const b = new BatchReader(buf);
  const out = [];
  for (let i = 0; i < b.count; i++) out.push(b.next());
  return out;
}

test('a batch round-trips', () => {
  const rs = readAll(sampleBatch());
  assert.equal(rs.length, 2);
  assert.deepEqual([rs[0].topic, rs[0].partition, rs[0].offset, rs[0].timestamp], ['in', 3, 10, 1000]);
  assert.equal(text(rs[0].key), 'k1');
  assert.equal(text(rs[0].value), 'v1');
  assert.deepEqual(rs[0].headers.map(([k, v]) => [k, text(v)]), [['h', 'x']]);
  assert.deepEqual([rs[1].topic, rs[1].key, rs[1].value, rs[1].headers.length], ['other', null, null, 0]);
});

test('the batch layout is byte for byte the documented one', () => {
  const buf = encodeBatch([{ topic: 't', partition: -1, offset: 2, timestamp: -5, key: null, value: utf8('v'), headers: [] }]);
  const expected = [
    1, 1, 0, 0, 0, 1, 0, 0, 0, 0x74, // version, 1 topic, "t"
    1, 0, 0, 0, // 1 record
    0, 0, 0, 0, // topic index
    0xff, 0xff, 0xff, 0xff, // partition -1
    2, 0, 0, 0, 0, 0, 0, 0, // offset
    0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // timestamp -5
    0xff, 0xff, 0xff, 0xff, // no key
    1, 0, 0, 0, 0x76, // value "v"
    0, 0, 0, 0, // no headers
  ];
  assert.deepEqual([...buf], expected);
});

test('64-bit integers keep their exact value up to 2^53', () => {
  const big = 2 ** 53 - 1;
  const [r] = readAll(encodeBatch([{ topic: 't', partition: 0, offset: big, timestamp: -big, key: null, value: null, headers: [] }]));
  assert.equal(r.offset, big);
  assert.equal(r.timestamp, -big);
  const w = new ByteWriter();
  assert.throws(() => w.i64(2 ** 53), /not an integer this layout can carry exactly/);
});

test('every truncation of a batch is an error naming the byte, never a crash', () => {
  const bytes = sampleBatch();
  for (let cut = 0; cut < bytes.length; cut++) {
    let failed = false;
    try {
      readAll(bytes.subarray(0, cut));
    } catch (e) {
      assert.ok(e instanceof WireError, `cut at ${cut}: ${e}`);
      assert.match(e.message, / at byte \d+/);
      failed = true;
    }
    assert.ok(failed, `cut at ${cut} read fine`);
  }
});

test('batch errors say what and where, as the Rust reader does', () => {
  assert.throws(() => new BatchReader(new Uint8Array([])), { message: 'empty buffer at byte 0' });
  assert.throws(() => new BatchReader(new Uint8Array([2, 0, 0, 0, 0])), { message: 'unsupported layout version at byte 0' });
  const bytes = sampleBatch();
  // Cut inside the second record's key length.
  const b = new BatchReader(bytes.subarray(0, bytes.length - 10));
  b.next();
  assert.throws(() => b.next(), (e) => e instanceof WireError && e.item === 1 && /^truncated (key|value) at byte \d+ \(item 1\)$/.test(e.message));
  // A topic index past the table.
  const bad = sampleBatch();
  bad[1 + 4 + 6 + 9 + 4] = 9;
  const c = new BatchReader(bad);
  assert.throws(() => c.next(), { message: 'topic index out of range at byte 28 (item 0)' });
  // A KEEP marker is not allowed in an input record.
  const keep = encodeBatch([{ topic: 't', partition: 0, offset: 0, timestamp: 0, key: null, value: null, headers: [] }]);
  new DataView(keep.buffer).setUint32(38, KEEP, true);
  assert.throws(() => new BatchReader(keep).next(), { message: 'unexpected KEEP marker at byte 38 (item 0)' });
  // A header name that is not UTF-8.
  const h = encodeBatch([{ topic: 't', partition: 0, offset: 0, timestamp: 0, key: null, value: null, headers: [['n', utf8('v')]] }]);
  h[54] = 0xff;
  assert.throws(() => new BatchReader(h).next(), { message: 'invalid UTF-8 at byte 50 (item 0)' });
});

test('results round-trip with keep, null and reject', () => {
  const w = new ResultWriter(8);
  w.begin();
  w.output({ output: 0 });
  w.output({ output: 1, key: null, value: utf8('new'), headers: [['a', utf8('b')]], timestamp: 7 });
  w.begin();
  w.output({ output: 0, value: 'dropped' });
  w.reject('bad record');
  w.begin();
  const rs = decodeResults(w.finish(), 3, 2);
  assert.equal(rs.length, 3);
  assert.deepEqual(rs[0].outputs[0], { output: 0, key: undefined, value: undefined, headers: undefined, timestamp: undefined });
  const o = rs[0].outputs[1];
  assert.deepEqual([o.output, o.key, text(o.value), o.headers[0][0], text(o.headers[0][1]), o.timestamp], [1, null, 'new', 'a', 'b', 7]);
  assert.deepEqual(rs[1], { rejected: 'bad record' });
  assert.deepEqual(rs[2], { outputs: [] });
});

test('a forwarded record costs 22 bytes, as documented', () => {
  const w = new ResultWriter();
  w.begin();
  const before = w.finish().length;
  w.output({ output: 0 });
  assert.equal(w.finish().length - before, 17);
  // u8 tag + u32 count + 17 bytes of output = 22.
  assert.equal(w.finish().length - 5, 22);
});

test('result and timer readers reject bad buffers with their byte', () => {
  const w = new ResultWriter();
  w.begin();
  w.output({ output: 3 });
  assert.throws(() => decodeResults(w.finish(), 1, 2), { message: 'output index out of range at byte 10 (item 0)' });
  assert.throws(() => decodeResults(w.finish(), 2, 4), { message: 'result count differs from record count at byte 1' });
  const t = timerOutputs([{ output: 0, key: 'k', value: null, timestamp: 9 }]);
  const [o] = decodeTimer(t, 1);
  assert.deepEqual([text(o.key), o.value, o.headers, o.timestamp], ['k', null, undefined, 9]);
  const extra = new Uint8Array([...t, 0]);
  assert.throws(() => decodeTimer(extra, 1), { message: `trailing bytes after the last item at byte ${t.length}` });
});

test('writes round-trip', () => {
  const buf = encodeWrites([
    [utf8('a'), utf8('1')],
    [utf8('b'), null],
  ]);
  assert.deepEqual([...buf], [1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 97, 1, 0, 0, 0, 49, 1, 1, 0, 0, 0, 98]);
  const ws = decodeWrites(buf);
  assert.deepEqual(ws.map(([k, v]) => [text(k), v === null ? null : text(v)]), [['a', '1'], ['b', null]]);
  assert.throws(() => decodeWrites(new Uint8Array([1, 1, 0, 0, 0, 7])), { message: 'bad write tag at byte 5 (item 0)' });
});

test('strings are written as UTF-8 with their byte length', () => {
  const w = new ByteWriter(16);
  w.str('héllo wörld, a string longer than the initial buffer');
  const len = new DataView(w.view().buffer).getUint32(0, true);
  assert.equal(len, utf8('héllo wörld, a string longer than the initial buffer').length);
  assert.equal(text(w.view().subarray(4)), 'héllo wörld, a string longer than the initial buffer');
  assert.equal(NULL, 0xffffffff);
});
