// The JavaScript helper as a processor author sees it, run through the same
// export a component uses, with the stand-in host of testing.js.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Config, ConfigError, Reject, log, state, tables, trim } from '../partita.js';
import { Harness, InitError } from '../testing.js';
import { BatchReader, ResultWriter, decodeResults, encodeBatch, utf8 } from '../wire.js';

const text = (b) => (b === null ? null : new TextDecoder().decode(b));

/** Upper-cases values and counts records per key in state. */
class Shout {
  constructor(config) {
    config.checkKeys(['suffix']);
    this.suffix = config.get('suffix') ?? '!';
  }

  process(record, out) {
    const value = record.valueString();
    if (value === '') throw new Reject('empty value');
    if (record.key === null) throw new Reject('record has no key');
    state.putU64(record.key, (state.getU64(record.key) ?? 0n) + 1n);
    out.value(value.toUpperCase() + this.suffix);
  }
}

test('records are processed in order and state reaches the host once per batch', () => {
  const h = new Harness(Shout, [['suffix', '?']]);
  const rs = h.run([
    { key: 'a', value: 'hi' },
    { key: 'a', value: '' },
    { key: 'a', value: 'yo', headers: [['h', '1']], timestamp: 42 },
  ]);
  assert.equal(rs[0].outputs[0].valueString(), 'HI?');
  assert.deepEqual(rs[1], { rejected: 'empty value' });
  const o = rs[2].outputs[0];
  assert.deepEqual([o.output, o.keyString(), o.valueString(), text(o.headers[0][1]), o.timestamp], ['default', 'a', 'YO?', '1', 42]);
  // Two accepted records counted: the rejected one threw before its write.
  const stored = h.state('a');
  assert.equal(new DataView(stored.buffer, stored.byteOffset).getBigUint64(0, true), 2n);
  assert.equal(h.calls.stateWriteBatches, 1);
  assert.equal(h.calls.stateGets, 1, 'the second and third reads hit the cache');
});

test('state survives a restart through the host, not the cache', () => {
  const h = new Harness(Shout, []);
  h.run([{ key: 'k', value: 'x' }]);
  h.restart();
  h.run([{ key: 'k', value: 'y' }]);
  const stored = h.state('k');
  assert.equal(new DataView(stored.buffer, stored.byteOffset).getBigUint64(0, true), 2n);
  assert.equal(h.calls.stateGets, 2, 'a fresh instance reads again');
});

test('init refusals carry the reason, config errors name the key', () => {
  assert.throws(() => new Harness(Shout, [['sufix', '?']]), {
    name: 'InitError',
    message: 'config key `sufix`: unknown key (known keys: suffix)',
  });
  class TwoSame {
    outputs() {
      return ['a', 'a'];
    }
  }
  assert.throws(() => new Harness(TwoSame), { message: 'output `a` is declared twice' });
  class Blank {
    outputs() {
      return ['ok', ''];
    }
  }
  assert.throws(() => new Harness(Blank), { message: 'output 1 has an empty name' });
  class Crashes {
    constructor() {
      throw new TypeError('boom');
    }
  }
  assert.throws(() => new Harness(Crashes), (e) => e instanceof InitError && e.message === 'boom');
});

test('Config helpers: last value wins, required, integers, lists, booleans, as Rust words them', () => {
  const c = new Config([
    ['a', '1'],
    ['a', ' 2 '],
    ['blank', ' \u2003 '],
    ['list', 'x, y,,z\u00a0'],
    ['flag', ' true'],
    ['bad', '1.5'],
    ['neg', '-3'],
    ['empty', ''],
  ]);
  assert.equal(c.get('a'), ' 2 ');
  assert.equal(c.int('a', 0), 2);
  assert.equal(c.int('missing', 7), 7);
  assert.equal(c.int('neg', 0), -3);
  assert.throws(() => c.int('bad', 0), { message: 'config key `bad`: cannot parse `1.5`: invalid digit found in string' });
  assert.throws(() => c.int('empty', 0), { message: 'config key `empty`: cannot parse ``: cannot parse integer from empty string' });
  assert.throws(() => c.int('neg', 0, { min: 0 }), { message: 'config key `neg`: cannot parse `-3`: invalid digit found in string' });
  assert.throws(() => c.int('a', 0, { max: 1 }), { message: 'config key `a`: cannot parse ` 2 `: number too large to fit in target type' });
  assert.throws(() => c.int('neg', 0, { min: -2 }), { message: 'config key `neg`: cannot parse `-3`: number too small to fit in target type' });
  assert.throws(() => c.require('missing'), { message: 'config key `missing`: is required but missing' });
  assert.throws(() => c.require('blank'), (e) => e instanceof ConfigError && e.key === 'blank' && /required but empty/.test(e.message));
  assert.deepEqual(c.list('list'), ['x', 'y', 'z']);
  assert.equal(c.list('missing'), undefined);
  assert.equal(c.bool('flag', false), true);
  assert.throws(() => c.bool('a', false), { message: 'config key `a`: cannot parse ` 2 `: provided string was not `true` or `false`' });
});

