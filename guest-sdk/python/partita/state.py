"""Keyed state of this stage and partition, owned by the host, with a cache
in the instance (the same rules as the Rust SDK's ``partita_sdk::state``).

- reads are served from the cache; a miss asks the host once and remembers
  the answer, including "no value";
- writes go to the cache and are sent to the host in ONE ``write-batch`` call
  when the ``process`` or ``on-timer`` call returns (several writes to one key
  in a call send only the last);
- :func:`scan` sends the pending writes first, then asks the host (scans are
  not cached).

This is coherent because the host lets only this instance write this
partition's state while it runs, and after any failure or swap it starts a
fresh instance (with an empty cache). If a call traps, its writes never reach
the host.

The cache is bounded (:func:`set_cache_limits`): when a call ends with more
entries or bytes than allowed, clean entries are evicted down to three
quarters of the limit, entries not used in the last call first.

Keys and values are ``bytes``; a ``str`` is stored as its UTF-8 bytes.
"""

import struct

from .host import host
from .wire import encode_writes

#: Estimated bookkeeping bytes per cached entry, on top of key and value.
ENTRY_OVERHEAD = 64
#: Default bound on the number of cached entries.
DEFAULT_MAX_ENTRIES = 100_000
#: Default bound on the cached bytes (keys, values and overhead).
DEFAULT_MAX_BYTES = 16 << 20


def _bytes(v, what):
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"{what} must be bytes or str, not {type(v).__name__}")


def _size(key, value):
    return len(key) + (0 if value is None else len(value)) + ENTRY_OVERHEAD


class _Slot:
    __slots__ = ("value", "dirty", "used")

    def __init__(self, value, dirty, used):
        self.value = value
        self.dirty = dirty
        self.used = used


class _Cache:
    def __init__(self):
        self.map = {}
        self.dirty = []
        self.bytes = 0
        self.max_entries = DEFAULT_MAX_ENTRIES
        self.max_bytes = DEFAULT_MAX_BYTES
        self.call = 0

    def slot(self, key):
        slot = self.map.get(key)
        if slot is None:
            value = host().state_get(key)
            slot = _Slot(value, False, self.call)
            self.map[key] = slot
            self.bytes += _size(key, value)
        slot.used = self.call
        return slot

    def set(self, key, value):
        slot = self.map.get(key)
        if slot is None:
            slot = _Slot(None, False, self.call)
            self.map[key] = slot
            self.bytes += _size(key, None)
        self.bytes += _size(key, value) - _size(key, slot.value)
        slot.value = value
        slot.used = self.call
        if not slot.dirty:
            slot.dirty = True
            self.dirty.append(key)

    def write_back(self):
        if not self.dirty:
            return
        writes = []
        for key in self.dirty:
            slot = self.map[key]
            slot.dirty = False
            writes.append((key, slot.value))
        self.dirty = []
        try:
            host().state_write_batch(encode_writes(writes))
        except Exception as e:
            raise RuntimeError(f"the host refused this call's state writes: {e}") from None

    def end_call(self):
        self.write_back()
        self.evict()
        self.call += 1

    def evict(self):
        if len(self.map) <= self.max_entries and self.bytes <= self.max_bytes:
            return
        max_entries = self.max_entries - self.max_entries // 4
        max_bytes = self.max_bytes - self.max_bytes // 4
        for keep_recent in (True, False):
            for key in list(self.map):
                if len(self.map) <= max_entries and self.bytes <= max_bytes:
                    return
                slot = self.map[key]
                if slot.dirty or (keep_recent and slot.used == self.call):
                    continue
                del self.map[key]
                self.bytes -= _size(key, slot.value)


_cache = _Cache()


def end_call():
    """Ends a ``process`` or ``on-timer`` call: one ``write-batch`` with its
    writes."""
    _cache.end_call()


def reset():
    """Forgets the cache, as a fresh instance would have it (tests)."""
    global _cache
    _cache = _Cache()


def get(key):
    """The value under ``key`` (``bytes``), or ``None``."""
    return _cache.slot(_bytes(key, "a state key")).value


def put(key, value):
    """Stores ``value`` (bytes or str) under ``key``."""
    _cache.set(_bytes(key, "a state key"), _bytes(value, "a state value"))


def delete(key):
    """Removes ``key``."""
    _cache.set(_bytes(key, "a state key"), None)


def update(key, f):
    """Reads and changes the value under ``key``: ``f`` gets the current
    value (or ``None``) and returns the new one, or ``None`` to delete the
    key. The key counts as written. Returns the new value."""
    k = _bytes(key, "a state key")
    new = f(_cache.slot(k).value)
    _cache.set(k, None if new is None else _bytes(new, "a state value"))
    return new


def scan(start, end=None, limit=1000):
    """Up to ``limit`` entries ``(key, value)`` with ``start <= key < end``
    (no upper bound when ``end`` is ``None``), in ascending byte order of
    key, as stored by the host after this call's pending writes."""
    _cache.write_back()
    e = None if end is None else _bytes(end, "a scan end")
    return host().state_scan(_bytes(start, "a scan start"), e, limit)


def set_cache_limits(max_entries=DEFAULT_MAX_ENTRIES, max_bytes=DEFAULT_MAX_BYTES):
    """Sets the cache's bounds; they apply from the end of the current
    call."""
    _cache.max_entries = max_entries
    _cache.max_bytes = max_bytes


def cache_stats():
    """The cache's size: ``{"entries", "bytes", "pending"}``."""
    return {"entries": len(_cache.map), "bytes": _cache.bytes, "pending": len(_cache.dirty)}


class StateError(Exception):
    """A stored value that cannot be read as the requested type."""

    def __init__(self, key, type_name, problem):
        shown = key.decode("utf-8", "replace")
        super().__init__(f"state under key `{shown}` is not a valid {type_name}: {problem}")


def _fixed(key, type_name, fmt):
    k = _bytes(key, "a state key")
    v = _cache.slot(k).value
    if v is None:
        return None
    width = struct.calcsize(fmt)
    if len(v) != width:
        raise StateError(k, type_name, f"expected {width} bytes, found {len(v)}")
    return struct.unpack(fmt, v)[0]


def get_u64(key):
    """The value under ``key`` as a u64 (8 little-endian bytes), or None."""
    return _fixed(key, "u64", "<Q")


def put_u64(key, value):
    """Stores a u64 as 8 little-endian bytes."""
    put(key, struct.pack("<Q", value))


def get_i64(key):
    """The value under ``key`` as an i64 (8 little-endian bytes), or None."""
    return _fixed(key, "i64", "<q")


def put_i64(key, value):
    """Stores an i64 as 8 little-endian bytes."""
    put(key, struct.pack("<q", value))


def get_f64(key):
    """The value under ``key`` as an f64 (8 little-endian bytes), or None."""
    return _fixed(key, "f64", "<d")


def put_f64(key, value):
    """Stores an f64 as 8 little-endian bytes."""
    put(key, struct.pack("<d", value))


def get_str(key):
    """The value under ``key`` as UTF-8 text, or None."""
    k = _bytes(key, "a state key")
    v = _cache.slot(k).value
    if v is None:
        return None
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError as e:
        raise StateError(k, "String", f"invalid UTF-8 at offset {e.start}") from None


def put_str(key, value):
    """Stores text as UTF-8."""
    put(key, str(value))
