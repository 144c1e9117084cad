// Reads a JSON object as the Rust processor's serde_json does
// (`serde_json::from_slice::<Map<String, Value>>`), with the same error
// messages and positions ("expected value at line 1 column 2"), so that the
// port rejects the same records for the same reasons. Also writes a value as
// serde_json's `Value::to_string` does.
//
// Values: null, booleans, strings, arrays, objects as Maps (key order
// sorted, as serde_json's default map keeps them), numbers as
// `{ kind: 'u64' | 'i64' | 'f64', value }` (a BigInt for the integers).

import { validUpTo } from '../../../guest-sdk/js/partita.js';
import { zmijFormat } from './numbers.js';

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();
const RECURSION_LIMIT = 128;
const U64_MAX = (1n << 64n) - 1n;

/** A parse error with serde_json's message. */
export class JsonError extends Error {}

class Parser {
  constructor(bytes) {
    this.b = bytes;
    this.i = 0;
    this.depth = 0;
  }

  lineColumn(i) {
    let start = 0;
    let line = 1;
    for (let k = 0; k < i; k++) {
      if (this.b[k] === 0x0a) {
        line += 1;
        start = k + 1;
      }
    }
    return [line, i - start];
  }

  position(i) {
    const [line, column] = this.lineColumn(i);
    return `line ${line} column ${column}`;
  }

  /** Error at the current index (after the byte that caused it). */
  error(msg) {
    return new JsonError(`${msg} at ${this.position(this.i)}`);
  }

  /** Error at the byte that was peeked. */
  peekError(msg) {
    return new JsonError(`${msg} at ${this.position(Math.min(this.b.length, this.i + 1))}`);
  }

  peek() {
    return this.i < this.b.length ? this.b[this.i] : undefined;
  }

  whitespace() {
    for (;;) {
      const c = this.peek();
      if (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) this.i++;
      else return c;
    }
  }

  ident(rest) {
    for (const ch of rest) {
      if (this.i >= this.b.length) {
        throw this.error('EOF while parsing a value');
      }
      if (this.b[this.i++] !== ch.charCodeAt(0)) throw this.error('expected ident');
    }
  }

  isDigit(c) {
    return c !== undefined && c >= 0x30 && c <= 0x39;
  }

  /** A number after an optional '-' that was already eaten. */
  number(positive) {
    const start = this.i;
    if (this.i >= this.b.length) throw this.error('EOF while parsing a value');
    const first = this.b[this.i++];
    if (first === 0x30) {
      if (this.isDigit(this.peek())) throw this.peekError('invalid number');
    } else if (first >= 0x31 && first <= 0x39) {
      while (this.isDigit(this.peek())) this.i++;
    } else {
      throw this.error('invalid number');
    }
    let float = false;
    if (this.peek() === 0x2e) {
      float = true;
      this.i++;
      const digits = this.i;
      while (this.isDigit(this.peek())) this.i++;
      if (this.i === digits) {
        if (this.peek() === undefined) throw this.peekError('EOF while parsing a value');
        throw this.peekError('invalid number');
      }
    }
    const e = this.peek();
    if (e === 0x65 || e === 0x45) {
      float = true;
      this.i++;
      const sign = this.peek();
      if (sign === 0x2b || sign === 0x2d) this.i++;
      if (this.i >= this.b.length) throw this.error('EOF while parsing a value');
      if (!this.isDigit(this.b[this.i++])) throw this.error('invalid number');
      while (this.isDigit(this.peek())) this.i++;
    }
    const text = String.fromCharCode(...this.b.subarray(start, this.i));
    if (!float) {
      const n = BigInt(text);
      if (n <= U64_MAX) {
        if (positive) return { kind: 'u64', value: n };
        if (n === 0n) return { kind: 'f64', value: -0 };
        if (n <= 1n << 63n) return { kind: 'i64', value: -n };
        return { kind: 'f64', value: -Number(n) };
      }
    }
    const f = Number(text);
    if (!Number.isFinite(f)) throw this.error('number out of range');
    return { kind: 'f64', value: positive ? f : -f };
  }

