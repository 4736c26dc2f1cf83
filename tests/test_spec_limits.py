"""What a spec may ask of the machine (``limits.*``: nesting depth, text size, tensor elements, disjuncts, the
memory of the disjuncts) and the deadline while it is read (frontends/vnnlib/: sexpr.py, files.py, dnf.py,
v2_network.py; verifier/api/run.py turns an expired deadline into the verdict ``timeout``)."""
from __future__ import annotations

import gzip
import resource
from pathlib import Path

import pytest

from frontends.vnnlib.v1 import load_vnnlib, parse_vnnlib
from frontends.vnnlib.v2 import load_spec, parse_vnnlib2
from verifier.ir.deadline import Deadline
from verifier.ir.errors import DeadlineExpired, SpecError
from verifier.settings.inputs import LimitSettings

ROOT = Path(__file__).resolve().parents[1]
HEAD = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
BOX = "(assert (>= X_0 -1))\n(assert (<= X_0 1))\n"
V2_HEAD = "(vnnlib-version <2.0>)\n(declare-network N\n  (declare-input X Real [1])\n  (declare-output Y Real [2]))\n"
V2_BOX = "(assert (and (>= X[0] -1) (<= X[0] 1)))\n"


def nested(depth: int, leaf: str = "(<= Y_0 0)") -> str:
    """``(or (and (or ... leaf)))``, ``depth`` levels of or / and around ``leaf``."""
    return "".join("(or " if k % 2 == 0 else "(and " for k in range(depth)) + leaf + ")" * depth


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- nesting depth
def test_deep_nesting_is_an_error_naming_the_limit_not_a_recursion_error():
    text = HEAD + BOX + "\n(assert\n" + nested(500) + ")\n"
    with pytest.raises(SpecError) as e:
        parse_vnnlib(text, "deep.vnnlib")
    msg = str(e.value)
    assert msg.startswith("deep.vnnlib:8: parentheses nest deeper than 200"), msg
    assert "limits.nesting_depth is 200; raise it with --set limits.nesting_depth=2000" in msg
    v2 = V2_HEAD + V2_BOX + "(assert\n" + nested(500, "(<= Y[0] 0)") + ")\n"
    with pytest.raises(SpecError, match=r"^deep2.vnnlib:7: parentheses nest deeper than 200"):
        parse_vnnlib2(v2, "deep2.vnnlib")


def test_deep_nesting_within_a_raised_limit_parses():
    """The walkers recurse one level a parenthesis: with the limit raised (or off) they get the room."""
    spec = parse_vnnlib(HEAD + BOX + "(assert " + nested(3000) + ")", limits=LimitSettings(nesting_depth=0))
    (dj,) = spec.disjuncts
    assert dj.C.tolist() == [[1.0, 0.0]] and dj.d.tolist() == [0.0]
    v2 = V2_HEAD + V2_BOX + "(assert " + nested(3000, "(< Y[1] 2)") + ")"
    (dj,) = parse_vnnlib2(v2, limits=LimitSettings(nesting_depth=5000)).disjuncts
    assert dj.C.tolist() == [[0.0, 1.0]] and dj.d.tolist() == [2.0] and dj.strict.tolist() == [True]
    with pytest.raises(SpecError, match="nest deeper than 10"):
        parse_vnnlib(HEAD + BOX + "(assert " + nested(12) + ")", limits=LimitSettings(nesting_depth=10))
    assert parse_vnnlib(HEAD + BOX + "(assert " + nested(8) + ")", limits=LimitSettings(nesting_depth=10)).disjuncts


# --------------------------------------------------------------------------- size of the text
def test_spec_bytes_checked_before_reading_plain_and_while_inflating_gzip(tmp_path):
    text = HEAD + BOX + "(assert (<= Y_0 0))\n" + ";" * 5000 + "\n"
    plain = tmp_path / "big.vnnlib"
    plain.write_text(text)
    small = LimitSettings(spec_bytes=4096)
    with pytest.raises(SpecError, match=rf"big.vnnlib: the spec has {len(text)} bytes: limits.spec_bytes is 4096; "
                       rf"raise it with --set limits.spec_bytes={len(text)}"):
        load_vnnlib(plain, limits=small)
    assert load_vnnlib(plain).disjuncts  # the default limit (1 GiB)
    bomb = tmp_path / "bomb.vnnlib.gz"  # 12 MB of blanks inflated from a few kB
    bomb.write_bytes(gzip.compress((text + " " * (12 << 20)).encode()))
    assert bomb.stat().st_size < 100_000
    before = peak_rss_mb()
    with pytest.raises(SpecError, match=r"bomb.vnnlib.gz: the spec inflates to more than 1048576 bytes"):
        load_spec(tmp_path / "bomb.vnnlib", limits=LimitSettings(spec_bytes=1 << 20))
    assert peak_rss_mb() - before < 8  # abandoned after the first pieces, not inflated whole
    assert load_spec(tmp_path / "bomb.vnnlib").disjuncts
    with pytest.raises(SpecError, match="the spec has more than 4096 characters"):
        parse_vnnlib(text, limits=small)


