"""Reads a JSON object as the Rust processor's serde_json does
(``serde_json::from_slice::<Map<String, Value>>``), with the same error
messages and positions ("expected value at line 1 column 2"), so that the
port rejects the same records for the same reasons. Also writes a value as
serde_json's ``Value::to_string`` does.

Values: ``None``, booleans, ``str``, lists, objects as dicts (written with
sorted keys, as serde_json's default map keeps them), numbers as
:class:`Number`.
"""

from floats import zmij_format

RECURSION_LIMIT = 128
U64_MAX = (1 << 64) - 1


class JsonError(Exception):
    """A parse error with serde_json's message."""


class Number:
    """A JSON number as serde_json keeps it: ``u64``, ``i64`` or ``f64``."""

    __slots__ = ("kind", "value")

    def __init__(self, kind, value):
        self.kind = kind
        self.value = value

    def as_f64(self):
        return float(self.value)


_ESCAPES = {
    0x22: '"',
    0x5C: "\\",
    0x2F: "/",
    0x62: "\b",
    0x66: "\f",
    0x6E: "\n",
    0x72: "\r",
    0x74: "\t",
}


def _valid_up_to(b):
    try:
        b.decode("utf-8")
        return len(b)
    except UnicodeDecodeError as e:
        return e.start


class _Parser:
    def __init__(self, data):
        self.b = data
        self.n = len(data)
        self.i = 0
        self.depth = 0

    def line_column(self, i):
        start = self.b.rfind(b"\n", 0, i) + 1
        return self.b.count(b"\n", 0, start) + 1, i - start

    def error(self, msg, at=None):
        line, column = self.line_column(self.i if at is None else at)
        return JsonError(f"{msg} at line {line} column {column}")

    def peek_error(self, msg):
        return self.error(msg, min(self.n, self.i + 1))

    def peek(self):
        return self.b[self.i] if self.i < self.n else None

    def whitespace(self):
        while self.i < self.n and self.b[self.i] in (0x20, 0x0A, 0x09, 0x0D):
            self.i += 1
        return self.peek()

    def ident(self, rest):
        for ch in rest:
            if self.i >= self.n:
                raise self.error("EOF while parsing a value")
            c = self.b[self.i]
            self.i += 1
            if c != ch:
                raise self.error("expected ident")

    def digit(self):
        c = self.peek()
        return c is not None and 0x30 <= c <= 0x39

    def number(self, positive):
        start = self.i
        if self.i >= self.n:
            raise self.error("EOF while parsing a value")
        first = self.b[self.i]
        self.i += 1
        if first == 0x30:
            if self.digit():
                raise self.peek_error("invalid number")
        elif 0x31 <= first <= 0x39:
            while self.digit():
                self.i += 1
        else:
            raise self.error("invalid number")
        is_float = False
        if self.peek() == 0x2E:
            is_float = True
            self.i += 1
            digits = self.i
            while self.digit():
                self.i += 1
            if self.i == digits:
                if self.peek() is None:
                    raise self.peek_error("EOF while parsing a value")
                raise self.peek_error("invalid number")
        if self.peek() in (0x65, 0x45):
            is_float = True
            self.i += 1
            if self.peek() in (0x2B, 0x2D):
                self.i += 1
            if self.i >= self.n:
                raise self.error("EOF while parsing a value")
            c = self.b[self.i]
            self.i += 1
            if not 0x30 <= c <= 0x39:
                raise self.error("invalid number")
            while self.digit():
                self.i += 1
        text = self.b[start : self.i].decode("ascii")
        if not is_float:
            n = int(text)
            if n <= U64_MAX:
                if positive:
                    return Number("u64", n)
                if n == 0:
                    return Number("f64", -0.0)
                if n <= 1 << 63:
                    return Number("i64", -n)
                return Number("f64", -float(n))
        try:
            f = float(text)
        except OverflowError:
            f = float("inf")
        if f in (float("inf"), float("-inf")):
            raise self.error("number out of range")
        return Number("f64", f if positive else -f)

    def hex4(self):
        if self.i + 4 > self.n:
            self.i = self.n
            raise self.error("EOF while parsing a string")
        text = self.b[self.i : self.i + 4]
        self.i += 4
        if not all(c in b"0123456789abcdefABCDEF" for c in text):
            raise self.error("invalid escape")
        return int(text, 16)

    def escape(self):
        if self.i >= self.n:
            raise self.error("EOF while parsing a string")
        c = self.b[self.i]
        self.i += 1
        if c in _ESCAPES:
            return _ESCAPES[c]
        if c != 0x75:
            raise self.error("invalid escape")
        n = self.hex4()
        if 0xDC00 <= n <= 0xDFFF:
            raise self.error("lone leading surrogate in hex escape")
        if n < 0xD800 or n > 0xDBFF:
            return chr(n)
        if self.peek() != 0x5C:
            self.i += 1
            raise self.error("unexpected end of hex escape")
        self.i += 1
        if self.peek() != 0x75:
            self.i += 1
            raise self.error("unexpected end of hex escape")
        self.i += 1
        n2 = self.hex4()
        if not 0xDC00 <= n2 <= 0xDFFF:
            raise self.error("lone leading surrogate in hex escape")
        return chr(0x10000 + ((n - 0xD800) << 10) + (n2 - 0xDC00))

    def string(self):
        """A string after its opening quote; UTF-8 is checked once it is
        read, and a bad byte is located as serde_json locates it."""
        parts = []
        start = self.i
        b = self.b
        while True:
            i = self.i
            while i < self.n:
                c = b[i]
                if c == 0x22 or c == 0x5C or c < 0x20:
                    break
                i += 1
            self.i = i
            if i >= self.n:
                raise self.error("EOF while parsing a string")
            c = b[i]
            parts.append(b[start:i])
            self.i += 1
            if c == 0x22:
                break
            if c != 0x5C:
                raise self.error("control character (\\u0000-\\u001F) found while parsing a string")
            parts.append(self.escape().encode("utf-8"))
            start = self.i
        raw = b"".join(parts)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            line, column = self.line_column(self.i)
            at = max(0, column - (len(raw) - _valid_up_to(raw)))
            raise JsonError(f"invalid unicode code point at line {line} column {at}") from None

    def enter(self):
        self.depth += 1
        if self.depth >= RECURSION_LIMIT:
            raise self.peek_error("recursion limit exceeded")

    def value(self):
        c = self.whitespace()
        if c is None:
            raise self.peek_error("EOF while parsing a value")
        if c == 0x6E:
            self.i += 1
            self.ident(b"ull")
            return None
        if c == 0x74:
            self.i += 1
            self.ident(b"rue")
            return True
        if c == 0x66:
            self.i += 1
            self.ident(b"alse")
            return False
        if c == 0x2D:
            self.i += 1
            return self.number(False)
        if c == 0x22:
            self.i += 1
            return self.string()
        if c == 0x5B:
            self.enter()
            self.i += 1
            items = []
            first = True
            while True:
                p = self.whitespace()
                if p is None:
                    raise self.peek_error("EOF while parsing a list")
                if p == 0x5D:
                    break
                if not first:
                    if p != 0x2C:
                        raise self.peek_error("expected `,` or `]`")
                    self.i += 1
                    q = self.whitespace()
                    if q == 0x5D:
                        raise self.peek_error("trailing comma")
                    if q is None:
                        raise self.peek_error("EOF while parsing a value")
                first = False
                items.append(self.value())
            self.i += 1
            self.depth -= 1
            return items
        if c == 0x7B:
            self.enter()
            self.i += 1
            members = self.members()
            self.end_map()
            self.depth -= 1
            return members
        if 0x30 <= c <= 0x39:
            return self.number(True)
        raise self.peek_error("expected value")

    def members(self):
        out = {}
        first = True
        while True:
            p = self.whitespace()
            if p is None:
                raise self.peek_error("EOF while parsing an object")
            if p == 0x7D:
                return out
            if first:
                if p != 0x22:
                    raise self.peek_error("key must be a string")
            elif p == 0x2C:
                self.i += 1
                q = self.whitespace()
                if q == 0x7D:
                    raise self.peek_error("trailing comma")
                if q is None:
                    raise self.peek_error("EOF while parsing a value")
                if q != 0x22:
                    raise self.peek_error("key must be a string")
            else:
                raise self.peek_error("expected `,` or `}`")
            first = False
            self.i += 1
            key = self.string()
            colon = self.whitespace()
            if colon is None:
                raise self.peek_error("EOF while parsing an object")
            if colon != 0x3A:
                raise self.peek_error("expected `:`")
            self.i += 1
            out[key] = self.value()

    def end_map(self):
        c = self.whitespace()
        if c == 0x7D:
            self.i += 1
            return
        if c == 0x2C:
            raise self.peek_error("trailing comma")
        if c is None:
            raise self.peek_error("EOF while parsing an object")
        raise self.peek_error("trailing characters")