  /** A string after its opening quote. UTF-8 is checked once the string
   * is read, and a bad byte is located as serde_json locates it. */
  string() {
    const parts = [];
    let start = this.i;
    for (;;) {
      while (this.i < this.b.length) {
        const c = this.b[this.i];
        if (c === 0x22 || c === 0x5c || c < 0x20) break;
        this.i++;
      }
      if (this.i >= this.b.length) throw this.error('EOF while parsing a string');
      const c = this.b[this.i];
      parts.push(this.b.subarray(start, this.i));
      this.i++;
      if (c === 0x22) break;
      if (c !== 0x5c) throw this.error('control character (\\u0000-\\u001F) found while parsing a string');
      parts.push(encoder.encode(this.escape()));
      start = this.i;
    }
    const bytes = parts.length === 1 ? parts[0] : concat(parts);
    try {
      return decoder.decode(bytes);
    } catch {
      const [line, column] = this.lineColumn(this.i);
      const at = Math.max(0, column - (bytes.length - validUpTo(bytes)));
      throw new JsonError(`invalid unicode code point at line ${line} column ${at}`);
    }
  }

  hex4() {
    if (this.i + 4 > this.b.length) {
      this.i = this.b.length;
      throw this.error('EOF while parsing a string');
    }
    let n = 0;
    let ok = true;
    for (let k = 0; k < 4; k++) {
      const c = this.b[this.i++];
      const v = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1;
      if (v < 0) ok = false;
      n = n * 16 + v;
    }
    if (!ok) throw this.error('invalid escape');
    return n;
  }

  escape() {
    if (this.i >= this.b.length) throw this.error('EOF while parsing a string');
    const c = this.b[this.i++];
    switch (c) {
      case 0x22:
        return '"';
      case 0x5c:
        return '\\';
      case 0x2f:
        return '/';
      case 0x62:
        return '\b';
      case 0x66:
        return '\f';
      case 0x6e:
        return '\n';
      case 0x72:
        return '\r';
      case 0x74:
        return '\t';
      case 0x75: {
        const n = this.hex4();
        if (n >= 0xdc00 && n <= 0xdfff) throw this.error('lone leading surrogate in hex escape');
        if (n < 0xd800 || n > 0xdbff) return String.fromCharCode(n);
        if (this.peek() !== 0x5c) {
          this.i++;
          throw this.error('unexpected end of hex escape');
        }
        this.i++;
        if (this.peek() !== 0x75) {
          this.i++;
          throw this.error('unexpected end of hex escape');
        }
        this.i++;
        const n2 = this.hex4();
        if (n2 < 0xdc00 || n2 > 0xdfff) throw this.error('lone leading surrogate in hex escape');
        return String.fromCharCode(n, n2);
      }
      default:
        throw this.error('invalid escape');
    }
  }

  enter() {
    this.depth += 1;
    if (this.depth >= RECURSION_LIMIT) throw this.peekError('recursion limit exceeded');
  }

  value() {
    const c = this.whitespace();
    if (c === undefined) throw this.peekError('EOF while parsing a value');
    switch (c) {
      case 0x6e:
        this.i++;
        this.ident('ull');
        return null;
      case 0x74:
        this.i++;
        this.ident('rue');
        return true;
      case 0x66:
        this.i++;
        this.ident('alse');
        return false;
      case 0x2d:
        this.i++;
        return this.number(false);
      case 0x22:
        this.i++;
        return this.string();
      case 0x5b: {
        this.enter();
        this.i++;
        const items = [];
        let first = true;
        for (;;) {
          const p = this.whitespace();
          if (p === undefined) throw this.peekError('EOF while parsing a list');
          if (p === 0x5d) break;
          if (!first) {
            if (p !== 0x2c) throw this.peekError('expected `,` or `]`');
            this.i++;
            const q = this.whitespace();
            if (q === 0x5d) throw this.peekError('trailing comma');
            if (q === undefined) throw this.peekError('EOF while parsing a value');
          }
          first = false;
          items.push(this.value());
        }
        this.i++;
        this.depth -= 1;
        return items;
      }
      case 0x7b: {
        this.enter();
        this.i++;
        const map = this.members();
        this.endMap();
        this.depth -= 1;
        return map;
      }
      default:
        if (this.isDigit(c)) return this.number(true);
        throw this.peekError('expected value');
    }
  }

