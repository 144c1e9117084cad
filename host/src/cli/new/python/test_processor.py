import unittest

from partita.testing import Harness, TestRecord

from processor import Shout


class ShoutTest(unittest.TestCase):
    def test_shouts_and_rejects_empty_values(self):
        h = Harness(Shout, [("suffix", "?")])
        a, b = h.run([TestRecord(key="a", value="hi"), TestRecord(key="b", value="")])
        self.assertEqual(a.outputs[0].value, b"HI?")
        self.assertEqual(b.rejection, "empty value")


if __name__ == "__main__":
    unittest.main()
