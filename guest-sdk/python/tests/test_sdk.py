"""The Python helper as a processor author sees it, run through the same
export a component uses, with the stand-in host of partita.testing."""

import unittest

import partita
from partita import Config, ConfigError, InitError, Reject, log, state, tables
from partita.record import Record
from partita.testing import Harness, TestRecord
from partita.wire import BatchReader, decode_results, encode_batch


class Shout(partita.Processor):
    """Upper-cases values and counts records per key in state."""

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


class Forward(partita.Processor):
    def process(self, record, out):
        out.forward()


class ProcessTest(unittest.TestCase):
    def test_records_in_order_and_state_reaches_the_host_once_per_batch(self):
        h = Harness(Shout, [("suffix", "?")])
        rs = h.run(
            [
                TestRecord(key="a", value="hi"),
                TestRecord(key="a", value=""),
                TestRecord(key="a", value="yo", headers=[("h", "1")], timestamp=42),
            ]
        )
        self.assertEqual(rs[0].outputs[0].value, b"HI?")
        self.assertEqual(rs[1].rejection, "empty value")
        o = rs[2].outputs[0]
        self.assertEqual((o.output, o.key, o.value, o.headers, o.timestamp), ("default", b"a", b"YO?", [("h", b"1")], 42))
        self.assertEqual(h.state("a"), (2).to_bytes(8, "little"))
        self.assertEqual(h.calls.state_write_batches, 1)
        self.assertEqual(h.calls.state_gets, 1, "the second and third reads hit the cache")

    def test_state_survives_a_restart_through_the_host(self):
        h = Harness(Shout)
        h.run([TestRecord(key="k", value="x")])
        h.restart()
        h.run([TestRecord(key="k", value="y")])
        self.assertEqual(h.state("k"), (2).to_bytes(8, "little"))
        self.assertEqual(h.calls.state_gets, 2, "a fresh instance reads again")

    def test_a_reject_discards_outputs_and_misuse_rejects_with_a_reason(self):
        class Router(partita.Processor):
            def outputs(self):
                return ["main", "side"]

            def process(self, record, out):
                v = record.value_str()
                out.forward()
                if v == "bad":
                    raise Reject("no thanks")
                if v == "index":
                    out.emit(5, value="x")
                if v == "name":
                    out.emit("nope")
                if v == "side":
                    out.emit("side", key=None, value="S", headers=[("n", "v")], timestamp=3)

        h = Harness(Router)
        rs = h.run([TestRecord(value=v, key="k") for v in ("bad", "index", "name", "side")])
        self.assertEqual(rs[0].rejection, "no thanks")
        self.assertEqual(
            rs[1].rejection, "output index 5 is out of range: the processor declared 2 output(s) (main, side)"
        )
        self.assertEqual(rs[2].rejection, "unknown output `nope`: the processor declared 2 output(s) (main, side)")
        fwd, side = rs[3].outputs
        self.assertEqual((fwd.output, fwd.key, fwd.value), ("main", b"k", b"side"))
        self.assertEqual((side.output, side.key, side.value, side.headers, side.timestamp), ("side", None, b"S", [("n", b"v")], 3))

    def test_text_accessors_reject_missing_and_invalid_utf8(self):
        class Text(partita.Processor):
            def process(self, record, out):
                out.value(record.key_str() + record.value_str())

        h = Harness(Text)
        rs = h.run([TestRecord(value="v"), TestRecord(key="k"), TestRecord(key="k", value=b"ab\xff")])
        self.assertEqual(
            [r.rejection for r in rs],
            ["record has no key", "record has no value", "value is not UTF-8: invalid byte at offset 2"],
        )

    def test_an_exception_that_is_not_a_reject_is_logged_and_traps(self):
        class Buggy(partita.Processor):
            def process(self, record, out):
                if record.value == b"crash":
                    raise KeyError("missing")

        h = Harness(Buggy)
        with self.assertRaises(KeyError):
            h.run([TestRecord(value="fine"), TestRecord(value="crash")])
        self.assertEqual(len(h.logs), 1)
        level, message = h.logs[0]
        self.assertEqual(level, "error")
        self.assertTrue(message.startswith("process: record at offset 1 of input/0: Traceback"), message)
        self.assertIn("KeyError: 'missing'", message)

    def test_malformed_batch_header_traps_and_bad_records_are_rejected(self):
        h = Harness(Forward)
        with self.assertRaisesRegex(RuntimeError, "cannot read the batch header the host sent: unsupported layout version at byte 0"):
            h.run_encoded(b"\x09")
        good = encode_batch([Record("t", 0, i, 0, None, v, []) for i, v in enumerate((b"a", b"b", b"c"))])
        # Each record takes 41 bytes: cut into the second one.
        rs = decode_results(h.run_encoded(good[:-60]), 3, 1)
        self.assertEqual(len(rs[0][1]), 1)
        self.assertRegex(rs[1][1], r"^malformed batch: truncated \w+ at byte \d+ \(item 1\)$")
        self.assertEqual(rs[2], rs[1])

    def test_whole_batch_is_one_buffer(self):
        h = Harness(Forward)
        buf = encode_batch([Record("t", 1, i, i, None, b"v%d" % i, []) for i in range(1000)])
        self.assertEqual(BatchReader(buf).count, 1000)
        self.assertEqual(len(h.run_encoded(buf)), 5 + 22 * 1000)