  /** The members of an object whose `{` was eaten. */
  members() {
    const map = new Map();
    let first = true;
    for (;;) {
      const p = this.whitespace();
      if (p === undefined) throw this.peekError('EOF while parsing an object');
      if (p === 0x7d) break;
      if (first) {
        if (p !== 0x22) throw this.peekError('key must be a string');
      } else if (p === 0x2c) {
        this.i++;
        const q = this.whitespace();
        if (q === 0x7d) throw this.peekError('trailing comma');
        if (q === undefined) throw this.peekError('EOF while parsing a value');
        if (q !== 0x22) throw this.peekError('key must be a string');
      } else {
        throw this.peekError('expected `,` or `}`');
      }
      first = false;
      this.i++;
      const key = this.string();
      const colon = this.whitespace();
      if (colon === undefined) throw this.peekError('EOF while parsing an object');
      if (colon !== 0x3a) throw this.peekError('expected `:`');
      this.i++;
      map.set(key, this.value());
    }
    return map;
  }

  endMap() {
    const c = this.whitespace();
    if (c === 0x7d) {
      this.i++;
      return;
    }
    if (c === 0x2c) throw this.peekError('trailing comma');
    if (c === undefined) throw this.peekError('EOF while parsing an object');
    throw this.peekError('trailing characters');
  }
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function rustDebugString(s) {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c === 0) out += '\\0';
    else if (c < 0x20 || c === 0x7f) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return `${out}"`;
}

/** How serde describes an unexpected value ("integer `12`"). */
function unexpected(v) {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return `boolean \`${v}\``;
  if (typeof v === 'string') return `string ${rustDebugString(v)}`;
  if (Array.isArray(v)) return 'sequence';
  if (v instanceof Map) return 'map';
  if (v.kind === 'f64') return `floating point \`${zmijFormat(v.value)}\``;
  return `integer \`${v.value}\``;
}

/** The object in `bytes` as a Map, or a JsonError with serde_json's
 * message. */
export function parseObject(bytes) {
  const p = new Parser(bytes);
  const c = p.whitespace();
  if (c === undefined) throw p.peekError('EOF while parsing a value');
  let map;
  if (c === 0x7b) {
    p.enter();
    p.i++;
    map = p.members();
    p.endMap();
    p.depth -= 1;
  } else {
    // serde_json reads a scalar to describe it, but not a list.
    const v = c === 0x5b ? [] : p.value();
    throw p.error(`invalid type: ${unexpected(v)}, expected a map`);
  }
  if (p.whitespace() !== undefined) throw p.peekError('trailing characters');
  return map;
}

const HEX = '0123456789abcdef';

/** `s` as serde_json writes a string. */
export function jsonString(s) {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c >= 0x20) out += s[i];
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else out += `\\u00${HEX[c >> 4]}${HEX[c & 0xf]}`;
  }
  return `${out}"`;
}

function compareUtf8(a, b) {
  // Code point order, which is UTF-8 byte order.
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** `v` as serde_json's `Value::to_string` writes it. */
export function toJson(v) {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return jsonString(v);
  if (Array.isArray(v)) return `[${v.map(toJson).join(',')}]`;
  if (v instanceof Map) {
    const keys = [...v.keys()].sort(compareUtf8);
    return `{${keys.map((k) => `${jsonString(k)}:${toJson(v.get(k))}`).join(',')}}`;
  }
  if (v.kind === 'f64') return zmijFormat(v.value);
  return String(v.value);
}
