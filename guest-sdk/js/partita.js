// Write Partita stream processors in JavaScript.
//
// A processor is a class: built once per instance from the stage's Config,
// it declares its named outputs and then sees one Record at a time, emitting
// outputs through an Emitter or rejecting the record by throwing a Reject.
// The batch, its byte layout (wit/processor.wit) and the WIT bindings stay
// hidden, as in the Rust SDK (guest-sdk/src):
//
//   import { Reject, state } from '@partita/processor';
//
//   export default class Shout {
//     constructor(config) {
//       config.checkKeys(['suffix']);
//       this.suffix = config.get('suffix') ?? '!';
//     }
//
//     process(record, out) {
//       const text = record.valueString();
//       if (text === '') throw new Reject('empty value');
//       const key = record.key ?? (() => { throw new Reject('record has no key'); })();
//       state.putU64(key, (state.getU64(key) ?? 0n) + 1n);
//       out.value(text.toUpperCase() + this.suffix);
//     }
//   }
//
// scripts/build-polyglot.sh turns the module's default export into a
// component (see docs/GUIDE-JS.md).
//
// What the host calls and what this module does:
// - `init(config)` once per instance: `new Processor(config)`, then
//   `outputs()` (optional; default ['default']) gives the output names; an
//   output's index is its position in that list. A constructor that throws
//   refuses the processor with the error's message.
// - `process(batch)` once per batch: each record is read in place and passed
//   to `process(record, out)`. A thrown Reject rejects that record only,
//   discarding what it had emitted (state writes stay, as in Rust); the host
//   sends it to the stage's dead-letter topic. Any other exception is a bug:
//   it is logged at error level and traps the instance, and the host retries
//   the batch record by record in a fresh instance. State writes are flushed
//   to the host once, when the batch ends.
// - `on-timer(streamTime, wallTime)`: `onTimer(streamTime, wallTime, out)`
//   if the class has it.

import { host as hostOf, setHost } from './host.js';
import { Record, Reject, validUpTo } from './record.js';
import * as state from './state.js';
import { BatchReader, ResultWriter, WireError, timerOutputs, utf8 } from './wire.js';

export { Record, Reject, state, validUpTo };

/** Result bytes reserved per record up front (a forwarded record takes 22). */
const RESULT_BYTES_PER_RECORD = 32;

/** Unicode White_Space, the set Rust's `str::trim` removes. */
const WHITESPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/**
 * `s` without leading and trailing white space, exactly as Rust's
 * `str::trim` removes it (JavaScript's own `trim` also removes U+FEFF and
 * keeps U+0085), so that a processor ported from Rust reads the same text.
 */
export function trim(s) {
  if (s.length === 0) return s;
  const a = s.charCodeAt(0);
  const z = s.charCodeAt(s.length - 1);
  // Printable ASCII at both ends: nothing to trim (the usual case).
  if (a > 0x20 && a < 0x7f && z > 0x20 && z < 0x7f) return s;
  return s.replace(WHITESPACE, '');
}

/** A configuration problem, naming the key. */
export class ConfigError extends Error {
  constructor(key, problem) {
    super(`config key \`${key}\`: ${problem}`);
    this.name = 'ConfigError';
    this.key = key;
  }
}

/**
 * Key/value configuration of a stage: the `config` table of the pipeline
 * file, or the `--config key=value` arguments of `partita test`. When a key
 * is given more than once, the last value wins.
 */
export class Config {
  /** @param {Array<[string, string]>} pairs */
  constructor(pairs = []) {
    this.pairs = pairs.map(([k, v]) => [String(k), String(v)]);
  }

  /** The value of `key`, or undefined. */
  get(key) {
    for (let i = this.pairs.length - 1; i >= 0; i--) if (this.pairs[i][0] === key) return this.pairs[i][1];
    return undefined;
  }

  /** The value of `key`; a ConfigError if it is missing or blank. */
  require(key) {
    const v = this.get(key);
    if (v === undefined) throw new ConfigError(key, 'is required but missing');
    if (trim(v) === '') throw new ConfigError(key, 'is required but empty');
    return v;
  }