# --------------------------------------------------------------------------- tensor sizes (2.0)
@pytest.mark.parametrize("shape,size", [("[99999999999]", 99999999999), ("[100000,100000,100]", 10**12),
                                         ("[1,3,5000,5000]", 75_000_000)])
def test_declared_tensor_larger_than_the_limit_fails_at_its_declaration(shape, size):
    text = (f"(vnnlib-version <2.0>)\n(declare-network N\n (declare-input X Real {shape})\n"
            " (declare-output Y Real [1]))\n")
    before = peak_rss_mb()
    with pytest.raises(SpecError) as e:
        parse_vnnlib2(text + "(assert (<= Y[0] 0))", "huge.vnnlib")
    assert peak_rss_mb() - before < 50  # nothing was made for it
    assert str(e.value) == (f"huge.vnnlib:3: X has {size} elements (shape {shape}): limits.tensor_elements is "
                            f"50000000; raise it with --set limits.tensor_elements={size} (0: no limit)")


def test_a_big_declared_input_left_unbounded_is_reported_without_making_its_box():
    """Within the limit, a tensor of millions of elements that the asserts do not bound: the error comes from
    counting the asserts' bounds, not from lists of millions of entries (nor a declaration text per element)."""
    text = ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X Real [1,20000000]) "
            "(declare-output Y Real [1]))\n(assert (and (>= X[0,0] 0) (<= X[0,0] 1) (>= X[0,2] 0)))\n"
            "(assert (<= Y[0] 0))")
    before = peak_rss_mb()
    with pytest.raises(SpecError, match=r"^q:2: input X\[0,1\] has no lower bound \(19999998 inputs lack one\)"):
        parse_vnnlib2(text, "q")
    assert peak_rss_mb() - before < 100
    with pytest.raises(SpecError, match=r"input X\[0,2\] has no upper bound"):
        parse_vnnlib2(text.replace("[1,20000000]", "[1,3]").replace("(>= X[0,2] 0)",
                                                                     "(>= X[0,2] 0) (>= X[0,1] 0) (<= X[0,1] 0)"))


# --------------------------------------------------------------------------- disjuncts and their memory
def test_disjunct_limits_in_or_and_and_the_cross_product():
    ors = "(assert (or " + " ".join(f"(<= Y_0 {k})" for k in range(30)) + "))\n"
    limits = LimitSettings(disjuncts=20)
    with pytest.raises(SpecError, match=r"^<string>:7: 'or' has more than 20 disjuncts: limits.disjuncts is 20; "
                       r"raise it with --set limits.disjuncts=200 \(0: no limit\)"):
        parse_vnnlib(HEAD + BOX + "\n" + ors, limits=limits)
    small = "(or (<= Y_0 0) (<= Y_0 1) (<= Y_0 2) (<= Y_0 3) (<= Y_0 4))"
    with pytest.raises(SpecError, match=r"'and' expands to more than 20 disjuncts.*limits.disjuncts=25 "):
        parse_vnnlib(HEAD + BOX + f"(assert (and {small} {small}))", limits=limits)
    with pytest.raises(SpecError, match=r"expand to more than 20 disjuncts \(cross product of 5 x 5\)"):
        parse_vnnlib(HEAD + BOX + f"(assert {small})\n(assert {small})", limits=limits)
    assert len(parse_vnnlib(HEAD + BOX + ors).disjuncts) == 30
    assert len(parse_vnnlib(HEAD + BOX + ors, limits=LimitSettings(disjuncts=0)).disjuncts) == 30


