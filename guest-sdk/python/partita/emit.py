"""Emitting outputs: forward the input unchanged, or build an output whose
unset fields keep the input record's."""

from .wire import KEEP


class Emitter:
    """Where a processor sends the outputs of the current record (or timer
    call).

    An output field left as :data:`partita.KEEP` (the default) keeps the
    input record's (in a timer call: absent, and the timestamp is the stream
    time); ``None`` makes a key or value absent. Keys, values and header
    values are ``bytes`` or ``str`` (UTF-8). ``output`` is the index of a
    declared output or its name.
    """

    __slots__ = ("names", "writer", "timer", "error")

    def __init__(self, names):
        self.names = names
        self.writer = None
        self.timer = None
        self.error = None

    @property
    def outputs(self):
        """The declared output names."""
        return self.names

    def output(self, name):
        """The index of the output declared as ``name``, or ``None``."""
        try:
            return self.names.index(name)
        except ValueError:
            return None

    def forward(self, output=0):
        """Sends the input record unchanged to ``output`` (default: the
        first)."""
        if self.timer is not None:
            self._fail("forward has no input record to send in on_timer; use emit(output, ...) and set the fields")
            return
        index = self._resolve(output)
        if index is not None:
            self.writer.forward(index)

    def value(self, value):
        """Sends the input record to the first output with ``value`` as its
        value, keeping its key, headers and timestamp."""
        if self.timer is None and self.names:
            self.writer.value(value)
        else:
            self.emit(0, value=value)

    def emit(self, output=0, key=KEEP, value=KEEP, headers=KEEP, timestamp=KEEP):
        """Emits one output; fields not given keep the input record's."""
        index = self._resolve(output)
        if index is None:
            return
        if self.timer is not None:
            self.timer.append(
                {"output": index, "key": key, "value": value, "headers": headers, "timestamp": timestamp}
            )
        else:
            self.writer.output(index, key, value, headers, timestamp)

    def _resolve(self, output):
        names = self.names
        if isinstance(output, str):
            if output in names:
                return names.index(output)
            self._fail(
                f"unknown output `{output}`: the processor declared {len(names)} output(s) ({', '.join(names)})"
            )
            return None
        if isinstance(output, int) and not isinstance(output, bool) and 0 <= output < len(names):
            return output
        self._fail(
            f"output index {output} is out of range: the processor declared {len(names)} output(s) "
            f"({', '.join(names)})"
        )
        return None

    def _fail(self, message):
        if self.error is None:
            self.error = message
