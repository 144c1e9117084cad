"""The calls into the host, in one place.

Inside a component these are the WIT imports of the ``stage`` world, which
componentize-py generates as the package ``wit_world``. They are imported
when this module is: componentize-py keeps only the modules imported while
it builds the component (it snapshots the interpreter), so an import made
later, inside a call, would fail. In CPython (unit tests),
:mod:`partita.testing` installs an in-memory stand-in with :func:`set_host`
instead.

A host object has ``state_get(key)``, ``state_write_batch(buf)``,
``state_scan(start, end, limit)``, ``table_lookup(table, key)`` and
``log(level, message)`` with ``level`` one of ``trace``, ``debug``,
``info``, ``warn``, ``error``.
"""

import sys

if sys.platform == "wasi":
    from componentize_py_types import Err
    from wit_world.imports import log as _wit_log
    from wit_world.imports import state as _wit_state
    from wit_world.imports import tables as _wit_tables
    from wit_world.imports import types as _wit_types

_current = None


class WitHost:
    """The host's WIT interfaces inside a component."""

    def __init__(self):
        self._state = _wit_state
        self._tables = _wit_tables
        self._log = _wit_log
        levels = _wit_types.Level
        self._levels = {
            "trace": levels.TRACE,
            "debug": levels.DEBUG,
            "info": levels.INFO,
            "warn": levels.WARN,
            "error": levels.ERROR,
        }

    def state_get(self, key):
        return self._state.get(key)

    def state_write_batch(self, buf):
        try:
            self._state.write_batch(buf)
        except Err as e:
            raise RuntimeError(e.value) from None

    def state_scan(self, start, end, limit):
        return self._state.scan(start, end, limit)

    def table_lookup(self, table, key):
        return self._tables.lookup(table, key)

    def log(self, level, message):
        self._log.log(self._levels[level], message)


def set_host(host):
    """Installs ``host`` (tests)."""
    global _current
    _current = host


def host():
    """The installed host, binding the WIT imports inside a component."""
    global _current
    if _current is None:
        if sys.platform != "wasi":
            raise RuntimeError(
                "partita: no host installed (the processor runs outside a component and outside a test harness)"
            )
        _current = WitHost()
    return _current


def in_component():
    """True inside a component."""
    return sys.platform == "wasi"