def test_disjuncts_whose_arrays_would_exhaust_memory_are_refused_before_they_are_made():
    """600 disjuncts of one row over a million outputs: 4.8 GB of rows, estimated from the asserts."""
    text = ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X Real [1]) (declare-output Y Real [1000000]))"
            "\n(assert (and (>= X[0] 0) (<= X[0] 1)))\n(assert (or "
            + " ".join(f"(<= Y[{k}] 0)" for k in range(600)) + "))")
    before = peak_rss_mb()
    with pytest.raises(SpecError) as e:
        parse_vnnlib2(text, "mem.vnnlib")
    assert peak_rss_mb() - before < 100
    assert str(e.value).startswith("mem.vnnlib:4: the spec's 600 disjuncts would take about 4.5 GiB of memory "
                                   "(1 input boxes of 1 inputs, up to 1 rows of 1000000 outputs each), more than "
                                   "the 4 GiB a spec may take"), str(e.value)
    assert "--set limits.disjuncts=0" in str(e.value)
    fits = text.replace("(or " + " ".join(f"(<= Y[{k}] 0)" for k in range(600)),
                        "(or " + " ".join(f"(<= Y[{k}] 0)" for k in range(3)))
    assert len(parse_vnnlib2(fits).disjuncts) == 3


# --------------------------------------------------------------------------- the deadline
def big_spec(n: int, n_in: int = 1, n_out: int = 2) -> str:
    """``n_in`` inputs in [0, 0.1], ``n_out`` outputs, an 'or' of ``n`` disjuncts."""
    return ("".join(f"(declare-const X_{i} Real)\n(assert (>= X_{i} 0))(assert (<= X_{i} 0.1))\n" for i in range(n_in))
            + "".join(f"(declare-const Y_{j} Real)\n" for j in range(n_out))
            + "(assert (or\n" + "".join(f" (and (<= Y_0 {k}) (>= Y_1 {k}))\n" for k in range(n)) + "))\n")


def test_an_expired_deadline_stops_reading_a_big_spec(tmp_path):
    """A read gets READ_GRACE_S (0.2 s) past the deadline, then stops: 200,000 disjuncts take longer than that."""
    text = big_spec(200_000)
    path = tmp_path / "big.vnnlib"
    path.write_text(text)
    for read in (lambda: load_spec(path, deadline=Deadline(0.0)),
                 lambda: parse_vnnlib(text, "big.vnnlib", deadline=Deadline(0.0))):
        with pytest.raises(DeadlineExpired, match="timed out while reading the spec"):
            read()
    v2 = V2_HEAD + V2_BOX + "(assert (or " + "".join(f"(<= Y[0] {k})" for k in range(200_000)) + "))"
    with pytest.raises(DeadlineExpired, match="timed out while reading the spec"):
        parse_vnnlib2(v2, deadline=Deadline(0.0))
    assert len(parse_vnnlib(big_spec(2000), deadline=Deadline(600.0)).disjuncts) == 2000


def test_a_small_spec_is_read_to_its_end_past_the_deadline():
    """Within the grace a small spec is read whole: a bad one is an error (not a timeout), a good one a spec."""
    assert len(parse_vnnlib(HEAD + BOX + "(assert (<= Y_0 0))", deadline=Deadline(0.0)).disjuncts) == 1
    with pytest.raises(SpecError, match="undeclared variable Y_7"):
        parse_vnnlib(HEAD + BOX + "(assert (<= Y_7 0))", deadline=Deadline(0.0))
    with pytest.raises(SpecError, match="unknown element type 'REAL'"):
        parse_vnnlib2(V2_HEAD.replace("Real [1]", "REAL [1]") + V2_BOX, deadline=Deadline(0.0))


def test_a_deadline_that_passes_while_the_spec_is_read_is_the_verdict_timeout(tmp_path):
    from frontends.load import load_problem
    from verifier.api import verify
    from verifier.ir.result import Verdict

    model = ROOT / "vnnlib_specs" / "test_sat.onnx"  # 5 inputs and 5 outputs
    small = tmp_path / "small.vnnlib"
    small.write_text(big_spec(20, 5, 5))
    assert len(load_problem(model, small).spec.disjuncts) == 20  # the form fits the model
    path = tmp_path / "big.vnnlib"
    path.write_text(big_spec(200_000, 5, 5))
    r = verify(model, path, method="crown", deadline=Deadline(0.0))
    assert r.verdict is Verdict.TIMEOUT and r.message.startswith(f"{path}: timed out while reading the spec"), r.message
