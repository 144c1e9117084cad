"""csv-to-json in Python: the port of processors/csv-to-json (Rust), with the
same configuration keys, output bytes and rejection reasons.

Parses a legacy CSV line (the record's value) into a JSON object, one member
per configured column, in column order. The key, headers and timestamp are
kept.

Configuration:

- ``columns``: required; column names, comma-separated: ``id,name,amount``
- ``delimiter``: one character between fields; default ``,``; ``tab`` or
  ``\\t`` for a tab
- ``numeric``: columns emitted as JSON numbers, comma-separated
- ``skip_header``: ``true``: a line whose fields are exactly the column names
  is dropped (accepted, no output); default ``false``

Parsing and rejections: see processors/csv-to-json/src/lib.rs.
"""

import re

import partita
from partita import ConfigError, Reject, trim

_ESCAPES = re.compile(r'["\\\x00-\x1f]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_DIGITS = re.compile(r"^[0-9]*$")


def _escape(m):
    c = m.group()
    return _SHORT.get(c) or "\\u%04x" % ord(c)


def json_string(s):
    """``s`` as a JSON string literal, escaped as the Rust processor does."""
    return '"' + _ESCAPES.sub(_escape, s) + '"'


def json_number(text):
    """The legacy number ``text`` as a JSON number (``null`` if blank), or
    ``None`` if it is not a number."""
    t = trim(text)
    if t == "":
        return "null"
    negative = False
    if t[0] == "-":
        negative = True
        t = t[1:]
    elif t[0] == "+":
        t = t[1:]
    exponent = None
    e = re.search(r"[eE]", t)
    mantissa = t
    if e:
        mantissa = t[: e.start()]
        exponent = t[e.start() + 1 :]
    int_part, dot, frac = mantissa.partition(".")
    if (int_part == "" and frac == "") or not _DIGITS.match(int_part) or not _DIGITS.match(frac):
        return None
    if exponent is not None:
        body = exponent[1:] if exponent[:1] in ("+", "-") else exponent
        if body == "" or not _DIGITS.match(body):
            return None
    out = "-" if negative else ""
    out += int_part.lstrip("0") or "0"
    if frac:
        out += "." + frac
    if exponent is not None:
        out += "e" + exponent
    return out


def split(line, delimiter):
    """Splits one line into fields (quoting rules as in the Rust
    processor)."""
    fields = []
    rest = line
    while True:
        index = len(fields) + 1
        if not rest.startswith('"'):
            end = rest.find(delimiter)
            if end < 0:
                fields.append(rest)
                return fields
            fields.append(rest[:end])
            rest = rest[end + len(delimiter) :]
            continue
        # A quoted field: find its closing quote, unescaping `""`.
        quoted = rest[1:]
        value = []
        start = 0
        while True:
            q = quoted.find('"', start)
            if q < 0:
                raise Reject(f"unterminated quote in field {index}")
            if quoted.startswith('"', q + 1):
                value.append(quoted[start : q + 1])
                start = q + 2
                continue
            value.append(quoted[start:q])
            after = quoted[q + 1 :]
            break
        fields.append("".join(value))
        if after == "":
            return fields
        if not after.startswith(delimiter):
            raise Reject(f"unexpected character after the closing quote of field {index}")
        rest = after[len(delimiter) :]


def _delimiter(config):
    raw = config.get("delimiter")
    if raw is None:
        return ","
    if raw in ("tab", "\\t"):
        return "\t"
    if len(raw) == 1:
        if raw in ('"', "\r", "\n"):
            raise ConfigError("delimiter", f"`{raw}` cannot be a delimiter")
        return raw
    raise ConfigError("delimiter", f"must be one character (or `tab`), found `{raw}`")


class CsvToJson(partita.Processor):
    """Parses CSV lines into JSON objects."""

    def __init__(self, config):
        config.check_keys(["columns", "delimiter", "numeric", "skip_header"])
        config.require("columns")
        names = config.list("columns") or []
        if not names:
            raise ConfigError("columns", "lists no column")
        numeric = config.list("numeric") or []
        self.columns = []
        for name in names:
            if any(c[0] == name for c in self.columns):
                raise ConfigError("columns", f"column `{name}` is listed twice")
            self.columns.append((name, json_string(name) + ":", name in numeric))
        for n in numeric:
            if not any(c[0] == n for c in self.columns):
                raise ConfigError("numeric", f"`{n}` is not one of the columns")
        self.delimiter = _delimiter(config)
        self.skip_header = config.bool("skip_header", False)

    def process(self, record, out):
        line = record.value_str()
        if line.endswith("\n"):
            line = line[:-2] if line.endswith("\r\n") else line[:-1]
        fields = split(line, self.delimiter)
        columns = self.columns
        if len(fields) != len(columns):
            plural = "" if len(columns) == 1 else "s"
            raise Reject(f"expected {len(columns)} field{plural}, found {len(fields)}")
        if self.skip_header and all(f == c[0] for f, c in zip(fields, columns)):
            return
        parts = []
        for field, (name, prefix, numeric) in zip(fields, columns):
            if numeric:
                n = json_number(field)
                if n is None:
                    raise Reject(f"column `{name}` is not a number: `{field[:40]}`")
                parts.append(prefix + n)
            else:
                parts.append(prefix + json_string(field))
        out.value("{" + ",".join(parts) + "}")


Processor = partita.export(CsvToJson)