test('trim removes what Rust trims', () => {
  assert.equal(trim('\u0085 a b\u3000\t'), 'a b');
  assert.equal(trim('\ufeffa'), '\ufeffa');
});

test('a reject discards what the record had emitted; misuse rejects with a reason', () => {
  class Router {
    outputs() {
      return ['main', 'side'];
    }

    process(record, out) {
      const v = record.valueString();
      out.forward();
      if (v === 'bad') throw new Reject('no thanks');
      if (v === 'index') out.emit({ output: 5, value: 'x' });
      if (v === 'name') out.emit({ output: 'nope' });
      if (v === 'side') out.emit({ output: 'side', key: null, value: 'S', headers: [['n', 'v']], timestamp: 3 });
    }
  }
  const h = new Harness(Router);
  const rs = h.run([{ value: 'bad' }, { value: 'index' }, { value: 'name' }, { key: 'k', value: 'side' }]);
  assert.deepEqual(rs[0], { rejected: 'no thanks' });
  assert.deepEqual(rs[1], { rejected: 'output index 5 is out of range: the processor declared 2 output(s) (main, side)' });
  assert.deepEqual(rs[2], { rejected: 'unknown output `nope`: the processor declared 2 output(s) (main, side)' });
  const [fwd, side] = rs[3].outputs;
  assert.deepEqual([fwd.output, fwd.keyString(), fwd.valueString()], ['main', 'k', 'side']);
  assert.deepEqual([side.output, side.key, side.valueString(), side.headers[0][0], side.timestamp], ['side', null, 'S', 'n', 3]);
});

test('text accessors reject missing and invalid UTF-8 with the offset', () => {
  class Text {
    process(record, out) {
      out.value(record.keyString() + record.valueString());
    }
  }
  const h = new Harness(Text);
  const rs = h.run([{ value: 'v' }, { key: 'k' }, { key: 'k', value: new Uint8Array([0x61, 0x62, 0xff]) }]);
  assert.deepEqual(rs.map((r) => r.rejected), ['record has no key', 'record has no value', 'value is not UTF-8: invalid byte at offset 2']);
});

test('a thrown error that is not a Reject is logged and traps the call', () => {
  class Buggy {
    process(record) {
      if (text(record.value) === 'crash') throw new TypeError('undefined is not a function');
    }
  }
  const h = new Harness(Buggy);
  assert.throws(() => h.run([{ value: 'fine' }, { value: 'crash' }]), { name: 'TypeError' });
  assert.equal(h.logs.length, 1);
  assert.equal(h.logs[0][0], 'error');
  assert.match(h.logs[0][1], /^process: record at offset 1 of input\/0: TypeError: undefined is not a function/);
});

test('a malformed batch: the header traps, bad records are rejected with the wire error', () => {
  class Forward {
    process(_record, out) {
      out.forward();
    }
  }
  const h = new Harness(Forward);
  assert.throws(() => h.runEncoded(new Uint8Array([9])), {
    message: 'partita: cannot read the batch header the host sent: unsupported layout version at byte 0',
  });
  const good = encodeBatch([
    { topic: 't', partition: 0, offset: 0, timestamp: 0, key: null, value: utf8('a'), headers: [] },
    { topic: 't', partition: 0, offset: 1, timestamp: 0, key: null, value: utf8('b'), headers: [] },
    { topic: 't', partition: 0, offset: 2, timestamp: 0, key: null, value: utf8('c'), headers: [] },
  ]);
  // Each record takes 41 bytes: cut into the second one.
  const cut = good.subarray(0, good.length - 60);
  const rs = decodeResults(h.runEncoded(cut), 3, 1);
  assert.equal(rs[0].outputs.length, 1);
  assert.match(rs[1].rejected, /^malformed batch: truncated \w+ at byte \d+ \(item 1\)$/);
  assert.equal(rs[2].rejected, rs[1].rejected);
});

test('state: cache, update, delete, scan, typed values and their errors', () => {
  class Store {
    process(record) {
      const op = record.valueString();
      if (op === 'fill') {
        state.put('a1', 'x');
        state.put('a2', 'y');
        state.put(new Uint8Array([0x62, 0x31]), 'z');
        state.putF64('f', 1.5);
        state.putI64('i', -3n);
        state.putString('s', 'hé');
        state.update('n', (v) => (v === null ? '1' : null));
      } else if (op === 'scan') {
        const got = state.scan('a', 'b', 10).map(([k, v]) => `${text(k)}=${text(v)}`);
        throw new Reject(got.join(','));
      } else if (op === 'typed') {
        throw new Reject(`${state.getF64('f')} ${state.getI64('i')} ${state.getString('s')} ${state.getU64('none')}`);
      } else if (op === 'delete') {
        state.delete('a1');
        if (state.get('a1') !== null) throw new Reject('still there');
      }
    }
  }
  const h = new Harness(Store);
  h.run([{ value: 'fill' }]);
  assert.equal(h.calls.stateWriteBatches, 1);
  assert.equal(text(h.state('n')), '1');
  assert.equal(text(h.state('b1')), 'z');
  const rs = h.run([{ value: 'scan' }, { value: 'typed' }, { value: 'delete' }]);
  assert.equal(rs[0].rejected, 'a1=x,a2=y');
  assert.equal(rs[1].rejected, '1.5 -3 hé null');
  assert.deepEqual(rs[2], { outputs: [] });
  assert.equal(h.state('a1'), null, 'the delete reached the host');
});

