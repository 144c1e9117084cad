"""Write Partita stream processors in Python.

A processor is a class: built once per instance from the stage's
:class:`Config`, it declares its named outputs and then sees one
:class:`Record` at a time, emitting outputs through an :class:`Emitter` or
rejecting the record by raising :class:`Reject`. The batch, its byte layout
(wit/processor.wit) and the WIT bindings stay hidden, as in the Rust SDK::

    import partita
    from partita import Reject, state

    class Shout(partita.Processor):
        def __init__(self, config):
            config.check_keys(["suffix"])
            self.suffix = config.get("suffix", "!")

        def process(self, record, out):
            text = record.value_str()
            if text == "":
                raise Reject("empty value")
            if record.key is None:
                raise Reject("record has no key")
            state.put_u64(record.key, (state.get_u64(record.key) or 0) + 1)
            out.value(text.upper() + self.suffix)

    Processor = partita.export(Shout)

``scripts/build-polyglot.sh`` turns a folder holding such a
``processor.py`` into a component (see docs/GUIDE-PYTHON.md).

What the host calls and what this package does:

- ``init(config)`` once per instance: ``cls(config)``, then ``outputs()``
  gives the output names; an output's index is its position in that list.
  An exception refuses the processor with its message.
- ``process(batch)`` once per batch: each record is read and passed to
  ``process(record, out)``. A raised :class:`Reject` rejects that record
  only, discarding what it had emitted (its state writes stay, as in Rust);
  the host sends it to the stage's dead-letter topic. Any other exception is
  a bug: it is logged at error level and traps the instance, and the host
  retries the batch record by record in a fresh instance. State writes are
  flushed to the host once, when the batch ends.
- ``on-timer(stream_time, wall_time)``: ``on_timer(stream_time, wall_time,
  out)``.
"""

from . import state
from .config import Config, ConfigError, trim
from .driver import InitError, export
from .emit import Emitter
from .host import host as _host
from .record import Record, Reject
from .wire import KEEP

__all__ = [
    "KEEP",
    "Config",
    "ConfigError",
    "Emitter",
    "InitError",
    "Processor",
    "Record",
    "Reject",
    "export",
    "log",
    "state",
    "tables",
    "trim",
]


class Processor:
    """Base class of processors (optional: any class with the same methods
    works)."""

    def __init__(self, config):
        """Builds the processor from the stage's configuration; raise (for
        example a :class:`ConfigError`) to refuse it."""

    def outputs(self):
        """The names of the outputs; defaults to one output named
        ``default``."""
        return ["default"]

    def process(self, record, out):
        """Handles one record: emit outputs through ``out`` or raise
        :class:`Reject`."""
        raise NotImplementedError

    def on_timer(self, stream_time, wall_time, out):
        """Called when time passes; does nothing by default."""


class _Tables:
    """Read-only reference tables that the host materializes from compacted
    topics. Lookups are not cached: each is a call into the host."""

    @staticmethod
    def lookup(table, key):
        """The current value of ``key`` in table ``table``, or ``None``."""
        k = key.encode("utf-8") if isinstance(key, str) else bytes(key)
        return _host().table_lookup(table, k)

    @staticmethod
    def lookup_str(table, key):
        """Like :meth:`lookup`, as text; a :class:`Reject` naming table and
        key when the value is not UTF-8."""
        v = _Tables.lookup(table, key)
        if v is None:
            return None
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError as e:
            shown = key if isinstance(key, str) else bytes(key).decode("utf-8", "replace")
            raise Reject(
                f"table `{table}` value for key `{shown}` is not UTF-8 (invalid byte at offset {e.start})"
            ) from None


class _Log:
    """Leveled logging into the host's log, tagged with stage and partition.
    Each line is one call into the host: log per batch or per problem."""

    @staticmethod
    def log(level, message):
        """Writes one line; ``level`` is trace, debug, info, warn or error."""
        _host().log(level, str(message))

    @staticmethod
    def trace(message):
        _host().log("trace", str(message))

    @staticmethod
    def debug(message):
        _host().log("debug", str(message))

    @staticmethod
    def info(message):
        _host().log("info", str(message))

    @staticmethod
    def warn(message):
        _host().log("warn", str(message))

    @staticmethod
    def error(message):
        _host().log("error", str(message))


tables = _Tables()
log = _Log()