def _rust_debug_string(s):
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif c == 0:
            out.append("\\0")
        elif c < 0x20 or c == 0x7F:
            out.append("\\u{%x}" % c)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _unexpected(v):
    """How serde_json describes an unexpected value ("integer `12`")."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean `{'true' if v else 'false'}`"
    if isinstance(v, str):
        return f"string {_rust_debug_string(v)}"
    if isinstance(v, list):
        return "sequence"
    if isinstance(v, dict):
        return "map"
    if v.kind == "f64":
        return f"floating point `{zmij_format(v.value)}`"
    return f"integer `{v.value}`"


def parse_object(data):
    """The object in ``data`` (bytes) as a dict, or a :class:`JsonError` with
    serde_json's message."""
    p = _Parser(bytes(data))
    c = p.whitespace()
    if c is None:
        raise p.peek_error("EOF while parsing a value")
    if c == 0x7B:
        p.enter()
        p.i += 1
        out = p.members()
        p.end_map()
        p.depth -= 1
    else:
        # serde_json reads a scalar to describe it, but not a list.
        v = [] if c == 0x5B else p.value()
        raise p.error(f"invalid type: {_unexpected(v)}, expected a map")
    if p.whitespace() is not None:
        raise p.peek_error("trailing characters")
    return out


def json_string(s):
    """``s`` as serde_json writes a string."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif c >= 0x20:
            out.append(ch)
        elif c == 0x08:
            out.append("\\b")
        elif c == 0x0C:
            out.append("\\f")
        elif c == 0x0A:
            out.append("\\n")
        elif c == 0x0D:
            out.append("\\r")
        elif c == 0x09:
            out.append("\\t")
        else:
            out.append("\\u%04x" % c)
    out.append('"')
    return "".join(out)


def to_json(v):
    """``v`` as serde_json's ``Value::to_string`` writes it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json_string(v)
    if isinstance(v, list):
        return "[" + ",".join(to_json(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{json_string(k)}:{to_json(v[k])}" for k in sorted(v)) + "}"
    if v.kind == "f64":
        return zmij_format(v.value)
    return str(v.value)
