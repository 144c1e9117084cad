"""The input record a processor sees, and the rejection of one record."""


class Reject(Exception):
    """Why a record was rejected; the reason travels to the dead-letter
    topic. Raise it from ``process``; any other exception is a bug and traps
    the instance."""

    def __init__(self, reason):
        super().__init__(str(reason))

    @property
    def reason(self):
        """The reason."""
        return self.args[0]


def text_of(data, what):
    """``data`` as text, or a :class:`Reject` saying what is missing or not
    UTF-8, and where."""
    if data is None:
        raise Reject(f"record has no {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Reject(f"{what} is not UTF-8: invalid byte at offset {e.start}") from None


class Record:
    """One input record.

    - ``key``, ``value``: ``bytes`` or ``None`` (a value of ``None`` is a
      tombstone);
    - ``headers``: ``(name, value)`` pairs in order (``str``, ``bytes``);
    - ``timestamp`` (ms since the Unix epoch), ``topic``, ``partition``,
      ``offset``.
    """

    __slots__ = ("topic", "partition", "offset", "timestamp", "key", "value", "headers")

    def __init__(self, topic, partition, offset, timestamp, key, value, headers):
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers

    def key_str(self):
        """The key as text; a :class:`Reject` if there is none or it is not
        UTF-8."""
        return text_of(self.key, "key")

    def value_str(self):
        """The value as text; a :class:`Reject` if there is none or it is not
        UTF-8."""
        return text_of(self.value, "value")

    def header(self, name):
        """The value of the first header named ``name``, or ``None``."""
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def __repr__(self):
        return (
            f"Record(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"timestamp={self.timestamp}, key={self.key!r}, value={self.value!r}, headers={self.headers!r})"
        )