  /**
   * The value of `key` (trimmed) as an integer, `fallback` if the key is
   * missing; a ConfigError if it is not an integer in [min, max], worded as
   * Rust's integer parser words it (`min` of 0 reads an unsigned number).
   */
  int(key, fallback, { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = {}) {
    const v = this.get(key);
    if (v === undefined) return fallback;
    const t = trim(v);
    const fail = (problem) => new ConfigError(key, `cannot parse \`${v}\`: ${problem}`);
    if (t === '') throw fail('cannot parse integer from empty string');
    const signed = min < 0 ? /^[+-]?\d+$/ : /^\+?\d+$/;
    if (!signed.test(t) || t === '+' || t === '-') throw fail('invalid digit found in string');
    const n = Number(t);
    if (n > max) throw fail('number too large to fit in target type');
    if (n < min) throw fail('number too small to fit in target type');
    return n;
  }

  /** The value of `key` (trimmed) as `true` or `false`, `fallback` if
   * missing; a ConfigError worded as Rust's parser words it otherwise. */
  bool(key, fallback) {
    const v = this.get(key);
    if (v === undefined) return fallback;
    const t = trim(v);
    if (t === 'true') return true;
    if (t === 'false') return false;
    throw new ConfigError(key, `cannot parse \`${v}\`: provided string was not \`true\` or \`false\``);
  }

  /** The value of `key` split at commas, items trimmed, empty items
   * dropped; undefined if the key is missing. */
  list(key) {
    const v = this.get(key);
    if (v === undefined) return undefined;
    return v.split(',').map(trim).filter((s) => s !== '');
  }

  /** A ConfigError naming the first key not in `known`, so that a misspelt
   * key is reported instead of silently ignored. */
  checkKeys(known) {
    for (const [k] of this.pairs) {
      if (!known.includes(k)) throw new ConfigError(k, `unknown key (known keys: ${known.join(', ')})`);
    }
  }

  /** All pairs, in the order given. */
  entries() {
    return this.pairs.slice();
  }
}

/**
 * Where a processor sends the outputs of the current record (or timer call).
 *
 * An output field left undefined keeps the input record's (in a timer call:
 * absent, and the timestamp is the stream time); `null` makes it absent.
 * Keys, values and header values are `Uint8Array`s or strings (UTF-8).
 * `output` is the index of a declared output or its name.
 */
export class Emitter {
  constructor(names) {
    this.names = names;
    this.writer = null;
    this.timer = null;
    this.error = null;
  }

  /** The declared output names. */
  get outputs() {
    return this.names;
  }

  /** The index of the output declared as `name`, or undefined. */
  output(name) {
    const i = this.names.indexOf(name);
    return i < 0 ? undefined : i;
  }

  /** Sends the input record unchanged to `output` (default: the first). */
  forward(output = 0) {
    if (this.timer !== null) {
      this.fail('forward has no input record to send in onTimer; use emit({ output, ... }) and set the fields');
      return;
    }
    const index = typeof output === 'number' && output >= 0 && output < this.names.length ? output : this.resolve(output);
    if (index !== undefined) this.writer.forward(index);
  }

  /** Sends the input record to the first output with `value` as its value,
   * keeping its key, headers and timestamp. */
  value(value) {
    if (this.timer !== null || this.names.length === 0) this.push({ output: 0, value });
    else this.writer.value(value);
  }

  /** Emits `{ output, key, value, headers, timestamp }`; `output` defaults
   * to the first. */
  emit(o) {
    this.push({ output: o.output ?? 0, key: o.key, value: o.value, headers: o.headers, timestamp: o.timestamp });
  }

  push(o) {
    const index = this.resolve(o.output);
    if (index === undefined) return;
    o.output = index;
    if (this.timer !== null) this.timer.push(o);
    else this.writer.output(o);
  }

  resolve(output) {
    if (typeof output === 'string') {
      const i = this.names.indexOf(output);
      if (i >= 0) return i;
      this.fail(`unknown output \`${output}\`: the processor declared ${this.names.length} output(s) (${this.names.join(', ')})`);
      return undefined;
    }
    if (Number.isInteger(output) && output >= 0 && output < this.names.length) return output;
    this.fail(
      `output index ${output} is out of range: the processor declared ${this.names.length} output(s) (${this.names.join(', ')})`,
    );
    return undefined;
  }

