"""The stage configuration a processor receives at ``init``, with typed
helpers whose errors name the key."""

import re

_INT = re.compile(r"^[+-]?\d+$")


def _bounds(lo, hi):
    if lo is None:
        return f"at most {hi}"
    if hi is None:
        return f"at least {lo}"
    return f"{lo} to {hi}"


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
        if v.strip() == "":
            raise ConfigError(key, "is required but empty")
        return v

    def int(self, key, default=None, min=None, max=None):
        """The value of ``key`` as an integer (decimal, optional sign),
        ``default`` if the key is missing; a :class:`ConfigError` if it is
        not an integer in [min, max]."""
        v = self.get(key)
        if v is None:
            return default
        t = v.strip()
        if not _INT.match(t):
            raise ConfigError(key, f"cannot parse `{v}`: not an integer")
        n = int(t)
        if (min is not None and n < min) or (max is not None and n > max):
            raise ConfigError(key, f"`{v}` is out of range ({_bounds(min, max)})")
        return n

    def bool(self, key, default=None):
        """The value of ``key`` as ``true``/``false``, ``default`` if
        missing."""
        v = self.get(key)
        if v is None:
            return default
        t = v.strip()
        if t == "true":
            return True
        if t == "false":
            return False
        raise ConfigError(key, f"cannot parse `{v}`: expected true or false")

    def list(self, key):
        """The value of ``key`` split at commas, items stripped, empty items
        dropped; ``None`` if the key is missing."""
        v = self.get(key)
        if v is None:
            return None
        return [s.strip() for s in v.split(",") if s.strip()]

    def check_keys(self, known):
        """A :class:`ConfigError` naming the first key not in ``known``, so
        that a misspelt key is reported instead of silently ignored."""
        for k, _ in self.pairs:
            if k not in known:
                raise ConfigError(k, f"unknown key (known keys: {', '.join(known)})")

    def items(self):
        """All pairs, in the order given."""
        return list(self.pairs)
