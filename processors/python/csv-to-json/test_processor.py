"""The cases of the Rust processor's tests (processors/csv-to-json), run on
the Python port."""

import unittest

from partita import InitError
from partita.testing import Harness, TestRecord

from processor import CsvToJson


def harness(config):
    return Harness(CsvToJson, config)


def json_of(h, line):
    return h.run_one(TestRecord(value=line)).outputs[0].value.decode()


def rejection(h, line):
    r = h.run_one(TestRecord(value=line))
    assert r.rejection is not None, f"expected a rejection for {line!r}, got {r}"
    return r.rejection


class CsvToJsonTest(unittest.TestCase):
    def test_parses_a_line_into_an_object_in_column_order_and_keeps_the_rest(self):
        h = harness([("columns", "id, name, amount"), ("numeric", "amount")])
        r = h.run_one(TestRecord(key="order-7", value="7,Ada Lovelace,12.50\r\n", headers=[("src", "legacy")], timestamp=42))
        o = r.outputs[0]
        self.assertEqual(o.value, b'{"id":"7","name":"Ada Lovelace","amount":12.50}')
        self.assertEqual((o.key, o.timestamp, o.output, o.headers), (b"order-7", 42, "default", [("src", b"legacy")]))

    def test_quoted_fields_hold_delimiters_quotes_and_line_breaks(self):
        h = harness([("columns", "a,b,c")])
        self.assertEqual(json_of(h, '"x, y","say ""hi""",""""'), '{"a":"x, y","b":"say \\"hi\\"","c":"\\""}')
        self.assertEqual(json_of(h, '"two\nlines",,""'), '{"a":"two\\nlines","b":"","c":""}')
        self.assertEqual(json_of(h, 'in"side,b,c'), '{"a":"in\\"side","b":"b","c":"c"}')

    def test_strings_are_escaped_as_json(self):
        self.assertEqual(json_of(harness([("columns", "t")]), "back\\slash\ttab\x01é€"), '{"t":"back\\\\slash\\ttab\\u0001é€"}')
        self.assertEqual(json_of(harness([("columns", 'we"ird')]), "v"), '{"we\\"ird":"v"}')

    def test_other_delimiters(self):
        self.assertEqual(json_of(harness([("columns", "a,b"), ("delimiter", ";")]), "1,5;x"), '{"a":"1,5","b":"x"}')
        self.assertEqual(json_of(harness([("columns", "a,b"), ("delimiter", "tab")]), '1\t"q"'), '{"a":"1","b":"q"}')
        self.assertEqual(json_of(harness([("columns", "a,b"), ("delimiter", "→")]), "1→2"), '{"a":"1","b":"2"}')

    def test_numbers_keep_their_digits_and_become_valid_json(self):
        h = harness([("columns", "n"), ("numeric", "n"), ("delimiter", ";")])
        for text, json in [
            ("12", "12"),
            ("+007.50", "7.50"),
            (" -0.5 ", "-0.5"),
            (".5", "0.5"),
            ("3.", "3"),
            ("000", "0"),
            ("1e3", "1e3"),
            ("-2.5E-03", "-2.5e-03"),
            ("123456789012345678901234567890", "123456789012345678901234567890"),
            ("", "null"),
            ("   ", "null"),
        ]:
            self.assertEqual(json_of(h, text), '{"n":%s}' % json, f"input `{text}`")
        for bad in ["12,5", "abc", "1e", "--1", "1.2.3", ".", "+", "0x10", "inf", "NaN", "1 2", "1_0", "١"]:
            self.assertEqual(rejection(h, bad), f"column `n` is not a number: `{bad}`", f"input `{bad}`")

    def test_malformed_lines_are_rejected_with_the_problem(self):
        h = harness([("columns", "id,name,amount"), ("numeric", "amount")])
        self.assertEqual(rejection(h, "1,Ada"), "expected 3 fields, found 2")
        self.assertEqual(rejection(h, "1,Ada,3,4"), "expected 3 fields, found 4")
        self.assertEqual(rejection(h, '1,"Ada,3'), "unterminated quote in field 2")
        self.assertEqual(rejection(h, '1,"Ada"x,3'), "unexpected character after the closing quote of field 2")
        self.assertEqual(rejection(h, b"1,\xff,3"), "value is not UTF-8: invalid byte at offset 2")
        self.assertEqual(rejection(h, "1,Ada,twelve"), "column `amount` is not a number: `twelve`")
        self.assertEqual(rejection(h, "1,Ada," + "x" * 50), "column `amount` is not a number: `%s`" % ("x" * 40))
        one = harness([("columns", "only")])
        self.assertEqual(rejection(one, "a,b"), "expected 1 field, found 2")
        self.assertEqual(one.run_one(TestRecord(key="k")).rejection, "record has no value")

    def test_skip_header_drops_the_header_line_only(self):
        h = harness([("columns", "id,amount"), ("numeric", "amount"), ("skip_header", "true")])
        rs = h.run([TestRecord(value="id,amount\n"), TestRecord(value='"id",amount'), TestRecord(value="1,2")])
        self.assertEqual(rs[0].outputs, [])
        self.assertEqual(rs[1].outputs, [])
        self.assertEqual(rs[2].outputs[0].value, b'{"id":"1","amount":2}')
        plain = harness([("columns", "id,amount"), ("numeric", "amount")])
        self.assertEqual(rejection(plain, "id,amount"), "column `amount` is not a number: `amount`")

    def test_bad_configuration_is_refused_naming_the_key(self):
        def err(config):
            with self.assertRaises(InitError) as ctx:
                Harness(CsvToJson, config)
            return str(ctx.exception)

        self.assertEqual(err([]), "config key `columns`: is required but missing")
        self.assertEqual(err([("columns", "")]), "config key `columns`: is required but empty")
        self.assertEqual(err([("columns", " , ")]), "config key `columns`: lists no column")
        self.assertEqual(err([("columns", "a,b,a")]), "config key `columns`: column `a` is listed twice")
        self.assertEqual(err([("columns", "a,b"), ("numeric", "c")]), "config key `numeric`: `c` is not one of the columns")
        self.assertEqual(err([("columns", "a"), ("delimiter", ";;")]), "config key `delimiter`: must be one character (or `tab`), found `;;`")
        self.assertEqual(err([("columns", "a"), ("delimiter", '"')]), 'config key `delimiter`: `"` cannot be a delimiter')
        self.assertEqual(
            err([("columns", "a"), ("skip_header", "yes")]),
            "config key `skip_header`: cannot parse `yes`: provided string was not `true` or `false`",
        )
        self.assertEqual(
            err([("columns", "a"), ("colums", "b")]),
            "config key `colums`: unknown key (known keys: columns, delimiter, numeric, skip_header)",
        )


if __name__ == "__main__":
    unittest.main()
