// Keyed state of this stage and partition, owned by the host, with a cache
// in the instance (the same rules as the Rust SDK's `partita_sdk::state`).
//
// - reads are served from the cache; a miss asks the host once and
//   remembers the answer, including "no value";
// - writes go to the cache and are sent to the host in ONE `write-batch`
//   call when the `process` or `on-timer` call returns (several writes to
//   one key in a call send only the last);
// - `scan` sends the pending writes first, then asks the host (scans are not
//   cached).
//
// This is coherent because the host lets only this instance write this
// partition's state while it runs, and after any failure or swap it starts a
// fresh instance (with an empty cache). If a call traps, its writes never
// reach the host.
//
// The cache is bounded (`setCacheLimits`): when a call ends with more
// entries or bytes than allowed, clean entries are evicted down to three
// quarters of the limit, entries not used in the last call first.
//
// Keys and values are `Uint8Array`s; a key or value given as a string is
// stored as its UTF-8 bytes.

import { host } from './host.js';
import { asBytes, encodeWrites } from './wire.js';
import { validUpTo } from './record.js';

/** Estimated bookkeeping bytes per cached entry, on top of key and value. */
const ENTRY_OVERHEAD = 64;

/** Default bounds of the cache: 100,000 entries and 16 MiB. */
export const DEFAULT_CACHE_LIMITS = Object.freeze({ maxEntries: 100_000, maxBytes: 16 << 20 });

const ASCII = /^[\x00-\x7f]*$/;

/** The map key of `bytes`: one char per byte (injective). */
function mapKey(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096));
  }
  return s;
}

/** `[mapKey, bytes]` of a key given as a string or bytes. */
function keyOf(key) {
  if (typeof key === 'string' && ASCII.test(key)) return [key, null];
  const bytes = asBytes(key, 'a state key');
  return [mapKey(bytes), bytes];
}

function bytesOfMapKey(k) {
  const b = new Uint8Array(k.length);
  for (let i = 0; i < k.length; i++) b[i] = k.charCodeAt(i);
  return b;
}

function size(k, value) {
  return k.length + (value === null ? 0 : value.length) + ENTRY_OVERHEAD;
}

class Cache {
  constructor() {
    /** mapKey -> { value: Uint8Array | null, dirty, used } */
    this.map = new Map();
    /** mapKeys written in this call, each once, in first-write order. */
    this.dirty = [];
    this.bytes = 0;
    this.limits = { ...DEFAULT_CACHE_LIMITS };
    this.call = 0;
  }

  slot(key) {
    const [k, bytes] = keyOf(key);
    let slot = this.map.get(k);
    if (slot === undefined) {
      const found = host().state.get(bytes ?? bytesOfMapKey(k));
      const value = found === undefined || found === null ? null : found;
      slot = { value, dirty: false, used: this.call };
      this.map.set(k, slot);
      this.bytes += size(k, value);
    }
    slot.used = this.call;
    return [k, slot];
  }

  get(key) {
    return this.slot(key)[1].value;
  }

  set(key, value) {
    const [k] = keyOf(key);
    const v = value === null ? null : asBytes(value, 'a state value').slice();
    let slot = this.map.get(k);
    if (slot === undefined) {
      slot = { value: null, dirty: false, used: this.call };
      this.map.set(k, slot);
      this.bytes += size(k, null);
    }
    this.bytes += size(k, v) - size(k, slot.value);
    slot.value = v;
    slot.used = this.call;
    if (!slot.dirty) {
      slot.dirty = true;
      this.dirty.push(k);
    }
  }

  writeBack() {
    if (this.dirty.length === 0) return;
    const writes = [];
    for (const k of this.dirty) {
      const slot = this.map.get(k);
      slot.dirty = false;
      writes.push([bytesOfMapKey(k), slot.value]);
    }
    this.dirty = [];
    try {
      host().state.writeBatch(encodeWrites(writes));
    } catch (e) {
      throw new Error(`the host refused this call's state writes: ${e && e.message ? e.message : e}`);
    }
  }

  endCall() {
    this.writeBack();
    this.evict();
    this.call += 1;
  }

  over(entries, bytes, limits) {
    return entries > limits.maxEntries || bytes > limits.maxBytes;
  }

