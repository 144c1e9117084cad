// Run a processor in node over records, in unit tests.
//
// A Harness plays the host: it encodes records into a batch exactly as the
// host does, runs them through the same code a component exports
// (exportProcessor), checks and decodes the results and resolves every "keep
// the input's" field, so a test sees what would be produced. It also holds
// the host's side of state, tables and logs, which tests can set and
// inspect.
//
//   import { Harness } from '@partita/processor/testing';
//   const h = new Harness(Shout, [['suffix', '?']]);
//   const [r] = h.run([{ key: 'a', value: 'hi' }]);
//   assert.equal(r.outputs[0].valueString(), 'HI?');

import { exportProcessor } from './partita.js';
import * as state from './state.js';
import { decodeResults, decodeTimer, decodeWrites, encodeBatch, utf8 } from './wire.js';

const decoder = new TextDecoder();

function bytes(v) {
  if (v === undefined || v === null) return null;
  return typeof v === 'string' ? utf8(v) : new Uint8Array(v);
}

function hex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

function compare(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** The processor refused to start; `message` is its reason. */
export class InitError extends Error {
  constructor(reason) {
    super(reason);
    this.name = 'InitError';
  }
}

/** An in-memory stand-in of the host's state, tables and log. */
export class FakeHost {
  constructor() {
    /** hex(key) -> [key, value] */
    this.entries = new Map();
    /** table -> Map(hex(key) -> value) */
    this.tableData = new Map();
    this.logs = [];
    this.calls = { stateGets: 0, stateWriteBatches: 0, stateScans: 0, tableLookups: 0, logs: 0 };
    const self = this;
    this.state = {
      get(key) {
        self.calls.stateGets += 1;
        const e = self.entries.get(hex(key));
        return e === undefined ? undefined : e[1].slice();
      },
      writeBatch(buf) {
        self.calls.stateWriteBatches += 1;
        for (const [k, v] of decodeWrites(buf)) {
          if (v === null) self.entries.delete(hex(k));
          else self.entries.set(hex(k), [k.slice(), v.slice()]);
        }
      },
      scan(start, end, limit) {
        self.calls.stateScans += 1;
        return self
          .sorted()
          .filter(([k]) => compare(k, start) >= 0 && (end === undefined || compare(k, end) < 0))
          .slice(0, limit)
          .map(([k, v]) => [k.slice(), v.slice()]);
      },
    };
    this.tables = {
      lookup(table, key) {
        self.calls.tableLookups += 1;
        const t = self.tableData.get(table);
        const v = t === undefined ? undefined : t.get(hex(key));
        return v === undefined ? undefined : v.slice();
      },
    };
    this.log = {
      log(level, message) {
        self.calls.logs += 1;
        self.logs.push([level, message]);
      },
    };
  }

  /** Every state entry `[key, value]`, in ascending byte order of key. */
  sorted() {
    return [...this.entries.values()].sort((a, b) => compare(a[0], b[0]));
  }
}

/** An output as it would be produced: every kept field resolved. */
export class Emitted {
  constructor(output, key, value, headers, timestamp) {
    /** Name of the output it goes to. */
    this.output = output;
    this.key = key;
    this.value = value;
    this.headers = headers;
    this.timestamp = timestamp;
  }

  /** The key as text. */
  keyString() {
    if (this.key === null) throw new Error('the output has no key');
    return decoder.decode(this.key);
  }

  /** The value as text. */
  valueString() {
    if (this.value === null) throw new Error('the output has no value');
    return decoder.decode(this.value);
  }
}

function resolve(outputs, names, input, timestamp) {
  const keep = (f, kept) => (f === undefined ? kept : f === null ? null : f.slice());
  return outputs.map(
    (o) =>
      new Emitted(
        names[o.output],
        keep(o.key, input ? input.key : null),
        keep(o.value, input ? input.value : null),
        o.headers === undefined ? (input ? input.headers : []) : o.headers.map(([k, v]) => [k, v.slice()]),
        o.timestamp === undefined ? timestamp : o.timestamp,
      ),
  );
}

/** A processor instance with a stand-in host around it. */
export class Harness {
  /**
   * Starts an instance of `Processor` with `config` (`[key, value]` pairs)
   * on a fresh stand-in host; throws an InitError if `init` refuses.
   */
  constructor(Processor, config = []) {
    this.Processor = Processor;
    this.config = config;
    this.host = new FakeHost();
    this.nextOffset = 0;
    this.start();
  }

  start() {
    state.reset();
    this.exported = exportProcessor(this.Processor, this.host);
    const r = this.exported.init(this.config);
    if (r.tag === 'err') throw new InitError(r.val);
    this.names = r.val;
  }

  /** Replaces the instance by a fresh one with the same configuration, as
   * the host does after a failure or a hot swap: state, tables and logs
   * stay, the instance's memory (and the state cache) does not. */
  restart() {
    this.start();
  }

  /** The output names the processor declared. */
  get outputs() {
    return this.names;
  }

  /**
   * Runs `records` as one batch. A record is `{ key, value, headers,
   * timestamp, topic, partition, offset }`, all optional (no key, no value,
   * no headers, timestamp 0, topic `input`, partition 0, the next offset);
   * key, value and header values are strings or bytes. Returns one outcome
   * per record: `{ outputs: [Emitted] }` or `{ rejected: reason }`.
   */
  run(records) {
    const inputs = records.map((r) => {
      const offset = r.offset ?? this.nextOffset;
      this.nextOffset = offset + 1;
      return {
        topic: r.topic ?? 'input',
        partition: r.partition ?? 0,
        offset,
        timestamp: r.timestamp ?? 0,
        key: bytes(r.key),
        value: bytes(r.value),
        headers: (r.headers ?? []).map(([k, v]) => [k, bytes(v)]),
      };
    });
    const encoded = this.exported.process(encodeBatch(inputs));
    return decodeResults(encoded, inputs.length, this.names.length).map((result, i) =>
      result.rejected !== undefined
        ? { rejected: result.rejected }
        : { outputs: resolve(result.outputs, this.names, inputs[i], inputs[i].timestamp) },
    );
  }

  /** Runs one record as a batch of one. */
  runOne(record) {
    return this.run([record])[0];
  }

  /** Runs an already encoded batch and returns the encoded results. */
  runEncoded(batch) {
    return this.exported.process(batch);
  }

  /** Calls onTimer and returns its outputs (absent fields resolved to
   * null, the timestamp defaulting to `streamTime`). */
  timer(streamTime, wallTime) {
    const encoded = this.exported.onTimer(BigInt(streamTime), BigInt(wallTime));
    return resolve(decodeTimer(encoded, this.names.length), this.names, null, streamTime);
  }

  /** Sets `key` to `value` in reference table `table`. */
  setTable(table, key, value) {
    if (!this.host.tableData.has(table)) this.host.tableData.set(table, new Map());
    this.host.tableData.get(table).set(hex(bytes(key)), bytes(value));
  }

  /** The value the host stores under `key` (what the processor has sent,
   * not its cache), or null. */
  state(key) {
    const e = this.host.entries.get(hex(bytes(key)));
    return e === undefined ? null : e[1];
  }

  /** Every entry `[key, value]` the host stores, in key order. */
  stateEntries() {
    return this.host.sorted();
  }

  /** Stores `value` under `key` on the host's side (as restored state). */
  setState(key, value) {
    const k = bytes(key);
    this.host.entries.set(hex(k), [k, bytes(value)]);
  }

  /** The lines the processor logged, `[level, message]`, in order. */
  get logs() {
    return this.host.logs;
  }

  /** The calls the processor made into the host so far. */
  get calls() {
    return this.host.calls;
  }
}
