"""count in Python: the port of processors/count (Rust), with the same
configuration keys, state encoding, output bytes and rejection reasons.

A running count and sum per record key, kept in state. For each record it
adds the record's number to its key's totals and emits the new totals to
output ``default`` as ``{"key":"K","count":N,"sum":S}``, keeping the
record's key, headers and timestamp.

Configuration:

- ``field``: read the number from this field of a JSON object value; without
  it the whole value is the number
- ``cache_entries``: most keys kept in the instance's state cache between
  batches (default 100,000)

State: one entry per record key, 16 bytes: the count as a little-endian u64,
then the sum as a little-endian f64.
"""

import math
import re
import struct

import partita
from partita import Reject, state, trim

from floats import rust_display
from serde_json import JsonError, Number, parse_object, to_json

#: Bytes of one key's state: count then sum.
STATE_LEN = 16
_TOTALS = struct.Struct("<Qd")
_FLOAT = re.compile(r"^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_TWO_53 = float(1 << 53)


_KEY_ESCAPES = re.compile(r'["\\\x00-\x1f]')
_KEY_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _key_escape(m):
    c = m.group()
    return _KEY_SHORT.get(c) or "\\u%04x" % ord(c)


def key_json(s):
    """``s`` as a JSON string literal, escaped as the Rust processor escapes
    keys: ``\\"``, ``\\\\``, ``\\n``, ``\\r``, ``\\t``, other control
    characters as ``\\u00XX``."""
    return '"' + _KEY_ESCAPES.sub(_key_escape, s) + '"'


def number(text):
    """Decimal text as a finite number, or ``None`` (the Rust grammar: sign,
    digits with an optional point, optional exponent, ASCII spaces
    around)."""
    t = text.strip(" \t\n\x0c\r")
    negative = t.startswith("-")
    body = t[1:] if t[:1] in ("-", "+") else t
    if not _FLOAT.match(body):
        return None
    n = float(body)
    if math.isinf(n):
        return None
    return -n if negative else n


def _shown(text):
    return trim(text)[:40]


def _whole_value_number(value):
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Reject(f"value is not a number: not UTF-8 at offset {e.start}") from None
    n = number(text)
    if n is None:
        raise Reject(f"value is not a number: `{_shown(text)}`")
    return n


def _field_number(value, field):
    try:
        obj = parse_object(value)
    except JsonError as e:
        raise Reject(f"value is not a JSON object: {e}") from None
    if field not in obj:
        raise Reject(f"value has no field `{field}`")
    v = obj[field]
    if isinstance(v, Number):
        return v.as_f64()
    if isinstance(v, str):
        n = number(v)
        if n is not None:
            return n
    raise Reject(f"field `{field}` is not a number: `{_shown(to_json(v))}`")


class Count(partita.Processor):
    """Running count and sum per key."""

    def __init__(self, config):
        config.check_keys(["field", "cache_entries"])
        max_entries = config.int("cache_entries", None, min=0, max=(1 << 32) - 1)  # usize on wasm32
        if max_entries is not None:
            state.set_cache_limits(max_entries=max_entries)
        field = trim(config.get("field", ""))
        self.field = field or None

    def process(self, record, out):
        key = record.key
        if key is None:
            raise Reject("record has no key")
        key_text = record.key_str()
        value = record.value
        if value is None:
            raise Reject("record has no value")
        if self.field is None:
            amount = _whole_value_number(value)
        else:
            amount = _field_number(value, self.field)

        slot = state.get(key)
        count, total = 0, 0.0
        if slot is not None:
            if len(slot) != STATE_LEN:
                raise Reject(f"state for key `{key_text}` is {len(slot)} bytes, expected {STATE_LEN}")
            count, total = _TOTALS.unpack(slot)
        count += 1
        total += amount
        if math.isinf(total) or math.isnan(total):
            raise Reject(f"the sum of key `{key_text}` would overflow")
        state.put(key, _TOTALS.pack(count, total))

        if total == int(total) and abs(total) < _TWO_53:
            sum_text = str(int(total))
        else:
            sum_text = rust_display(total)
        out.value('{"key":%s,"count":%d,"sum":%s}' % (key_json(key_text), count, sum_text))


Processor = partita.export(Count)