  evict() {
    if (!this.over(this.map.size, this.bytes, this.limits)) return;
    const target = {
      maxEntries: this.limits.maxEntries - Math.floor(this.limits.maxEntries / 4),
      maxBytes: this.limits.maxBytes - Math.floor(this.limits.maxBytes / 4),
    };
    for (const keepRecent of [true, false]) {
      for (const [k, slot] of this.map) {
        if (!this.over(this.map.size, this.bytes, target)) return;
        if (slot.dirty || (keepRecent && slot.used === this.call)) continue;
        this.map.delete(k);
        this.bytes -= size(k, slot.value);
      }
    }
  }
}

let cache = new Cache();

/** Ends a `process` or `on-timer` call: one `write-batch` with its writes. */
export function endCall() {
  cache.endCall();
}

/** Forgets the cache, as a fresh instance would have it (tests). */
export function reset() {
  cache = new Cache();
}

/** The value under `key` (a `Uint8Array`, not to be modified), or null. */
export function get(key) {
  return cache.get(key);
}

/** Stores `value` (bytes or a string) under `key`. */
export function put(key, value) {
  cache.set(key, value);
}

/** Removes `key`. */
function remove(key) {
  cache.set(key, null);
}
export { remove as delete };

/**
 * Reads and changes the value under `key`: `f` gets the current value (or
 * null) and returns the new one (bytes or a string), or null to delete the
 * key. The key counts as written.
 */
export function update(key, f) {
  const next = f(cache.get(key));
  if (next === undefined) throw new TypeError('state.update: the function must return the new value, or null to delete');
  cache.set(key, next);
  return next;
}

/**
 * Up to `limit` entries `[key, value]` with `start <= key < end` (no upper
 * bound when `end` is null), in ascending byte order of key, as stored by
 * the host after this call's pending writes.
 */
export function scan(start, end = null, limit = 1000) {
  cache.writeBack();
  const s = asBytes(start, 'a scan start');
  const e = end === null ? undefined : asBytes(end, 'a scan end');
  return host().state.scan(s, e, limit);
}

/** Sets the cache's bounds `{ maxEntries, maxBytes }`; they apply from the
 * end of the current call. */
export function setCacheLimits(limits) {
  cache.limits = { ...DEFAULT_CACHE_LIMITS, ...limits };
}

/** The cache's size: `{ entries, bytes, pending }`. */
export function cacheStats() {
  return { entries: cache.map.size, bytes: cache.bytes, pending: cache.dirty.length };
}

/** A stored value that cannot be read as the requested type. */
export class StateError extends Error {
  constructor(key, type, problem) {
    const shown = typeof key === 'string' ? key : new TextDecoder().decode(key);
    super(`state under key \`${shown}\` is not a valid ${type}: ${problem}`);
    this.name = 'StateError';
  }
}

function fixed(key, type, width, read) {
  const v = cache.get(key);
  if (v === null) return null;
  if (v.length !== width) throw new StateError(key, type, `expected ${width} bytes, found ${v.length}`);
  return read(new DataView(v.buffer, v.byteOffset, v.byteLength));
}

function store(key, width, write) {
  const b = new Uint8Array(width);
  write(new DataView(b.buffer));
  cache.set(key, b);
}

/** The value under `key` as a u64 (8 little-endian bytes), a BigInt, or null. */
export function getU64(key) {
  return fixed(key, 'u64', 8, (d) => d.getBigUint64(0, true));
}

/** Stores a u64 (a BigInt, or a Number that is a safe integer) as 8 little-endian bytes. */
export function putU64(key, value) {
  store(key, 8, (d) => d.setBigUint64(0, BigInt(value), true));
}

/** The value under `key` as an i64 (8 little-endian bytes), a BigInt, or null. */
export function getI64(key) {
  return fixed(key, 'i64', 8, (d) => d.getBigInt64(0, true));
}

/** Stores an i64 as 8 little-endian bytes. */
export function putI64(key, value) {
  store(key, 8, (d) => d.setBigInt64(0, BigInt(value), true));
}

/** The value under `key` as an f64 (8 little-endian bytes), or null. */
export function getF64(key) {
  return fixed(key, 'f64', 8, (d) => d.getFloat64(0, true));
}

/** Stores an f64 as 8 little-endian bytes. */
export function putF64(key, value) {
  store(key, 8, (d) => d.setFloat64(0, value, true));
}

/** The value under `key` as UTF-8 text, or null. */
export function getString(key) {
  const v = cache.get(key);
  if (v === null) return null;
  const at = validUpTo(v);
  if (at !== v.length) throw new StateError(key, 'String', `invalid UTF-8 at offset ${at}`);
  return new TextDecoder().decode(v);
}

/** Stores text as UTF-8. */
export function putString(key, value) {
  cache.set(key, String(value));
}
