"""{{name}}: a Partita processor. It upper-cases each record's value and
appends the stage's ``suffix`` (default ``!``); a record with an empty value
is rejected (the host sends it to the stage's dead-letter topic)."""

import partita
from partita import Reject


class Shout(partita.Processor):
    def __init__(self, config):
        config.check_keys(["suffix"])
        self.suffix = config.get("suffix", "!")

    def process(self, record, out):
        text = record.value_str()
        if text == "":
            raise Reject("empty value")
        # To output `default`, keeping the record's key, headers and timestamp.
        out.value(text.upper() + self.suffix)


Processor = partita.export(Shout)
