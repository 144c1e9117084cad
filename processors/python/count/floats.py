"""Decimal text of f64 values as Rust prints them, so that the port writes
the same bytes as the Rust processor."""

import math
from decimal import Decimal


def _shortest(x):
    """Shortest round-trip digits of a finite non-zero |x| and the position
    of the decimal point: |x| = 0.digits * 10**point."""
    _, digits, exponent = Decimal(repr(abs(x))).as_tuple()
    text = "".join(map(str, digits))
    stripped = text.rstrip("0")
    exponent += len(text) - len(stripped)
    stripped = stripped.lstrip("0")
    return stripped, len(stripped) + exponent


def rust_display(x):
    """``x`` as Rust's ``Display`` for f64 prints it: shortest round-trip
    digits, never an exponent (``1e21`` prints as ``1000000000000000000000``)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0"
    digits, point = _shortest(x)
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def zmij_format(x):
    """``x`` as the ``zmij`` crate (serde_json's float writer) formats it:
    shortest digits, plain notation for decimal exponents -5 to 15 (``100.0``,
    ``0.0001``), otherwise ``1.5e+300``, ``1e-7``."""
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0.0"
    digits, point = _shortest(x)
    exp = point - 1
    n = len(digits)
    if -5 <= exp <= 15:
        if n - 1 <= exp:
            return f"{sign}{digits}{'0' * (exp + 1 - n)}.0"
        if exp >= 0:
            return f"{sign}{digits[: exp + 1]}.{digits[exp + 1 :]}"
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    mantissa = digits if n == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{sign}{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp)}"