  fail(message) {
    if (this.error === null) this.error = message;
  }
}

/** Read-only reference tables that the host materializes from compacted
 * topics. Lookups are not cached: each is a call into the host. */
export const tables = {
  /** The current value of `key` in table `table`, a Uint8Array, or null. */
  lookup(table, key) {
    const k = typeof key === 'string' ? utf8(key) : key;
    const v = hostOf().tables.lookup(table, k);
    return v === undefined ? null : v;
  },

  /** Like lookup, as UTF-8 text; a Reject naming table and key when the
   * value is not UTF-8. */
  lookupString(table, key) {
    const v = tables.lookup(table, key);
    if (v === null) return null;
    const at = validUpTo(v);
    if (at !== v.length) {
      const shown = typeof key === 'string' ? key : new TextDecoder().decode(key);
      throw new Reject(`table \`${table}\` value for key \`${shown}\` is not UTF-8 (invalid byte at offset ${at})`);
    }
    return new TextDecoder().decode(v);
  },
};

/** Leveled logging into the host's log, tagged with stage and partition.
 * Each line is one call into the host: log per batch or per problem. */
export const log = {
  /** Writes one line; `level` is trace, debug, info, warn or error. */
  log(level, message) {
    hostOf().log.log(level, String(message));
  },
  trace: (m) => log.log('trace', m),
  debug: (m) => log.log('debug', m),
  info: (m) => log.log('info', m),
  warn: (m) => log.log('warn', m),
  error: (m) => log.log('error', m),
};

function describe(e) {
  if (e instanceof Error) return e.stack ? `${e.name}: ${e.message}\n${e.stack}` : `${e.name}: ${e.message}`;
  return String(e);
}

/**
 * The object a component exports as its `processor` interface, for the
 * processor class `Processor`, with `host` the WIT imports
 * `{ state, tables, log }`. The entry module that scripts/build-polyglot.sh
 * generates calls it; tests use testing.js's Harness instead.
 */
export function exportProcessor(Processor, host) {
  if (typeof Processor !== 'function') throw new TypeError('exportProcessor: the processor must be a class');
  setHost(host);
  let instance = null;
  let names = null;
  let emitter = null;

  return {
    init(pairs) {
      let p;
      let outputs;
      try {
        p = new Processor(new Config(pairs));
        outputs = typeof p.outputs === 'function' ? p.outputs() : ['default'];
      } catch (e) {
        if (e instanceof Error && !(e instanceof ConfigError) && !(e instanceof Reject)) log.error(`init: ${describe(e)}`);
        return { tag: 'err', val: e instanceof Error ? e.message : String(e) };
      }
      if (!Array.isArray(outputs) || outputs.some((n) => typeof n !== 'string')) {
        return { tag: 'err', val: 'outputs() must return an array of strings' };
      }
      for (let i = 0; i < outputs.length; i++) {
        if (outputs[i] === '') return { tag: 'err', val: `output ${i} has an empty name` };
        if (outputs.indexOf(outputs[i]) < i) return { tag: 'err', val: `output \`${outputs[i]}\` is declared twice` };
      }
      instance = p;
      names = outputs.slice();
      emitter = new Emitter(names);
      return { tag: 'ok', val: names };
    },

    process(buf) {
      if (instance === null) throw new Error('partita: the host called the processor before init');
      let batch;
      try {
        batch = new BatchReader(buf);
      } catch (e) {
        throw new Error(`partita: cannot read the batch header the host sent: ${e.message}`);
      }
      const n = batch.count;
      const writer = new ResultWriter(16 + Math.min(n, 1 << 16) * RESULT_BYTES_PER_RECORD);
      emitter.writer = writer;
      emitter.timer = null;
      let broken = null;
      for (let i = 0; i < n; i++) {
        writer.begin();
        if (broken !== null) {
          writer.reject(broken);
          continue;
        }
        let record;
        try {
          record = batch.next();
        } catch (e) {
          if (!(e instanceof WireError)) throw e;
          broken = `malformed batch: ${e.message}`;
          writer.reject(broken);
          continue;
        }
        emitter.error = null;
        try {
          instance.process(record, emitter);
        } catch (e) {
          if (e instanceof Reject) {
            writer.reject(e.message);
            continue;
          }
          log.error(`process: record at offset ${record.offset} of ${record.topic}/${record.partition}: ${describe(e)}`);
          throw e;
        }
        if (emitter.error !== null) writer.reject(emitter.error);
      }
      state.endCall();
      return writer.finish();
    },

    onTimer(streamTime, wallTime) {
      if (instance === null) throw new Error('partita: the host called the processor before init');
      const list = [];
      if (typeof instance.onTimer === 'function') {
        emitter.writer = null;
        emitter.timer = list;
        emitter.error = null;
        try {
          instance.onTimer(Number(streamTime), Number(wallTime), emitter);
        } catch (e) {
          log.error(`onTimer: ${describe(e)}`);
          throw e;
        }
        emitter.timer = null;
        if (emitter.error !== null) log.error(`onTimer: ${emitter.error}; that output was dropped`);
      }
      state.endCall();
      return timerOutputs(list);
    },
  };
}