test('a StateError names the key, type and problem', () => {
  class Short {
    process() {
      state.put('k', 'abc');
      try {
        state.getU64('k');
      } catch (e) {
        throw new Reject(e.message);
      }
    }
  }
  const h = new Harness(Short);
  assert.equal(h.runOne({}).rejected, 'state under key `k` is not a valid u64: expected 8 bytes, found 3');
  class BadText {
    process() {
      state.put('t', new Uint8Array([0xff]));
      try {
        state.getString('t');
      } catch (e) {
        throw new Reject(e.message);
      }
    }
  }
  assert.equal(new Harness(BadText).runOne({}).rejected, 'state under key `t` is not a valid String: invalid UTF-8 at offset 0');
});

test('the cache is evicted down to three quarters of its limit, pending writes first kept', () => {
  class Many {
    constructor() {
      state.setCacheLimits({ maxEntries: 8 });
    }

    process(record) {
      if (record.valueString() === 'fill') {
        for (let i = 0; i < 20; i++) state.put(new Uint8Array([i]), new Uint8Array([i]));
        if (state.cacheStats().entries !== 20) throw new Reject('pending writes were evicted');
      } else {
        for (let i = 0; i < 20; i++) if (state.get(new Uint8Array([i]))[0] !== i) throw new Reject(`lost ${i}`);
      }
    }
  }
  const h = new Harness(Many);
  assert.deepEqual(h.runOne({ value: 'fill' }), { outputs: [] });
  assert.equal(state.cacheStats().entries, 6);
  assert.equal(state.cacheStats().bytes, 6 * (2 + 64));
  assert.deepEqual(h.runOne({ value: 'read' }), { outputs: [] });
  assert.equal(h.calls.stateGets, 14, 'evicted entries are read back from the host');
});

test('tables and log reach the host', () => {
  class Enrich {
    process(record, out) {
      const name = tables.lookupString('customers', record.key);
      if (name === null) {
        log.warn(`unknown customer ${record.keyString()}`);
        throw new Reject('unknown customer');
      }
      out.value(name);
    }
  }
  const h = new Harness(Enrich);
  h.setTable('customers', 'c1', 'Ada');
  h.setTable('customers', 'c2', new Uint8Array([0xc3]));
  const rs = h.run([{ key: 'c1' }, { key: 'c9' }, { key: 'c2' }]);
  assert.equal(rs[0].outputs[0].valueString(), 'Ada');
  assert.equal(rs[1].rejected, 'unknown customer');
  assert.equal(rs[2].rejected, 'table `customers` value for key `c2` is not UTF-8 (invalid byte at offset 0)');
  assert.deepEqual(h.logs, [['warn', 'unknown customer c9']]);
});

test('onTimer emits with absent fields and the stream time; forward is refused there', () => {
  class Ticker {
    process() {}

    onTimer(streamTime, wallTime, out) {
      out.emit({ key: 'tick', value: String(wallTime - streamTime) });
      out.forward();
      out.emit({ value: 'late', timestamp: 5 });
    }
  }
  const h = new Harness(Ticker);
  const os = h.timer(1000, 1500);
  assert.equal(os.length, 2);
  assert.deepEqual([os[0].keyString(), os[0].valueString(), os[0].timestamp, os[0].headers], ['tick', '500', 1000, []]);
  assert.deepEqual([os[1].key, os[1].valueString(), os[1].timestamp], [null, 'late', 5]);
  assert.equal(h.logs.length, 1);
  assert.match(h.logs[0][1], /^onTimer: forward has no input record/);
});

test('the results of a whole batch are one buffer the host can read', () => {
  class Forward {
    process(_r, out) {
      out.forward();
    }
  }
  const h = new Harness(Forward);
  const records = [];
  for (let i = 0; i < 1000; i++) records.push({ topic: 't', partition: 1, offset: i, timestamp: i, key: null, value: utf8(`v${i}`), headers: [] });
  const buf = encodeBatch(records);
  assert.equal(new BatchReader(buf).count, 1000);
  const out = h.runEncoded(buf);
  // 5 header bytes, then 22 bytes per forwarded record.
  assert.equal(out.length, 5 + 22 * 1000);
  assert.ok(new ResultWriter() instanceof ResultWriter);
});
