"""The cases of the Rust processor's tests (processors/count), run on the
Python port, plus the serde_json messages it reproduces."""

import struct
import unittest

from partita import InitError
from partita.testing import Harness, TestRecord

from floats import rust_display, zmij_format
from processor import Count, number
from serde_json import JsonError, parse_object, to_json


def rec(key, value):
    return TestRecord(key=key, value=value)


def values(results):
    return [r.outputs[0].value.decode() for r in results]


def stored(h, key):
    b = h.state(key)
    assert len(b) == 16
    return struct.unpack("<Qd", b)


class CountTest(unittest.TestCase):
    def test_counts_and_sums_per_key_across_batches(self):
        h = Harness(Count)
        first = h.run([rec("a", "10"), rec("b", "1.5"), rec("a", " 5 \n")])
        self.assertEqual(
            values(first),
            ['{"key":"a","count":1,"sum":10}', '{"key":"b","count":1,"sum":1.5}', '{"key":"a","count":2,"sum":15}'],
        )
        self.assertEqual(first[0].outputs[0].key, b"a", "the record key is kept")
        second = h.run([rec("a", "-20.25"), rec("b", "1e2")])
        self.assertEqual(values(second), ['{"key":"a","count":3,"sum":-5.25}', '{"key":"b","count":2,"sum":101.5}'])
        self.assertEqual(stored(h, "a"), (3, -5.25))
        self.assertEqual(stored(h, "b"), (2, 101.5))

    def test_one_state_read_per_key_and_one_write_per_batch(self):
        h = Harness(Count)
        h.run([rec("xy"[i % 2], "1") for i in range(100)])
        h.run([rec("xy"[i % 2], "1") for i in range(100)])
        self.assertEqual((h.calls.state_gets, h.calls.state_write_batches), (2, 2))
        self.assertEqual(stored(h, "x"), (100, 100.0))

    def test_totals_survive_a_fresh_instance_and_restored_state_continues(self):
        h = Harness(Count)
        h.run([rec("k", "2"), rec("k", "3")])
        h.restart()
        self.assertEqual(values(h.run([rec("k", "4")])), ['{"key":"k","count":3,"sum":9}'])
        h.set_state("r", struct.pack("<Qd", 41, 0.5))
        self.assertEqual(values(h.run([rec("r", "1")])), ['{"key":"r","count":42,"sum":1.5}'])

    def test_keys_are_escaped_and_sums_printed_exactly(self):
        h = Harness(Count)
        rs = h.run([rec('q"uote', "0.1"), rec('q"uote', "0.2"), rec("big", "1e300"), rec("int", "9007199254740993"), rec("c\b", "1")])
        self.assertEqual(
            values(rs),
            [
                '{"key":"q\\"uote","count":1,"sum":0.1}',
                '{"key":"q\\"uote","count":2,"sum":0.30000000000000004}',
                '{"key":"big","count":1,"sum":1%s}' % ("0" * 300),
                '{"key":"int","count":1,"sum":9007199254740992}',
                '{"key":"c\\u0008","count":1,"sum":1}',
            ],
        )

    def test_field_mode_reads_a_json_field(self):
        h = Harness(Count, [("field", "amount")])
        rs = h.run(
            [
                rec("c1", '{"amount": 12.5, "id": 1}'),
                rec("c1", '{"amount": "7.5"}'),
                rec("c1", '{"id": 3}'),
                rec("c1", '{"amount": true}'),
                rec("c1", '{"amount": "lots"}'),
                rec("c1", "12"),
            ]
        )
        self.assertEqual(rs[0].outputs[0].value, b'{"key":"c1","count":1,"sum":12.5}')
        self.assertEqual(rs[1].outputs[0].value, b'{"key":"c1","count":2,"sum":20}')
        self.assertEqual(rs[2].rejection, "value has no field `amount`")
        self.assertEqual(rs[3].rejection, "field `amount` is not a number: `true`")
        self.assertEqual(rs[4].rejection, 'field `amount` is not a number: `"lots"`')
        self.assertEqual(rs[5].rejection, "value is not a JSON object: invalid type: integer `12`, expected a map at line 1 column 2")
        self.assertEqual(stored(h, "c1"), (2, 20.0), "rejected records do not count")

    def test_records_that_cannot_be_counted_are_rejected_with_a_reason(self):
        h = Harness(Count)
        rs = h.run(
            [
                TestRecord(value="1"),
                TestRecord(key=b"k\xff", value="1"),
                TestRecord(key="k"),
                rec("k", "twelve"),
                rec("k", "NaN"),
                rec("k", "inf"),
                TestRecord(key="k", value=b"\xff"),
            ]
        )
        self.assertEqual(
            [r.rejection for r in rs],
            [
                "record has no key",
                "key is not UTF-8: invalid byte at offset 1",
                "record has no value",
                "value is not a number: `twelve`",
                "value is not a number: `NaN`",
                "value is not a number: `inf`",
                "value is not a number: not UTF-8 at offset 0",
            ],
        )
        self.assertIsNone(h.state("k"))

    def test_overflow_and_foreign_state_are_rejected(self):
        h = Harness(Count)
        rs = h.run([rec("k", "1.5e308"), rec("k", "1.5e308")])
        self.assertEqual(rs[1].rejection, "the sum of key `k` would overflow")
        self.assertEqual(stored(h, "k"), (1, 1.5e308), "the rejected record left the totals alone")
        h.set_state("odd", "12345")
        h.restart()
        self.assertEqual(h.run_one(rec("odd", "1")).rejection, "state for key `odd` is 5 bytes, expected 16")

    def test_numbers_with_leading_zeros_signs_and_exponents(self):
        for text, n in [
            ("0" * 97 + "123", 123.0),
            ("000", 0.0),
            ("-007.5", -7.5),
            ("+00.25", 0.25),
            (".5", 0.5),
            ("0e5", 0.0),
            ("12e-1", 1.2),
            ("  42\n", 42.0),
            ("-0", -0.0),
            ("+-5", None),
            ("--5", None),
            ("-", None),
            ("", None),
            ("00inf", None),
            ("inf", None),
            ("1e400", None),
            ("0x1A", None),
            ("1_000", None),
            ("١", None),
            ("\u2003 1", None),
            ("\x0b1", None),
            ("\x0c1\r", 1.0),
        ]:
            self.assertEqual(number(text), n, f"`{text}`")

    def test_keys_with_control_characters_are_escaped(self):
        h = Harness(Count)
        r = h.run_one(rec("a\\b\n\t\x01é", "1"))
        self.assertEqual(r.outputs[0].value.decode(), '{"key":"a\\\\b\\n\\t\\u0001é","count":1,"sum":1}')

    def test_negative_integral_sums_are_printed_as_integers(self):
        h = Harness(Count)
        self.assertEqual(values(h.run([rec("k", "-0003"), rec("k", "1")])), ['{"key":"k","count":1,"sum":-3}', '{"key":"k","count":2,"sum":-2}'])

    def test_configuration(self):
        Harness(Count, [("cache_entries", "10")])
        with self.assertRaisesRegex(InitError, r"^config key `cache_entries`: cannot parse `ten`: invalid digit found in string$"):
            Harness(Count, [("cache_entries", "ten")])
        with self.assertRaisesRegex(InitError, r"^config key `fields`: unknown key \(known keys: field, cache_entries\)$"):
            Harness(Count, [("fields", "a")])


