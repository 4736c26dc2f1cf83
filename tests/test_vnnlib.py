"""Tests of the VNN-LIB 1.0 reader (frontends/vnnlib/: sexpr.py, v1.py, dnf.py, files.py)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from frontends.vnnlib.sexpr import Comparisons, Source, read
from frontends.vnnlib.v1 import LEXICON as v1_lexicon
from frontends.vnnlib.v1 import load_vnnlib, parse_vnnlib
from verifier.ir.errors import SpecError
from verifier.settings.inputs import LimitSettings

BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"
# the VNN-LIB 1.0 benchmarks (vnncomp2024/ holds the general-operator benchmarks, not read here yet)
BENCH_FILES = sorted(p for p in BENCH.rglob("*") if p.name.endswith((".vnnlib", ".vnnlib.gz"))
                     and p.relative_to(BENCH).parts[0] != "vnncomp2024") if BENCH.is_dir() else []
needs_bench = pytest.mark.skipif(not BENCH.is_dir(), reason=f"benchmarks not found at {BENCH}")

HEAD = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n" \
       "(declare-const Y_1 Real)\n(declare-const Y_2 Real)\n"
BOX = "(assert (>= X_0 -1))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n(assert (<= X_1 2))\n"


def rows(dj) -> list[tuple[list[float], float]]:
    return [(list(c), float(v)) for c, v in zip(dj.C, dj.d)]


# --------------------------------------------------------------------------- benchmarks
@needs_bench
@pytest.mark.parametrize("path", BENCH_FILES, ids=lambda p: str(p.relative_to(BENCH)))
def test_every_benchmark_file_parses(path):
    spec = load_vnnlib(path)
    assert spec.n_inputs > 0 and spec.n_outputs > 0 and spec.disjuncts
    for dj in spec.disjuncts:
        assert dj.lo.shape == dj.hi.shape == (spec.n_inputs,)
        assert np.all(dj.lo <= dj.hi) and np.all(np.isfinite(dj.lo)) and np.all(np.isfinite(dj.hi))
        assert dj.C.shape == (dj.d.shape[0], spec.n_outputs)
    folder = path.relative_to(BENCH).parts[0]
    sizes = {"acasxu": (5, 5), "mnist_fc": (784, 10), "eran": (784, 10), "oval21": (3072, 10)}
    if folder in sizes:
        assert (spec.n_inputs, spec.n_outputs) == sizes[folder]
    if folder in ("mnist_fc", "eran", "oval21"):  # robustness: "some other class wins"
        assert len(spec.disjuncts) == 9 and len(spec.regions()) == 1
        assert all(dj.C.shape[0] == 1 and sorted(dj.C[0]) == [-1] + [0] * 8 + [1]
                   for dj in spec.disjuncts)


@needs_bench
def test_acasxu_structures():
    acas = BENCH / "acasxu" / "vnnlib"
    p1 = load_vnnlib(acas / "prop_1.vnnlib")  # names without .gz, as instances.csv does
    assert len(p1.disjuncts) == 1
    (dj,) = p1.disjuncts
    assert rows(dj) == [([-1, 0, 0, 0, 0], -3.991125645861615)]  # Y_0 >= 3.99...
    np.testing.assert_array_equal(dj.lo, [0.6, -0.5, -0.5, 0.45, -0.5])
    np.testing.assert_array_equal(dj.hi, [0.679857769, 0.5, 0.5, 0.5, -0.45])

    p2 = load_vnnlib(acas / "prop_2.vnnlib.gz")
    assert len(p2.disjuncts) == 1 and p2.disjuncts[0].C.shape == (4, 5)
    assert rows(p2.disjuncts[0])[0] == ([-1, 1, 0, 0, 0], 0.0)  # Y_1 <= Y_0

    p6 = load_vnnlib(acas / "prop_6.vnnlib.gz")  # 2 input boxes x 4 output disjuncts
    assert len(p6.disjuncts) == 8
    regions = p6.regions()
    assert [idx for _, _, idx in regions] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    (lo_a, hi_a, _), (lo_b, hi_b, _) = regions
    assert (lo_a[1], hi_a[1]) == (0.11140846, 0.499999896)
    assert (lo_b[1], hi_b[1]) == (-0.499999896, -0.11140846)
    assert all(dj.C.shape == (1, 5) for dj in p6.disjuncts)

    p7 = load_vnnlib(acas / "prop_7.vnnlib.gz")
    assert len(p7.disjuncts) == 2 and all(dj.C.shape == (3, 5) for dj in p7.disjuncts)
    assert len(p7.regions()) == 1


# --------------------------------------------------------------------------- semantics
def test_box_and_output_rows():
    spec = parse_vnnlib(HEAD + BOX + "(assert (<= Y_1 3))\n(assert (>= Y_2 -4e-1))\n"
                        "(assert (<= 2 Y_0))\n(assert (>= .5 Y_0))\n(assert (<= Y_1 Y_0))\n"
                        "(assert (>= Y_0 Y_2))\n")
    assert (spec.n_inputs, spec.n_outputs) == (2, 3)
    (dj,) = spec.disjuncts
    np.testing.assert_array_equal(dj.lo, [-1, 0])
    np.testing.assert_array_equal(dj.hi, [1, 2])
    assert rows(dj) == [([0, 1, 0], 3.0), ([0, 0, -1], 0.4), ([-1, 0, 0], -2.0),
                        ([1, 0, 0], 0.5), ([-1, 1, 0], 0.0), ([-1, 0, 1], 0.0)]
    assert dj.lo.dtype == dj.C.dtype == dj.d.dtype == np.float64


def test_numbers():
    spec = parse_vnnlib(HEAD + "(assert (>= X_0 -1e-5))(assert (<= X_0 +.5))\n"
                        "(assert (>= X_1 1.5E+2))(assert (<= X_1 200.))(assert (<= Y_0 -0))")
    (dj,) = spec.disjuncts
    np.testing.assert_array_equal(dj.lo, [-1e-5, 150])
    np.testing.assert_array_equal(dj.hi, [0.5, 200])


def test_or_of_and_and_later_asserts_join_every_disjunct():
    text = HEAD + BOX + """
    (assert (or
        (and (<= Y_1 Y_0) (<= Y_2 Y_0))   ; two rows
        (and (<= Y_0 1))
    ))
    (assert (<= Y_2 7))  ; after the or: goes into both disjuncts
    """
    spec = parse_vnnlib(text)
    assert len(spec.disjuncts) == 2
    assert rows(spec.disjuncts[0]) == [([0, 0, 1], 7.0), ([-1, 1, 0], 0.0), ([-1, 0, 1], 0.0)]
    assert rows(spec.disjuncts[1]) == [([0, 0, 1], 7.0), ([1, 0, 0], 1.0)]


def test_or_of_single_comparisons_nested_and_and_cross_product():
    text = HEAD + "(assert (and (and (>= X_0 0) (<= X_0 1)) (and (>= X_1 0) (<= X_1 1))))\n" \
                  "(assert (or (<= Y_0 1) (>= Y_1 2)))\n(assert (or (<= Y_2 3) (<= Y_2 4)))\n"
    spec = parse_vnnlib(text)
    assert [rows(dj) for dj in spec.disjuncts] == [
        [([1, 0, 0], 1.0), ([0, 0, 1], 3.0)], [([1, 0, 0], 1.0), ([0, 0, 1], 4.0)],
        [([0, -1, 0], -2.0), ([0, 0, 1], 3.0)], [([0, -1, 0], -2.0), ([0, 0, 1], 4.0)]]


def test_disjunct_local_input_boxes():
    text = HEAD + "(assert (>= X_1 0))(assert (<= X_1 5))(assert (>= X_0 -10))\n" \
                  "(assert (or (and (>= X_0 0) (<= X_0 1) (<= X_1 9))\n" \
                  "            (and (>= X_0 -1) (<= X_0 0) (<= X_1 3))\n" \
                  "            (and (>= X_0 4) (<= X_0 3))))  ; empty box: dropped\n" \
                  "(assert (or (<= Y_0 0) (<= Y_1 0)))\n"
    spec = parse_vnnlib(text)
    assert len(spec.disjuncts) == 4
    regions = spec.regions()
    assert len(regions) == 2
    np.testing.assert_array_equal(regions[0][0], [0, 0])
    np.testing.assert_array_equal(regions[0][1], [1, 5])  # top-level X_1 <= 5 is tighter
    np.testing.assert_array_equal(regions[1][0], [-1, 0])
    np.testing.assert_array_equal(regions[1][1], [0, 3])
    assert spec.disjuncts[0].lo is spec.disjuncts[1].lo  # one shared array per box


def test_an_empty_input_box_is_an_error_naming_the_input_and_the_line():
    """A lower bound above the upper bound empties the input set: a user mistake, not a proof (``unsat``)."""
    with pytest.raises(SpecError, match=r"^<string>:11: the input set is empty: X_0 >= 5.0 and X_0 <= 1.0"):
        parse_vnnlib(HEAD + BOX + "(assert (<= Y_0 0))\n(assert (>= X_0 5))")
    # every disjunct's own box empty (one of them alone is dropped, as test_disjunct_local_input_boxes shows)
    with pytest.raises(SpecError, match=r"^<string>:11: the input set is empty: the input box of each of the 2 "):
        parse_vnnlib(HEAD + BOX + "(assert (<= Y_0 0))\n(assert (or (and (>= X_0 4) (<= X_0 3)) (<= X_1 -1)))")


def test_linear_terms_and_equality():
    spec = parse_vnnlib(HEAD + "(assert (= X_0 0.25))(assert (>= X_1 0))(assert (<= (* 2 X_1) 1))\n"
                        "(assert (<= (+ Y_0 (* 2 Y_1)) (- 3)))\n(assert (>= (- Y_0 Y_1) (* -1 Y_0)))\n"
                        "(assert (<= (- Y_2) 1))")
    (dj,) = spec.disjuncts
    np.testing.assert_array_equal(dj.lo, [0.25, 0])
    np.testing.assert_array_equal(dj.hi, [0.25, 0.5])
    assert rows(dj) == [([1, 2, 0], -3.0), ([-2, 1, 0], 0.0), ([0, 0, -1], 1.0)]


def test_gzip_and_missing_gz_fallback(tmp_path):
    text = HEAD + BOX + "(assert (<= Y_0 Y_1))\n"
    gz = tmp_path / "p.vnnlib.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    magic_only = tmp_path / "q.vnnlib"  # gzip data without the suffix: found by magic bytes
    magic_only.write_bytes(gzip.compress(text.encode()))
    plain = tmp_path / "r.vnnlib"
    plain.write_text(text)
    for path in (gz, tmp_path / "p.vnnlib", magic_only, str(plain)):
        spec = load_vnnlib(path)
        assert len(spec.disjuncts) == 1 and rows(spec.disjuncts[0]) == [([1, -1, 0], 0.0)]
    assert load_vnnlib(tmp_path / "p.vnnlib").source == str(gz)
    with pytest.raises(SpecError, match="no such file"):
        load_vnnlib(tmp_path / "absent.vnnlib")


def test_network_sizes_checked():
    text = HEAD + BOX + "(assert (<= Y_0 0))"
    assert parse_vnnlib(text, n_inputs=2, n_outputs=3).n_inputs == 2
    with pytest.raises(SpecError, match="spec declares 3 outputs but the network has 10"):
        parse_vnnlib(text, n_outputs=10)


def test_disjunct_cap():
    """The cross product is counted before it is made, against limits.disjuncts (4^9 = 262144 here)."""
    text = HEAD + BOX + "(assert (or (<= Y_0 0) (<= Y_0 1) (<= Y_0 2) (<= Y_0 3)))\n" * 9
    with pytest.raises(SpecError, match="more than 100000 disjuncts .*cross product of 4 x 4 x 4 x 4 x 4 x 4 x 4 "
                       r"x 4 x 4.*limits.disjuncts is 100000; raise it with --set limits.disjuncts=262144") as e:
        parse_vnnlib(text, limits=LimitSettings(disjuncts=100_000))
    assert e.value.line == 10 + 8  # the assert whose expansion crosses the cap
    assert len(parse_vnnlib(HEAD + BOX + "(assert (or (<= Y_0 0) (<= Y_0 1)))\n" * 3).disjuncts) == 8


def flags(dj) -> tuple:
    """(strict rows, open lower bounds, open upper bounds) as lists of bools (all False when None)."""
    n = dj.lo.shape[0]
    return (dj.strict_rows().tolist(), [False] * n if dj.lo_open is None else dj.lo_open.tolist(),
            [False] * n if dj.hi_open is None else dj.hi_open.tolist())


# --------------------------------------------------------------------------- strict comparisons
def test_strict_comparisons_are_kept_on_rows_and_input_bounds():
    spec = parse_vnnlib(HEAD + "(assert (> X_0 -1))(assert (<= X_0 1))(assert (>= X_1 0))(assert (< X_1 2))\n"
                        "(assert (< Y_0 3))(assert (> Y_1 Y_2))(assert (<= Y_2 5))(assert (> 1 Y_0))")
    (dj,) = spec.disjuncts
    assert dj.lo.tolist() == [-1, 0] and dj.hi.tolist() == [1, 2]
    assert rows(dj) == [([1, 0, 0], 3.0), ([0, -1, 1], 0.0), ([0, 0, 1], 5.0), ([1, 0, 0], 1.0)]
    assert flags(dj) == ([True, True, False, True], [True, False], [False, True])
    assert dj.has_strict
    closed = parse_vnnlib(HEAD + BOX + "(assert (<= Y_0 3))").disjuncts[0]
    assert closed.strict is None and closed.lo_open is None and closed.hi_open is None and not closed.has_strict


def test_strict_general_forms_chains_and_equality():
    with pytest.raises(SpecError, match="X_1 has no lower bound"):  # -X_1 >= 0 bounds X_1 from above
        parse_vnnlib(HEAD + "(assert (> (* 2 X_0) 1))(assert (< X_0 5))(assert (>= (- X_1) 0))(assert (<= Y_0 0))")
    spec = parse_vnnlib(HEAD + "(assert (> (* 2 X_0) 1))(assert (< (* -4 X_0) -8))(assert (< X_0 5))\n"
                        "(assert (<= X_1 2))(assert (< (- X_1) 3))\n"
                        "(assert (< Y_0 Y_1 Y_2))(assert (= Y_0 (- 1)))(assert (< (- Y_0 Y_1) (+ 1 1)))")
    (dj,) = spec.disjuncts
    assert dj.lo.tolist() == [2, -3] and dj.hi.tolist() == [5, 2]  # -4 x < -8 is x > 2, tighter than 2 x > 1
    assert flags(dj)[1:] == ([True, True], [True, False])  # -X_1 < 3 is X_1 > -3
    assert rows(dj) == [([1, -1, 0], 0.0), ([0, 1, -1], 0.0), ([1, 0, 0], -1.0), ([-1, 0, 0], 1.0),
                        ([1, -1, 0], 2.0)]
    assert flags(dj)[0] == [True, True, False, False, True]  # '=' is two non-strict rows


@pytest.mark.parametrize("bounds,lo,hi,lo_open,hi_open", [
    ("(> X_0 1)(>= X_0 1)(<= X_0 4)", 1, 4, True, False),   # equal values: open wins over closed
    ("(>= X_0 1)(> X_0 1)(<= X_0 4)", 1, 4, True, False),   # in either order
    ("(> X_0 1)(>= X_0 2)(< X_0 4)(<= X_0 4)", 2, 4, False, True),  # the tighter bound wins
    ("(>= X_0 2)(> X_0 1)(<= X_0 3)(< X_0 4)", 2, 3, False, False),
    ("(> X_0 1)(> X_0 1.5)(< X_0 3)(< X_0 2)", 1.5, 2, True, True),
])
def test_bounds_on_one_input_combine_tighter_first_then_open(bounds, lo, hi, lo_open, hi_open):
    text = HEAD + "".join(f"(assert {b})" for b in bounds.replace(")(", ")\n(").splitlines()) + \
        "(assert (>= X_1 0))(assert (<= X_1 1))(assert (<= Y_0 0))"
    (dj,) = parse_vnnlib(text).disjuncts
    assert (dj.lo[0], dj.hi[0]) == (lo, hi)
    assert (flags(dj)[1][0], flags(dj)[2][0]) == (lo_open, hi_open)
    # the same bounds inside one disjunct of an 'or'
    local = HEAD + "(assert (>= X_1 0))(assert (<= X_1 1))\n(assert (or (and " + bounds + " (<= Y_0 0)) " \
        "(and (>= X_0 0) (<= X_0 9) (<= Y_1 0))))"
    dj = parse_vnnlib(local).disjuncts[0]
    assert (dj.lo[0], dj.hi[0], flags(dj)[1][0], flags(dj)[2][0]) == (lo, hi, lo_open, hi_open)


def test_a_box_emptied_by_an_open_bound_is_an_empty_set_not_an_error():
    """x > 1 and x <= 1 holds for no x: that disjunct is dropped; with every disjunct so, the spec has none
    (the unsafe set is empty: unsat). A lower bound above an upper bound stays an error (a user mistake)."""
    spec = parse_vnnlib(HEAD + "(assert (>= X_1 0))(assert (<= X_1 1))\n(assert (or\n"
                        " (and (> X_0 1) (<= X_0 1) (<= Y_0 0))\n (and (>= X_0 0) (< X_0 0) (<= Y_0 0))\n"
                        " (and (>= X_0 0) (<= X_0 1) (<= Y_1 0))))")
    (dj,) = spec.disjuncts
    assert rows(dj) == [([0, 1, 0], 0.0)]
    for top in ("(assert (> X_0 1))(assert (<= X_0 1))", "(assert (>= X_0 1))(assert (< X_0 1))",
                "(assert (> X_0 1))(assert (< X_0 1))"):
        spec = parse_vnnlib(HEAD + top + "(assert (>= X_1 0))(assert (<= X_1 1))(assert (<= Y_0 0))")
        assert spec.disjuncts == () and (spec.n_inputs, spec.n_outputs) == (2, 3)
    every = parse_vnnlib(HEAD + "(assert (>= X_1 0))(assert (<= X_1 1))\n(assert (or (and (> X_0 1) (<= X_0 1)) "
                         "(and (>= X_0 2) (< X_0 2))))\n(assert (<= Y_0 0))")
    assert every.disjuncts == ()
    with pytest.raises(SpecError, match=r"<string>:11: the input set is empty: X_0 >= 2.0 and X_0 <= 1.0"):
        parse_vnnlib(HEAD + BOX + "(assert (<= Y_0 0))\n(assert (> X_0 2))(assert (< X_0 1))")


def test_comparisons_without_variables_are_true_or_false():
    """(<= Y_0 Y_0) is 0 <= 0: true, no row; (< Y_0 Y_0) is false: its disjunct goes, and with it every
    disjunct of a top-level assert (no disjunct left: unsat)."""
    (dj,) = parse_vnnlib(HEAD + BOX + "(assert (<= Y_0 Y_0))").disjuncts
    assert dj.C.shape == (0, 3) and dj.d.shape == (0,)
    (dj,) = parse_vnnlib(HEAD + BOX + "(assert (<= Y_1 1))(assert (>= (- Y_0 Y_0) -1))").disjuncts
    assert rows(dj) == [([0, 1, 0], 1.0)]
    assert parse_vnnlib(HEAD + BOX + "(assert (< Y_0 Y_0))").disjuncts == ()
    assert parse_vnnlib(HEAD + BOX + "(assert (<= (+ Y_0 1) Y_0))").disjuncts == ()  # 1 <= 0
    spec = parse_vnnlib(HEAD + BOX + "(assert (or (and (< Y_0 Y_0) (<= Y_1 0)) (<= Y_2 0)))")
    assert [rows(dj) for dj in spec.disjuncts] == [[([0, 0, 1], 0.0)]]


def test_a_spec_without_output_constraints_has_disjuncts_without_rows():
    """Truncated after its input box: the unsafe set is the whole box (every point is a counterexample)."""
    (dj,) = parse_vnnlib(HEAD + BOX).disjuncts
    assert dj.C.shape == (0, 3) and dj.lo.tolist() == [-1, 0] and dj.hi.tolist() == [1, 2]


def test_blocks_of_comparisons_read_in_bulk_equal_the_token_by_token_reading():
    """An (and ...) of comparisons X_i/Y_j against numbers is read in one match (the big benchmark files); the
    same formula read token by token (a constant comparison in it defeats the bulk path) gives the same spec."""
    bulk = "(and (>= X_0 -1) (<= X_0 1)\n (>= X_1 0.5) (< X_1 2e0) (<= Y_0 -1e-05) (> Y_2 .5) (>= Y_1 3))"
    slow = bulk.replace("(<= Y_0", "(<= 1 2) (<= Y_0")
    for text, in_bulk in ((bulk, True), (slow, False)):
        (stmt,) = read(Source(f"(assert {text})", "<string>"), v1_lexicon)
        assert (type(stmt[2][2]) is Comparisons) == in_bulk
    a, b = (parse_vnnlib(HEAD + f"(assert (or {t} (and (>= X_0 5) (<= X_0 6) (>= X_1 0) (<= X_1 1) (<= Y_0 0))))")
            for t in (bulk, slow))
    assert len(a.disjuncts) == len(b.disjuncts) == 2
    for x, y in zip(a.disjuncts, b.disjuncts):
        assert rows(x) == rows(y) and flags(x) == flags(y)
        assert x.lo.tolist() == y.lo.tolist() and x.hi.tolist() == y.hi.tolist()
    assert flags(a.disjuncts[0]) == ([False, True, False], [False, False], [False, True])
    # an error inside a block names its own line
    with pytest.raises(SpecError, match=r"^<string>:9: undeclared variable Y_9"):
        parse_vnnlib(HEAD + "(assert (and (>= X_0 -1) (<= X_0 1)\n(>= X_1 0) (<= X_1 1)\n (<= Y_0 0)\n"
                     " (<= Y_9 0) (<= Y_1 0)))")
    with pytest.raises(SpecError, match=r"^<string>:7: number out of range: 1e400"):
        parse_vnnlib(HEAD + "(assert (and (>= X_0 -1) (<= X_0 1)\n(>= X_1 0) (<= X_1 1e400)))")


# --------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("token,fragment", [
    ("\u0663", "'\u0663' is not a number: VNN-LIB numbers are written with the ASCII digits 0-9"),  # Arabic-Indic 3
    ("\uff13", "is not a number: VNN-LIB numbers are written with the ASCII digits 0-9"),  # full-width 3
    ("1\u0663", "is not a number"), ("-\u0663.5", "is not a number"),
    ("1e400", "number out of range: 1e400 is beyond float64"), ("-2.5E+999", "number out of range: -2.5E+999"),
    ("nan", "'nan' is not a valid number"), ("NaN", "'NaN' is not a valid number"), ("inf", "'inf' is not a valid"),
    ("-inf", "'-inf' is not a valid number"), ("+Infinity", "is not a valid number"),
    ("1_000", "bad number '1_000'"), ("0x1p3", "bad number"), ("1.2.3", "bad number '1.2.3'"),
    ("1" * 20000 + "x", "bad number"),  # a long malformed token: a linear rejection (no regex blow-up)
], ids=lambda v: v if len(v) < 40 else v[:10] + "...")
def test_only_ascii_finite_decimal_literals_are_numbers(token, fragment):
    for text in (HEAD + BOX + f"(assert (>= X_0 {token}))", HEAD + BOX + f"(assert (<= (+ Y_0 Y_1) {token}))",
                 HEAD + BOX + f"(assert (and (<= Y_0 0) (>= Y_1 {token})))"):
        with pytest.raises(SpecError) as e:
            parse_vnnlib(text, "n.vnnlib")
        assert e.value.line == 10 and fragment in str(e.value), str(e.value)[:300]


def test_arithmetic_that_overflows_is_an_error():
    with pytest.raises(SpecError, match="out of float64's range"):
        parse_vnnlib(HEAD + BOX + "(assert (<= (* 1e300 1e300 Y_0) 1))")
    with pytest.raises(SpecError, match="bound of X_0 is out of float64's range"):
        parse_vnnlib(HEAD + "(assert (<= (* 1e-300 X_0) 1e300))(assert (>= X_0 0))(assert (>= X_1 0))"
                     "(assert (<= X_1 1))")


# --------------------------------------------------------------------------- errors
ERRORS = [  # (name, text, line, message fragment)
    ("open", HEAD + BOX + "(assert (or (<= Y_0 0)\n  (<= Y_1 0))\n", 10, "missing ')' for the '(' opened at line 10"),
    ("open_then_more", HEAD + "(assert (>= X_0 0)\n" + BOX, 6, "missing ')'"),
    ("close", HEAD + BOX + "(assert (<= Y_0 0)))\n", 10, "unexpected ')'"),
    ("undeclared", HEAD + BOX + "(assert (or\n (<= Y_0 0)\n (<= Y_7 0)))\n", 12, "undeclared variable Y_7"),
    ("missing_bound", HEAD + "(assert (>= X_0 -1))(assert (<= X_0 1))(assert (>= X_1 0))",
     2, "X_1 has no upper bound"),
    ("bad_number", HEAD + BOX + "(assert (<= Y_0\n 1.2.3))", 11, "bad number '1.2.3'"),
    ("unknown_op", HEAD + BOX + "(assert (max Y_0 Y_1))", 10, "unknown operator 'max'"),
    ("unknown_symbol", HEAD + BOX + "(assert (<= Y_0 foo))", 10, "unknown symbol 'foo'"),
    ("x_vs_x", HEAD + BOX + "; c\n(assert (<= X_0 X_1))", 11, "X_0 and X_1"),
    ("mixed", HEAD + BOX + "(assert (<= X_0 Y_1))", 10, "mixes inputs and outputs"),
    ("type", "(declare-const X_0 Int)", 1, "only Real"),
    ("gap", "(declare-const X_0 Real)\n(declare-const X_2 Real)\n(declare-const Y_0 Real)\n"
     "(assert (<= Y_0 0))", 2, "X_1 is not declared"),
    ("empty", "; nothing here\n", None, "empty file"),
    ("no_assert", HEAD, None, "no assertions"),
    ("command", HEAD + "(define-fun f () Real 1)", 6, "unknown command 'define-fun'"),
    ("twice", HEAD + "(declare-const Y_1 Real)\n" + BOX, 6, "Y_1 is declared twice"),
    ("assert_arity", HEAD + BOX + "(assert (<= Y_0 0) (<= Y_1 0))", 10, "assert takes exactly one formula"),
    ("assert_empty", HEAD + BOX + "(assert)", 10, "assert takes exactly one formula"),
    ("compare_arity", HEAD + BOX + "(assert (<= Y_0))", 10, "'<=' needs at least two operands"),
    ("strict_arity", HEAD + BOX + "(assert\n (> Y_0))", 11, "'>' needs at least two operands"),
    ("declare_arity", "(declare-const X_0)\n", 1, "expected (declare-const NAME Real)"),
    ("huge_index", HEAD + "(declare-const X_123456789012345678901234567890 Real)", 6, "unsupported variable name"),
    ("unknown_name", HEAD + BOX + "(assert (<= Z_0 0))", 10, "unknown symbol 'Z_0'"),
    ("not_equal", HEAD + BOX + "(assert (!= Y_0 0))", 10, "unknown operator '!='"),
    ("nbsp", HEAD + BOX + "(assert (<=\u00a0Y_0 0))", 10, "unknown operator"),  # a non-ASCII blank separates nothing
]


@pytest.mark.parametrize("name,text,line,fragment", ERRORS, ids=[e[0] for e in ERRORS])
def test_malformed_file(tmp_path, name, text, line, fragment):
    path = tmp_path / f"bad_{name}.vnnlib"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as e:
        load_vnnlib(path)
    assert e.value.line == line
    assert f"bad_{name}.vnnlib" in str(e.value) and fragment in str(e.value)
    if line is not None:
        assert f":{line}:" in str(e.value)


def test_dimension_mismatch_names_file_and_line(tmp_path):
    path = tmp_path / "dims.vnnlib"
    path.write_text(HEAD + BOX + "(assert (<= Y_0 0))")
    with pytest.raises(SpecError, match="spec declares 2 inputs but the network has 785") as e:
        load_vnnlib(path, n_inputs=785)
    assert "dims.vnnlib" in str(e.value) and e.value.line == 2  # last X declaration
