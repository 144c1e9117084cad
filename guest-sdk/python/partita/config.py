"""The stage configuration a processor receives at ``init``, with typed
helpers whose errors name the key."""

import re

_SIGNED = re.compile(r"^[+-]?[0-9]+$")
_UNSIGNED = re.compile(r"^\+?[0-9]+$")
#: Unicode White_Space, the set Rust's ``str::trim`` removes.
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def trim(s):
    """``s`` without leading and trailing white space, exactly as Rust's
    ``str::trim`` removes it (Python's own ``strip`` also removes
    U+001C to U+001F), so that a processor ported from Rust reads the same
    text."""
    return s.strip(_WHITESPACE)


class ConfigError(Exception):
    """A configuration problem, naming the key."""

    def __init__(self, key, problem):
        super().__init__(f"config key `{key}`: {problem}")
        self.key = key


class Config:
    """Key/value configuration of a stage: the ``config`` table of the
    pipeline file, or the ``--config key=value`` arguments of ``partita
    test``. When a key is given more than once, the last value wins."""

    def __init__(self, pairs=()):
        self.pairs = [(str(k), str(v)) for k, v in pairs]

    def get(self, key, default=None):
        """The value of ``key``, or ``default``."""
        for k, v in reversed(self.pairs):
            if k == key:
                return v
        return default

    def require(self, key):
        """The value of ``key``; a :class:`ConfigError` if it is missing or
        blank."""
        v = self.get(key)
        if v is None:
            raise ConfigError(key, "is required but missing")
        if trim(v) == "":
            raise ConfigError(key, "is required but empty")
        return v

    def int(self, key, default=None, min=None, max=None):
        """The value of ``key`` (trimmed) as an integer, ``default`` if the
        key is missing; a :class:`ConfigError` if it is not an integer in
        [min, max], worded as Rust's integer parser words it (``min=0``
        reads an unsigned number)."""
        v = self.get(key)
        if v is None:
            return default
        t = trim(v)

        def fail(problem):
            return ConfigError(key, f"cannot parse `{v}`: {problem}")

        if t == "":
            raise fail("cannot parse integer from empty string")
        pattern = _UNSIGNED if min is not None and min >= 0 else _SIGNED
        if not pattern.match(t):
            raise fail("invalid digit found in string")
        n = int(t)
        if max is not None and n > max:
            raise fail("number too large to fit in target type")
        if min is not None and n < min:
            raise fail("number too small to fit in target type")
        return n

    def bool(self, key, default=None):
        """The value of ``key`` (trimmed) as ``true`` or ``false``,
        ``default`` if missing; a :class:`ConfigError` worded as Rust's
        parser words it otherwise."""
        v = self.get(key)
        if v is None:
            return default
        t = trim(v)
        if t == "true":
            return True
        if t == "false":
            return False
        raise ConfigError(key, f"cannot parse `{v}`: provided string was not `true` or `false`")

    def list(self, key):
        """The value of ``key`` split at commas, items stripped, empty items
        dropped; ``None`` if the key is missing."""
        v = self.get(key)
        if v is None:
            return None
        return [t for t in (trim(s) for s in v.split(",")) if t]

    def check_keys(self, known):
        """A :class:`ConfigError` naming the first key not in ``known``, so
        that a misspelt key is reported instead of silently ignored."""
        for k, _ in self.pairs:
            if k not in known:
                raise ConfigError(k, f"unknown key (known keys: {', '.join(known)})")

    def items(self):
        """All pairs, in the order given."""
        return list(self.pairs)