class SerdeJsonTest(unittest.TestCase):
    def test_errors_read_as_serde_json_words_them(self):
        def err(data):
            try:
                parse_object(data if isinstance(data, bytes) else data.encode())
            except JsonError as e:
                return str(e)
            return "parsed"

        # Each expected message was produced by serde_json 1.0.154.
        for text, message in [
            ("", "EOF while parsing a value at line 1 column 0"),
            ("12", "invalid type: integer `12`, expected a map at line 1 column 2"),
            ("1e2", "invalid type: floating point `100.0`, expected a map at line 1 column 3"),
            ('"a\\nb"', 'invalid type: string "a\\nb", expected a map at line 1 column 6'),
            ("null", "invalid type: null, expected a map at line 1 column 4"),
            ("[1]", "invalid type: sequence, expected a map at line 1 column 0"),
            ("18446744073709551616", "invalid type: floating point `1.8446744073709552e+19`, expected a map at line 1 column 20"),
            ('{"a" 1}', "expected `:` at line 1 column 6"),
            ('{"a":1,}', "trailing comma at line 1 column 8"),
            ('{"a":1 "b":2}', "expected `,` or `}` at line 1 column 8"),
            ("{1:2}", "key must be a string at line 1 column 2"),
            ('{"a":1}x', "trailing characters at line 1 column 8"),
            ('{"a":01}', "invalid number at line 1 column 7"),
            ('{"a":"\\u00zz"}', "invalid escape at line 1 column 12"),
            ('{"a":"\\ud800"}', "unexpected end of hex escape at line 1 column 13"),
            ('{"a":"b\n"}', "control character (\\u0000-\\u001F) found while parsing a string at line 2 column 0"),
            ('{"a":1e999}', "number out of range at line 1 column 10"),
            (b'{"a":"\xff"}', "invalid unicode code point at line 1 column 7"),
            (b'{"\xe2\x82":1}', "invalid unicode code point at line 1 column 3"),
        ]:
            self.assertEqual(err(text), message, f"input {text!r}")

    def test_values_are_written_back_as_serde_json_writes_them(self):
        v = parse_object(b'{"z":[1,-2,1.5,1e21,1e-7,0.0001,-0,"t\\u0001"],"a":{"b":null},"\xc3\xa9":true,"b":100.0}')
        self.assertEqual(to_json(v), '{"a":{"b":null},"b":100.0,"z":[1,-2,1.5,1e+21,1e-7,0.0001,-0.0,"t\\u0001"],"é":true}')
        self.assertEqual(
            [zmij_format(x) for x in (123456.0, 1e15, 1e16, 1.5e300, 0.00001, 0.000001)],
            ["123456.0", "1000000000000000.0", "1e+16", "1.5e+300", "0.00001", "1e-6"],
        )
        self.assertEqual([rust_display(x) for x in (1e21, 1e-7, -2.5)], ["1000000000000000000000", "0.0000001", "-2.5"])


if __name__ == "__main__":
    unittest.main()
