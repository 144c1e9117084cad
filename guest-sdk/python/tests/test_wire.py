"""Round trips and malformed-buffer cases of the Python wire codec."""

import struct
import unittest

from partita.record import Record
from partita.wire import (
    KEEP,
    KEEP_MARK,
    BatchReader,
    ResultWriter,
    WireError,
    decode_results,
    decode_timer,
    decode_writes,
    encode_batch,
    encode_writes,
    timer_outputs,
)


def rec(topic="t", partition=0, offset=0, timestamp=0, key=None, value=None, headers=()):
    return Record(topic, partition, offset, timestamp, key, value, list(headers))


def sample_batch():
    return encode_batch(
        [
            rec("in", 3, 10, 1000, b"k1", b"v1", [("h", b"x")]),
            rec("other", 3, 11, 1001),
        ]
    )


def read_all(buf):
    b = BatchReader(buf)
    return [b.next() for _ in range(b.count)]


class BatchTest(unittest.TestCase):
    def test_round_trip(self):
        rs = read_all(sample_batch())
        self.assertEqual(len(rs), 2)
        r = rs[0]
        self.assertEqual((r.topic, r.partition, r.offset, r.timestamp), ("in", 3, 10, 1000))
        self.assertEqual((r.key, r.value, r.headers), (b"k1", b"v1", [("h", b"x")]))
        self.assertEqual((rs[1].topic, rs[1].key, rs[1].value, rs[1].headers), ("other", None, None, []))

    def test_layout_is_byte_for_byte_the_documented_one(self):
        buf = encode_batch([rec("t", -1, 2, -5, None, b"v")])
        expected = bytes(
            [1, 1, 0, 0, 0, 1, 0, 0, 0, 0x74, 1, 0, 0, 0, 0, 0, 0, 0]
            + [0xFF] * 4
            + [2, 0, 0, 0, 0, 0, 0, 0]
            + [0xFB] + [0xFF] * 7
            + [0xFF] * 4
            + [1, 0, 0, 0, 0x76, 0, 0, 0, 0]
        )
        self.assertEqual(buf, expected)

    def test_every_truncation_is_an_error_naming_the_byte(self):
        data = sample_batch()
        for cut in range(len(data)):
            with self.assertRaises(WireError, msg=f"cut at {cut}") as ctx:
                read_all(data[:cut])
            self.assertRegex(str(ctx.exception), r" at byte \d+")

    def test_errors_say_what_and_where_as_the_rust_reader_does(self):
        with self.assertRaisesRegex(WireError, r"^empty buffer at byte 0$"):
            BatchReader(b"")
        with self.assertRaisesRegex(WireError, r"^unsupported layout version at byte 0$"):
            BatchReader(b"\x02\x00\x00\x00\x00")
        bad = bytearray(sample_batch())
        bad[24] = 9
        with self.assertRaisesRegex(WireError, r"^topic index out of range at byte 28 \(item 0\)$"):
            BatchReader(bytes(bad)).next()
        keep = bytearray(encode_batch([rec()]))
        struct.pack_into("<I", keep, 38, KEEP_MARK)
        with self.assertRaisesRegex(WireError, r"^unexpected KEEP marker at byte 38 \(item 0\)$"):
            BatchReader(bytes(keep)).next()
        h = bytearray(encode_batch([rec(headers=[("n", b"v")])]))
        h[54] = 0xFF
        with self.assertRaisesRegex(WireError, r"^invalid UTF-8 at byte 50 \(item 0\)$"):
            BatchReader(bytes(h)).next()
        # A record cut inside its fixed part names the field's byte.
        cut = encode_batch([rec()])[:20]
        with self.assertRaisesRegex(WireError, r"^truncated record at byte 18 \(item 0\)$"):
            BatchReader(cut).next()

    def test_big_integers_are_exact(self):
        [r] = read_all(encode_batch([rec(offset=2**63 - 1, timestamp=-(2**63))]))
        self.assertEqual((r.offset, r.timestamp), (2**63 - 1, -(2**63)))


class ResultsTest(unittest.TestCase):
    def test_round_trip_with_keep_null_and_reject(self):
        w = ResultWriter()
        w.begin()
        w.output(0)
        w.output(1, key=None, value=b"new", headers=[("a", b"b")], timestamp=7)
        w.begin()
        w.output(0, value="dropped")
        w.reject("bad record")
        w.begin()
        rs = decode_results(w.finish(), 3, 2)
        self.assertEqual(rs[0][0], "ok")
        self.assertEqual(
            rs[0][1][0], {"output": 0, "key": KEEP, "value": KEEP, "headers": KEEP, "timestamp": KEEP}
        )
        self.assertEqual(
            rs[0][1][1], {"output": 1, "key": None, "value": b"new", "headers": [("a", b"b")], "timestamp": 7}
        )
        self.assertEqual(rs[1], ("rejected", "bad record"))
        self.assertEqual(rs[2], ("ok", []))

    def test_a_forwarded_record_costs_22_bytes(self):
        w = ResultWriter()
        w.begin()
        w.output(0)
        self.assertEqual(len(w.finish()) - 5, 22)

    def test_bad_buffers_are_reported_with_their_byte(self):
        w = ResultWriter()
        w.begin()
        w.output(3)
        buf = w.finish()
        with self.assertRaisesRegex(WireError, r"^output index out of range at byte 10 \(item 0\)$"):
            decode_results(buf, 1, 2)
        with self.assertRaisesRegex(WireError, r"^result count differs from record count at byte 1$"):
            decode_results(buf, 2, 4)
        t = timer_outputs([{"output": 0, "key": "k", "value": None, "timestamp": 9}])
        [o] = decode_timer(t, 1)
        self.assertEqual((o["key"], o["value"], o["headers"], o["timestamp"]), (b"k", None, KEEP, 9))
        with self.assertRaisesRegex(WireError, rf"^trailing bytes after the last item at byte {len(t)}$"):
            decode_timer(t + b"\x00", 1)


class WritesTest(unittest.TestCase):
    def test_round_trip(self):
        buf = encode_writes([(b"a", b"1"), (b"b", None)])
        self.assertEqual(buf, bytes([1, 2, 0, 0, 0, 0, 1, 0, 0, 0, 97, 1, 0, 0, 0, 49, 1, 1, 0, 0, 0, 98]))
        self.assertEqual(decode_writes(buf), [(b"a", b"1"), (b"b", None)])
        with self.assertRaisesRegex(WireError, r"^bad write tag at byte 5 \(item 0\)$"):
            decode_writes(b"\x01\x01\x00\x00\x00\x07")


if __name__ == "__main__":
    unittest.main()
