"""Numbers in VNN-LIB text (1.0 and 2.0): ASCII decimal literals only, and finite in float64.

A number is an optional sign, ASCII digits with an optional fraction (``1``, ``-0.5``, ``200.``, ``.5``)
and an optional exponent (``1e-05``, ``1.5E+2``): the forms the benchmark files use, and a little more.
Python's ``float`` accepts much else (``nan``, ``inf``, ``1_000``, Arabic-Indic or full-width digits,
surrounding blanks), so nothing reaches it that :data:`NUMBER` has not matched; a literal beyond float64
(``1e400``) is out of range rather than infinity. Each rejection says why, for the caller's
:class:`~verifier.ir.errors.SpecError`.
"""
from __future__ import annotations

import math
import re

NUMBER_PATTERN = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"  # unambiguous: a failed match is linear
NUMBER = re.compile(NUMBER_PATTERN, re.ASCII)
_NOT_FINITE = frozenset({"nan", "inf", "infinity", "snan", "qnan"})
INF = float("inf")


def literal_value(s: str) -> float | None:
    """The value of the literal ``s``; None if ``s`` is not one (see :func:`why_not`)."""
    if NUMBER.fullmatch(s) is None:
        return None
    v = float(s)
    return None if v == INF or v == -INF else v


def why_not(s: str) -> str:
    """Why ``s`` is not a number, for an error message (``s`` is a token that :func:`literal_value` refused)."""
    shown = repr(s) if len(s) <= 60 else repr(s[:40]) + f"... ({len(s)} characters)"
    if NUMBER.fullmatch(s) is not None:
        return (f"number out of range: {s if len(s) <= 60 else shown} is beyond float64 (whose largest finite value "
                "is about 1.8e308)")
    if is_non_finite_word(s):
        return f"{shown} is not a valid number (VNN-LIB numbers are finite decimal literals such as -0.5 or 1e-05)"
    if any(not ch.isascii() and (ch.isdigit() or ch.isnumeric()) for ch in s):
        return f"{shown} is not a number: VNN-LIB numbers are written with the ASCII digits 0-9"
    if s[0] in "0123456789.+-":
        return f"bad number {shown}"
    return f"unknown symbol {shown}"


def is_non_finite_word(s: str) -> bool:
    """``s`` is a spelling of NaN or infinity (``nan``, ``-inf``, ``Infinity``): never a valid number."""
    return s.lstrip("+-").lower() in _NOT_FINITE


finite = math.isfinite  # arithmetic on numbers (a product of two large ones) may still overflow
