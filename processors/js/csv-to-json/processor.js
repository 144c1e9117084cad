// csv-to-json in JavaScript: the port of processors/csv-to-json (Rust), with
// the same configuration keys, output bytes and rejection reasons.
//
// Parses a legacy CSV line (the record's value) into a JSON object, one
// member per configured column, in column order. The key, headers and
// timestamp are kept.
//
// Configuration:
//   columns      required; column names, comma-separated: `id,name,amount`
//   delimiter    one character between fields; default `,`; `tab` or `\t`
//   numeric      columns emitted as JSON numbers, comma-separated
//   skip_header  `true`: a line whose fields are exactly the column names is
//                dropped (accepted, no output); default `false`
//
// Parsing and rejections: see processors/csv-to-json/src/lib.rs.

import { ConfigError, Reject, trim } from '../../../guest-sdk/js/partita.js';

function delimiterOf(config) {
  const raw = config.get('delimiter');
  if (raw === undefined) return ',';
  if (raw === 'tab' || raw === '\\t') return '\t';
  const chars = Array.from(raw);
  if (chars.length === 1) {
    const c = chars[0];
    if (c === '"' || c === '\r' || c === '\n') throw new ConfigError('delimiter', `\`${raw}\` cannot be a delimiter`);
    return c;
  }
  throw new ConfigError('delimiter', `must be one character (or \`tab\`), found \`${raw}\``);
}

const ESCAPES = /["\\\u0000-\u001f]/;
const HEX = '0123456789abcdef';

/** `s` as a JSON string literal, escaped as the Rust processor does. */
export function jsonString(s) {
  if (!ESCAPES.test(s)) return `"${s}"`;
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let esc;
    if (c === 0x22) esc = '\\"';
    else if (c === 0x5c) esc = '\\\\';
    else if (c === 0x0a) esc = '\\n';
    else if (c === 0x0d) esc = '\\r';
    else if (c === 0x09) esc = '\\t';
    else if (c < 0x20) esc = `\\u00${HEX[c >> 4]}${HEX[c & 0xf]}`;
    else continue;
    out += s.slice(start, i) + esc;
    start = i + 1;
  }
  return `${out}${s.slice(start)}"`;
}

const DIGITS = /^[0-9]*$/;

/** The legacy number `text` as a JSON number (`null` if blank), or
 * undefined if it is not a number. */
export function jsonNumber(text) {
  let t = trim(text);
  if (t === '') return 'null';
  let negative = false;
  if (t[0] === '-') {
    negative = true;
    t = t.slice(1);
  } else if (t[0] === '+') {
    t = t.slice(1);
  }
  let mantissa = t;
  let exponent;
  const e = t.search(/[eE]/);
  if (e >= 0) {
    mantissa = t.slice(0, e);
    exponent = t.slice(e + 1);
  }
  const d = mantissa.indexOf('.');
  const int = d >= 0 ? mantissa.slice(0, d) : mantissa;
  const frac = d >= 0 ? mantissa.slice(d + 1) : '';
  if ((int === '' && frac === '') || !DIGITS.test(int) || !DIGITS.test(frac)) return undefined;
  if (exponent !== undefined) {
    const body = exponent[0] === '+' || exponent[0] === '-' ? exponent.slice(1) : exponent;
    if (body === '' || !DIGITS.test(body)) return undefined;
  }
  let out = negative ? '-' : '';
  let i = 0;
  while (i < int.length && int[i] === '0') i++;
  out += i === int.length ? '0' : int.slice(i);
  if (frac !== '') out += `.${frac}`;
  if (exponent !== undefined) out += `e${exponent}`;
  return out;
}

/** Splits one line into fields (quoting rules as in the Rust processor). */
export function split(line, delimiter) {
  const fields = [];
  let rest = line;
  for (;;) {
    const index = fields.length + 1;
    if (rest[0] !== '"') {
      const end = rest.indexOf(delimiter);
      if (end < 0) {
        fields.push(rest);
        return fields;
      }
      fields.push(rest.slice(0, end));
      rest = rest.slice(end + delimiter.length);
      continue;
    }
    // A quoted field: find its closing quote, unescaping `""`.
    const quoted = rest.slice(1);
    let value = '';
    let from = 0;
    let after;
    for (;;) {
      const q = quoted.indexOf('"', from);
      if (q < 0) throw new Reject(`unterminated quote in field ${index}`);
      if (quoted[q + 1] === '"') {
        value += quoted.slice(from, q + 1);
        from = q + 2;
        continue;
      }
      value += quoted.slice(from, q);
      after = quoted.slice(q + 1);
      break;
    }
    fields.push(value);
    if (after === '') return fields;
    if (!after.startsWith(delimiter)) throw new Reject(`unexpected character after the closing quote of field ${index}`);
    rest = after.slice(delimiter.length);
  }
}

/** Parses CSV lines into JSON objects. */
export default class CsvToJson {
  constructor(config) {
    config.checkKeys(['columns', 'delimiter', 'numeric', 'skip_header']);
    config.require('columns');
    const names = config.list('columns') ?? [];
    if (names.length === 0) throw new ConfigError('columns', 'lists no column');
    const numeric = config.list('numeric') ?? [];
    this.columns = [];
    for (const name of names) {
      if (this.columns.some((c) => c.name === name)) throw new ConfigError('columns', `column \`${name}\` is listed twice`);
      this.columns.push({ name, prefix: `${jsonString(name)}:`, numeric: numeric.includes(name) });
    }
    const unknown = numeric.find((n) => !this.columns.some((c) => c.name === n));
    if (unknown !== undefined) throw new ConfigError('numeric', `\`${unknown}\` is not one of the columns`);
    this.delimiter = delimiterOf(config);
    this.skipHeader = config.bool('skip_header', false);
  }

  process(record, out) {
    let line = record.valueString();
    if (line.endsWith('\n')) line = line.slice(0, line.endsWith('\r\n') ? -2 : -1);
    const fields = split(line, this.delimiter);
    const columns = this.columns;
    if (fields.length !== columns.length) {
      const plural = columns.length === 1 ? '' : 's';
      throw new Reject(`expected ${columns.length} field${plural}, found ${fields.length}`);
    }
    if (this.skipHeader && fields.every((f, i) => f === columns[i].name)) return;
    let json = '{';
    for (let i = 0; i < fields.length; i++) {
      const column = columns[i];
      if (i > 0) json += ',';
      json += column.prefix;
      if (column.numeric) {
        const n = jsonNumber(fields[i]);
        if (n === undefined) {
          const shown = Array.from(fields[i]).slice(0, 40).join('');
          throw new Reject(`column \`${column.name}\` is not a number: \`${shown}\``);
        }
        json += n;
      } else {
        json += jsonString(fields[i]);
      }
    }
    out.value(json + '}');
  }
}