class InitTest(unittest.TestCase):
    def test_refusals_carry_the_reason(self):
        with self.assertRaisesRegex(InitError, r"^config key `sufix`: unknown key \(known keys: suffix\)$"):
            Harness(Shout, [("sufix", "?")])

        class TwoSame(partita.Processor):
            def outputs(self):
                return ["a", "a"]

        with self.assertRaisesRegex(InitError, "^output `a` is declared twice$"):
            Harness(TwoSame)

        class Blank(partita.Processor):
            def outputs(self):
                return ["ok", ""]

        with self.assertRaisesRegex(InitError, "^output 1 has an empty name$"):
            Harness(Blank)

        class Crashes(partita.Processor):
            def __init__(self, config):
                raise ValueError("boom")

        h = None
        with self.assertRaisesRegex(InitError, "^boom$"):
            h = Harness(Crashes)
        self.assertIsNone(h)

    def test_config_helpers_word_errors_as_rust_does(self):
        c = Config(
            [
                ("a", "1"),
                ("a", " 2 "),
                ("blank", " \u2003 "),
                ("list", "x, y,,z\xa0"),
                ("flag", " true"),
                ("bad", "1.5"),
                ("neg", "-3"),
                ("empty", ""),
            ]
        )
        self.assertEqual(c.get("a"), " 2 ")
        self.assertEqual(c.int("a", 0), 2)
        self.assertEqual(c.int("missing", 7), 7)
        self.assertEqual(c.int("neg", 0), -3)
        cases = [
            (lambda: c.int("bad", 0), "config key `bad`: cannot parse `1.5`: invalid digit found in string"),
            (lambda: c.int("empty", 0), "config key `empty`: cannot parse ``: cannot parse integer from empty string"),
            (lambda: c.int("neg", 0, min=0), "config key `neg`: cannot parse `-3`: invalid digit found in string"),
            (lambda: c.int("a", 0, max=1), "config key `a`: cannot parse ` 2 `: number too large to fit in target type"),
            (lambda: c.int("neg", 0, min=-2), "config key `neg`: cannot parse `-3`: number too small to fit in target type"),
            (lambda: c.require("missing"), "config key `missing`: is required but missing"),
            (lambda: c.require("blank"), "config key `blank`: is required but empty"),
            (lambda: c.bool("a", False), "config key `a`: cannot parse ` 2 `: provided string was not `true` or `false`"),
        ]
        for call, message in cases:
            with self.assertRaises(ConfigError) as ctx:
                call()
            self.assertEqual(str(ctx.exception), message)
        self.assertEqual(c.list("list"), ["x", "y", "z"])
        self.assertIsNone(c.list("missing"))
        self.assertTrue(c.bool("flag", False))

    def test_trim_removes_what_rust_trims(self):
        self.assertEqual(partita.trim("\x85 a b\u3000\t"), "a b")
        self.assertEqual(partita.trim("\x1fa"), "\x1fa")


