"""Run a processor in CPython over records, in unit tests.

A :class:`Harness` plays the host: it encodes records into a batch exactly as
the host does, runs them through the same code a component exports
(:func:`partita.export`), checks and decodes the results and resolves every
"keep the input's" field, so a test sees what would be produced. It also
holds the host's side of state, tables and logs, which tests can set and
inspect::

    from partita.testing import Harness, TestRecord

    h = Harness(Shout, [("suffix", "?")])
    [r] = h.run([TestRecord(key="a", value="hi")])
    assert r.outputs[0].value == b"HI?"
"""

from dataclasses import dataclass, field

from . import host as _host_module
from . import state
from .driver import export
from .record import Record
from .wire import KEEP, decode_results, decode_timer, decode_writes, encode_batch


def _b(v):
    if v is None:
        return None
    return v.encode("utf-8") if isinstance(v, str) else bytes(v)


@dataclass
class HostCalls:
    """The calls a processor made into the stand-in host."""

    state_gets: int = 0
    state_write_batches: int = 0
    state_scans: int = 0
    table_lookups: int = 0
    logs: int = 0


class FakeHost:
    """An in-memory stand-in of the host's state, tables and log."""

    def __init__(self):
        self.state = {}
        self.tables = {}
        self.logs = []
        self.calls = HostCalls()

    def state_get(self, key):
        self.calls.state_gets += 1
        return self.state.get(bytes(key))

    def state_write_batch(self, buf):
        self.calls.state_write_batches += 1
        for k, v in decode_writes(buf):
            if v is None:
                self.state.pop(k, None)
            else:
                self.state[k] = v

    def state_scan(self, start, end, limit):
        self.calls.state_scans += 1
        keys = sorted(k for k in self.state if k >= start and (end is None or k < end))
        return [(k, self.state[k]) for k in keys[:limit]]

    def table_lookup(self, table, key):
        self.calls.table_lookups += 1
        return self.tables.get(table, {}).get(bytes(key))

    def log(self, level, message):
        self.calls.logs += 1
        self.logs.append((level, message))


@dataclass
class TestRecord:
    """An input record for a test; the offset defaults to the harness's
    next one. Key, value and header values are ``str`` or ``bytes``."""

    __test__ = False

    key: object = None
    value: object = None
    headers: list = field(default_factory=list)
    timestamp: int = 0
    topic: str = "input"
    partition: int = 0
    offset: object = None


@dataclass
class Emitted:
    """An output as it would be produced: every kept field resolved."""

    output: str
    key: object
    value: object
    headers: list
    timestamp: int

    def key_str(self):
        """The key as text."""
        return self.key.decode("utf-8")

    def value_str(self):
        """The value as text."""
        return self.value.decode("utf-8")


@dataclass
class Outcome:
    """What became of one input record: ``outputs`` if accepted, else
    ``rejection`` holds the reason."""

    outputs: list = None
    rejection: str = None


def _resolve(outputs, names, record, timestamp):
    def keep(f, kept):
        return kept if f is KEEP else f

    out = []
    for o in outputs:
        out.append(
            Emitted(
                names[o["output"]],
                keep(o["key"], record.key if record else None),
                keep(o["value"], record.value if record else None),
                (record.headers if record else []) if o["headers"] is KEEP else o["headers"],
                timestamp if o["timestamp"] is KEEP else o["timestamp"],
            )
        )
    return out


class Harness:
    """A processor instance with a stand-in host around it.

    Starting it resets the module's state cache and installs a fresh
    stand-in host: use one harness at a time."""

    def __init__(self, cls, config=()):
        self.cls = cls
        self.config = list(config)
        self.host = FakeHost()
        self.next_offset = 0
        self._start()

    def _start(self):
        _host_module.set_host(self.host)
        state.reset()
        self.exported = export(self.cls)()
        self.names = self.exported.init(self.config)

    def restart(self):
        """Replaces the instance by a fresh one with the same configuration,
        as the host does after a failure or a hot swap: state, tables and
        logs stay, the instance's memory (and the state cache) does not."""
        self._start()

    @property
    def outputs(self):
        """The output names the processor declared."""
        return self.names

    def run(self, records):
        """Runs ``records`` (:class:`TestRecord`) as one batch; one
        :class:`Outcome` per record, in order."""
        inputs = []
        for r in records:
            offset = self.next_offset if r.offset is None else r.offset
            self.next_offset = offset + 1
            inputs.append(
                Record(
                    r.topic,
                    r.partition,
                    offset,
                    r.timestamp,
                    _b(r.key),
                    _b(r.value),
                    [(k, _b(v)) for k, v in r.headers],
                )
            )
        encoded = self.exported.process(encode_batch(inputs))
        out = []
        for (kind, body), record in zip(decode_results(encoded, len(inputs), len(self.names)), inputs):
            if kind == "rejected":
                out.append(Outcome(rejection=body))
            else:
                out.append(Outcome(outputs=_resolve(body, self.names, record, record.timestamp)))
        return out

    def run_one(self, record):
        """Runs one record as a batch of one."""
        return self.run([record])[0]

    def run_encoded(self, batch):
        """Runs an already encoded batch and returns the encoded results."""
        return self.exported.process(batch)

    def timer(self, stream_time, wall_time):
        """Calls ``on_timer`` and returns its outputs (absent fields resolved
        to ``None``, the timestamp defaulting to ``stream_time``)."""
        encoded = self.exported.on_timer(stream_time, wall_time)
        return _resolve(decode_timer(encoded, len(self.names)), self.names, None, stream_time)

    def set_table(self, table, key, value):
        """Sets ``key`` to ``value`` in reference table ``table``."""
        self.host.tables.setdefault(table, {})[_b(key)] = _b(value)

    def state(self, key):
        """The value the host stores under ``key`` (what the processor has
        sent, not its cache), or ``None``."""
        return self.host.state.get(_b(key))

    def state_entries(self):
        """Every ``(key, value)`` the host stores, in key order."""
        return sorted(self.host.state.items())

    def set_state(self, key, value):
        """Stores ``value`` under ``key`` on the host's side (as restored
        state)."""
        self.host.state[_b(key)] = _b(value)

    @property
    def logs(self):
        """The lines the processor logged, ``(level, message)``, in order."""
        return self.host.logs

    @property
    def calls(self):
        """The calls the processor made into the host so far."""
        return self.host.calls
