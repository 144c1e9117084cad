"""The loop behind the exports: decode a batch, call the processor per
record, encode the results, flush state once."""

import traceback

from . import state
from .config import Config, ConfigError
from .emit import Emitter
from . import host as host_module
from .host import host, in_component
from .record import Reject
from .wire import BatchReader, ResultWriter, WireError, timer_outputs


class InitError(Exception):
    """The processor refused to start; the message is its reason."""


def _log_error(message):
    host().log("error", message)


def _describe(e):
    return "".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip()


class Driver:
    """One processor instance with its declared outputs."""

    def __init__(self, cls, pairs):
        try:
            processor = cls(Config(pairs))
            outputs = processor.outputs()
        except Exception as e:
            if not isinstance(e, (ConfigError, Reject)):
                _log_error(f"init: {_describe(e)}")
            raise InitError(str(e)) from None
        if not isinstance(outputs, (list, tuple)) or not all(isinstance(n, str) for n in outputs):
            raise InitError("outputs() must return a list of str")
        outputs = list(outputs)
        for i, name in enumerate(outputs):
            if name == "":
                raise InitError(f"output {i} has an empty name")
            if name in outputs[:i]:
                raise InitError(f"output `{name}` is declared twice")
        self.processor = processor
        self.outputs = outputs
        self.emitter = Emitter(outputs)

    def process(self, buf):
        """Runs one encoded batch and returns the encoded results.

        Raises (traps) if the batch header cannot be read; records that
        cannot be read are rejected with the wire error."""
        try:
            batch = BatchReader(buf)
        except WireError as e:
            raise RuntimeError(f"partita: cannot read the batch header the host sent: {e}") from None
        writer = ResultWriter()
        emitter = self.emitter
        emitter.writer = writer
        emitter.timer = None
        process = self.processor.process
        broken = None
        for _ in range(batch.count):
            writer.begin()
            if broken is not None:
                writer.reject(broken)
                continue
            try:
                record = batch.next()
            except WireError as e:
                broken = f"malformed batch: {e}"
                writer.reject(broken)
                continue
            emitter.error = None
            try:
                process(record, emitter)
            except Reject as e:
                writer.reject(e.reason)
                continue
            except Exception as e:
                _log_error(
                    f"process: record at offset {record.offset} of {record.topic}/{record.partition}: {_describe(e)}"
                )
                raise
            if emitter.error is not None:
                writer.reject(emitter.error)
        state.end_call()
        return writer.finish()

    def on_timer(self, stream_time, wall_time):
        """Runs ``on_timer`` and returns the encoded outputs."""
        outputs = []
        emitter = self.emitter
        emitter.writer = None
        emitter.timer = outputs
        emitter.error = None
        try:
            self.processor.on_timer(stream_time, wall_time, emitter)
        except Exception as e:
            _log_error(f"on_timer: {_describe(e)}")
            raise
        finally:
            emitter.timer = None
        if emitter.error is not None:
            _log_error(f"on_timer: {emitter.error}; that output was dropped")
        state.end_call()
        return timer_outputs(outputs)


_driver = None


def export(cls):
    """The class that a component exports as its ``processor`` interface, for
    the processor class ``cls``. The processor module must bind it to the
    name ``Processor``::

        Processor = partita.export(CsvToJson)

    componentize-py instantiates that class and calls ``init``, ``process``
    and ``on_timer`` on it; the instance of ``cls`` lives as long as the
    component instance."""
    if not isinstance(cls, type):
        raise TypeError("partita.export: the processor must be a class")

    class Exported:
        """Implements the WIT ``processor`` interface for the processor."""

        def init(self, config):
            global _driver
            try:
                _driver = Driver(cls, config)
            except InitError as e:
                if in_component():
                    raise host_module.Err(str(e)) from None
                raise
            return list(_driver.outputs)

        def process(self, batch):
            if _driver is None:
                raise RuntimeError("partita: the host called the processor before init")
            return _driver.process(batch)

        def on_timer(self, stream_time, wall_time):
            if _driver is None:
                raise RuntimeError("partita: the host called the processor before init")
            return _driver.on_timer(stream_time, wall_time)

    Exported.__name__ = "Processor"
    Exported.__qualname__ = "Processor"
    Exported.processor_class = cls
    return Exported