class StateTest(unittest.TestCase):
    def test_cache_update_delete_scan_and_typed_values(self):
        class Store(partita.Processor):
            def process(self, record, out):
                op = record.value_str()
                if op == "fill":
                    state.put("a1", "x")
                    state.put("a2", "y")
                    state.put(b"b1", "z")
                    state.put_f64("f", 1.5)
                    state.put_i64("i", -3)
                    state.put_str("s", "hé")
                    state.update("n", lambda v: "1" if v is None else None)
                elif op == "scan":
                    got = [f"{k.decode()}={v.decode()}" for k, v in state.scan("a", "b", 10)]
                    raise Reject(",".join(got))
                elif op == "typed":
                    raise Reject(f"{state.get_f64('f')} {state.get_i64('i')} {state.get_str('s')} {state.get_u64('none')}")
                elif op == "delete":
                    state.delete("a1")
                    if state.get("a1") is not None:
                        raise Reject("still there")

        h = Harness(Store)
        h.run([TestRecord(value="fill")])
        self.assertEqual(h.calls.state_write_batches, 1)
        self.assertEqual((h.state("n"), h.state("b1")), (b"1", b"z"))
        rs = h.run([TestRecord(value=v) for v in ("scan", "typed", "delete")])
        self.assertEqual(rs[0].rejection, "a1=x,a2=y")
        self.assertEqual(rs[1].rejection, "1.5 -3 hé None")
        self.assertEqual(rs[2].outputs, [])
        self.assertIsNone(h.state("a1"), "the delete reached the host")

    def test_state_errors_name_key_type_and_problem(self):
        class Bad(partita.Processor):
            def process(self, record, out):
                state.put("k", "abc")
                state.put("t", b"\xff")
                try:
                    state.get_u64("k") if record.value == b"u64" else state.get_str("t")
                except state.StateError as e:
                    raise Reject(str(e)) from e

        h = Harness(Bad)
        rs = h.run([TestRecord(value="u64"), TestRecord(value="str")])
        self.assertEqual(rs[0].rejection, "state under key `k` is not a valid u64: expected 8 bytes, found 3")
        self.assertEqual(rs[1].rejection, "state under key `t` is not a valid String: invalid UTF-8 at offset 0")

    def test_eviction_down_to_three_quarters_keeping_pending_writes(self):
        class Many(partita.Processor):
            def __init__(self, config):
                state.set_cache_limits(max_entries=8)

            def process(self, record, out):
                if record.value == b"fill":
                    for i in range(20):
                        state.put(bytes([i]), bytes([i]))
                    if state.cache_stats()["entries"] != 20:
                        raise Reject("pending writes were evicted")
                else:
                    for i in range(20):
                        if state.get(bytes([i])) != bytes([i]):
                            raise Reject(f"lost {i}")

        h = Harness(Many)
        self.assertEqual(h.run_one(TestRecord(value="fill")).outputs, [])
        self.assertEqual(state.cache_stats()["entries"], 6)
        self.assertEqual(state.cache_stats()["bytes"], 6 * (2 + 64))
        self.assertEqual(h.run_one(TestRecord(value="read")).outputs, [])
        self.assertEqual(h.calls.state_gets, 14, "evicted entries are read back from the host")


class HostTest(unittest.TestCase):
    def test_tables_and_log_reach_the_host(self):
        class Enrich(partita.Processor):
            def process(self, record, out):
                name = tables.lookup_str("customers", record.key)
                if name is None:
                    log.warn(f"unknown customer {record.key_str()}")
                    raise Reject("unknown customer")
                out.value(name)

        h = Harness(Enrich)
        h.set_table("customers", "c1", "Ada")
        h.set_table("customers", "c2", b"\xc3")
        rs = h.run([TestRecord(key=k) for k in ("c1", "c9", "c2")])
        self.assertEqual(rs[0].outputs[0].value, b"Ada")
        self.assertEqual(rs[1].rejection, "unknown customer")
        self.assertEqual(rs[2].rejection, "table `customers` value for key `c2` is not UTF-8 (invalid byte at offset 0)")
        self.assertEqual(h.logs, [("warn", "unknown customer c9")])

    def test_on_timer_emits_absent_fields_and_refuses_forward(self):
        class Ticker(partita.Processor):
            def process(self, record, out):
                pass

            def on_timer(self, stream_time, wall_time, out):
                out.emit(key="tick", value=str(wall_time - stream_time))
                out.forward()
                out.emit(value="late", timestamp=5)

        h = Harness(Ticker)
        os_ = h.timer(1000, 1500)
        self.assertEqual(len(os_), 2)
        self.assertEqual((os_[0].key, os_[0].value, os_[0].timestamp, os_[0].headers), (b"tick", b"500", 1000, []))
        self.assertEqual((os_[1].key, os_[1].value, os_[1].timestamp), (None, b"late", 5))
        self.assertEqual(len(h.logs), 1)
        self.assertTrue(h.logs[0][1].startswith("on_timer: forward has no input record"))


if __name__ == "__main__":
    unittest.main()
