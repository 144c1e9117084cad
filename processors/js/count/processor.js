// count in JavaScript: the port of processors/count (Rust), with the same
// configuration keys, state encoding, output bytes and rejection reasons.
//
// A running count and sum per record key, kept in state. For each record it
// adds the record's number to its key's totals and emits the new totals to
// output `default` as {"key":"K","count":N,"sum":S}, keeping the record's
// key, headers and timestamp.
//
// Configuration:
//   field          read the number from this field of a JSON object value;
//                  without it the whole value is the number
//   cache_entries  most keys kept in the instance's state cache between
//                  batches (default 100,000)
//
// State: one entry per record key, 16 bytes: the count as a little-endian
// u64, then the sum as a little-endian f64.

import { Reject, state, trim, validUpTo } from '../../../guest-sdk/js/partita.js';
import { JsonError, parseObject, toJson } from './json.js';
import { rustDisplay } from './numbers.js';

/** Bytes of one key's state: count then sum. */
const STATE_LEN = 16;
const TWO_53 = 2 ** 53;
const FLOAT = /^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** ASCII white space, what Rust's `trim_ascii` removes. */
const ASCII_SPACE = /^[ \t\n\f\r]+|[ \t\n\f\r]+$/g;
const HEX = '0123456789abcdef';
const KEY_ESCAPES = /["\\\u0000-\u001f]/;

/** `s` as a JSON string literal, escaped as the Rust processor escapes
 * keys: `\"`, `\\`, `\n`, `\r`, `\t`, other control characters as
 * `\u00XX`. */
export function keyJson(s) {
  if (!KEY_ESCAPES.test(s)) return `"${s}"`;
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c < 0x20) out += `\\u00${HEX[c >> 4]}${HEX[c & 0xf]}`;
    else out += s[i];
  }
  return `${out}"`;
}

/** Decimal text as a finite number, or undefined (the Rust grammar: sign,
 * digits with an optional point, optional exponent, ASCII spaces around). */
export function number(text) {
  const t = text.replace(ASCII_SPACE, '');
  let negative = false;
  let body = t;
  if (t[0] === '-') {
    negative = true;
    body = t.slice(1);
  } else if (t[0] === '+') {
    body = t.slice(1);
  }
  if (!FLOAT.test(body)) return undefined;
  const n = Number(body);
  if (!Number.isFinite(n)) return undefined;
  return negative ? -n : n;
}

const shown = (text) => Array.from(trim(text)).slice(0, 40).join('');

function wholeValueNumber(value) {
  let text;
  try {
    text = utf8.decode(value);
  } catch {
    throw new Reject(`value is not a number: not UTF-8 at offset ${validUpTo(value)}`);
  }
  const n = number(text);
  if (n === undefined) throw new Reject(`value is not a number: \`${shown(text)}\``);
  return n;
}

function fieldNumber(value, field) {
  let object;
  try {
    object = parseObject(value);
  } catch (e) {
    if (e instanceof JsonError) throw new Reject(`value is not a JSON object: ${e.message}`);
    throw e;
  }
  if (!object.has(field)) throw new Reject(`value has no field \`${field}\``);
  const v = object.get(field);
  const notANumber = () => new Reject(`field \`${field}\` is not a number: \`${shown(toJson(v))}\``);
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Map)) return Number(v.value);
  if (typeof v === 'string') {
    const n = number(v);
    if (n === undefined) throw notANumber();
    return n;
  }
  throw notANumber();
}

/** Running count and sum per key. */
export default class Count {
  constructor(config) {
    config.checkKeys(['field', 'cache_entries']);
    // The Rust processor reads a usize, 32 bits wide on wasm32.
    const maxEntries = config.int('cache_entries', undefined, { min: 0, max: 2 ** 32 - 1 });
    if (maxEntries !== undefined) state.setCacheLimits({ maxEntries });
    const field = config.get('field');
    this.field = field === undefined || trim(field) === '' ? undefined : trim(field);
  }

  process(record, out) {
    const key = record.key;
    if (key === null) throw new Reject('record has no key');
    const keyText = record.keyString();
    const value = record.value;
    if (value === null) throw new Reject('record has no value');
    const amount = this.field === undefined ? wholeValueNumber(value) : fieldNumber(value, this.field);

    const slot = state.get(key);
    let count = 0n;
    let sum = 0;
    if (slot !== null) {
      if (slot.length !== STATE_LEN) throw new Reject(`state for key \`${keyText}\` is ${slot.length} bytes, expected ${STATE_LEN}`);
      const view = new DataView(slot.buffer, slot.byteOffset, STATE_LEN);
      count = view.getBigUint64(0, true);
      sum = view.getFloat64(8, true);
    }
    count += 1n;
    sum += amount;
    if (!Number.isFinite(sum)) throw new Reject(`the sum of key \`${keyText}\` would overflow`);
    const next = new Uint8Array(STATE_LEN);
    const view = new DataView(next.buffer);
    view.setBigUint64(0, count, true);
    view.setFloat64(8, sum, true);
    state.put(key, next);

    let sumText;
    if (Number.isInteger(sum) && Math.abs(sum) < TWO_53) sumText = sum < 0 ? `-${-sum}` : String(Math.abs(sum));
    else sumText = rustDisplay(sum);
    out.value(`{"key":${keyJson(keyText)},"count":${count},"sum":${sumText}}`);
  }
}
