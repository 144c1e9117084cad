"""A Python processor that misbehaves on request, for the tests of limits:
the record value says what to do.

- ``ok``: forward the record
- ``loop``: spin forever (the CPU deadline must stop it)
- ``grow``: allocate 512 MiB (the memory cap must stop it)
- ``throw``: raise a KeyError (a bug: the call traps)
"""

import partita
from partita import Reject


class Misbehave(partita.Processor):
    def process(self, record, out):
        what = record.value_str()
        if what == "ok":
            out.forward()
        elif what == "loop":
            n = 0
            while True:
                n += 1
        elif what == "grow":
            big = bytearray(512 << 20)
            out.value(str(big[-1]))
        elif what == "throw":
            raise KeyError("a bug in the processor")
        else:
            raise Reject(f"unknown request `{what}`")


Processor = partita.export(Misbehave)
