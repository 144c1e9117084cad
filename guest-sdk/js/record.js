// The input record a processor sees: fields read from the batch buffer the
// host sent, key and value as views into it (no copy).

/** Why a record was rejected; the reason travels to the dead-letter topic. */
export class Reject extends Error {
  /** @param {string} reason */
  constructor(reason) {
    super(String(reason));
    this.name = 'Reject';
  }

  /** The reason. */
  get reason() {
    return this.message;
  }
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * Length of the longest prefix of `bytes` that is valid UTF-8: the offset of
 * the first invalid byte, as Rust's `Utf8Error::valid_up_to` reports it.
 */
export function validUpTo(bytes) {
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i];
    let len;
    let lo = 0x80;
    let hi = 0xbf;
    if (b < 0x80) {
      i += 1;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      len = 3;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      len = 4;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    if (i + len > n) return i;
    const b1 = bytes[i + 1];
    if (b1 < lo || b1 > hi) return i;
    for (let k = 2; k < len; k++) {
      const c = bytes[i + k];
      if (c < 0x80 || c > 0xbf) return i;
    }
    i += len;
  }
  return n;
}

/** `bytes` as text, or a Reject saying what is not UTF-8 and where. */
export function textOf(bytes, what) {
  if (bytes === null) throw new Reject(`record has no ${what}`);
  try {
    return utf8Strict.decode(bytes);
  } catch {
    throw new Reject(`${what} is not UTF-8: invalid byte at offset ${validUpTo(bytes)}`);
  }
}

/**
 * One input record.
 *
 * - `key`, `value`: `Uint8Array` views into the batch, or `null` (a value of
 *   `null` is a tombstone). Copy them (`.slice()`) to keep them past the
 *   call.
 * - `headers`: `[name, value]` pairs in order (name a string, value a
 *   `Uint8Array`).
 * - `timestamp` (ms since the Unix epoch), `topic`, `partition`, `offset`.
 */
export class Record {
  constructor(topic, partition, offset, timestamp, key, value, headers) {
    this.topic = topic;
    this.partition = partition;
    this.offset = offset;
    this.timestamp = timestamp;
    this.key = key;
    this.value = value;
    this.headers = headers;
  }

  /** The key as text; a Reject if there is none or it is not UTF-8. */
  keyString() {
    return textOf(this.key, 'key');
  }

  /** The value as text; a Reject if there is none or it is not UTF-8. */
  valueString() {
    return textOf(this.value, 'value');
  }

  /** The value of the first header named `name`, or null. */
  header(name) {
    for (const [k, v] of this.headers) if (k === name) return v;
    return null;
  }
}
