"""VNN-LIB 2.0: the reader (frontends/vnnlib/v2.py) and the standard's solver command line
(verifier/cli/vnnlib_solver.py)."""
from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from frontends.vnnlib.v1 import load_vnnlib
from frontends.vnnlib.v2 import detect_version, load_query, load_spec, parse_query, parse_vnnlib2
from verifier.cli import vnnlib_solver as vnnlib2_cli
from verifier.ir.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
V2 = ROOT / "vnnlib_specs" / "v2"
BENCH = ROOT.parent / "shared" / "benchmarks"
TEST = BENCH / "test"
ACAS = BENCH / "acasxu"
needs_bench = pytest.mark.skipif(not TEST.is_dir() or not ACAS.is_dir(), reason=f"benchmarks not found at {BENCH}")

# (2.0 file, equivalent 1.0 file in the shared benchmarks)
PAIRS = [("test_nano", "test/test_nano.vnnlib"), ("test_tiny", "test/test_tiny.vnnlib"),
         ("test_tiny", "test/test_small.vnnlib"), ("test_prop", "test/test_prop.vnnlib"),
         ("acasxu_prop_1", "acasxu/vnnlib/prop_1.vnnlib"), ("acasxu_prop_2", "acasxu/vnnlib/prop_2.vnnlib"),
         ("acasxu_prop_3", "acasxu/vnnlib/prop_3.vnnlib")]

HEAD = "(vnnlib-version <2.0>)\n(declare-network N\n  (declare-input X Real [1,2])\n  (declare-output Y Real [3]))\n"
BOX = "(assert (and (>= X[0,0] 0) (<= X[0,0] 1) (>= X[0,1] -1) (<= X[0,1] 1)))\n"


def same_spec(a, b) -> bool:
    return (a.n_inputs, a.n_outputs, len(a.disjuncts)) == (b.n_inputs, b.n_outputs, len(b.disjuncts)) and all(
        np.array_equal(x.lo, y.lo) and np.array_equal(x.hi, y.hi) and np.array_equal(x.C, y.C)
        and np.array_equal(x.d, y.d) for x, y in zip(a.disjuncts, b.disjuncts))


# --------------------------------------------------------------------------- reader
@needs_bench
@pytest.mark.parametrize("v2,v1", PAIRS, ids=[f"{a}~{Path(b).stem}" for a, b in PAIRS])
def test_v2_examples_equal_their_v1_originals(v2, v1):
    s2 = load_spec(V2 / f"{v2}.vnnlib")
    s1 = load_vnnlib(BENCH / v1)
    assert same_spec(s1, s2)
    assert load_spec(BENCH / v1) is not None and same_spec(load_spec(BENCH / v1), s1)  # 1.0 through load_spec


def test_query_declarations_and_version_detection():
    q = load_query(V2 / "test_prop.vnnlib")
    net = q.network
    assert (q.version, net.name) == ("2.0", "acas")
    assert (net.inputs[0].name, net.inputs[0].dtype, net.inputs[0].shape) == ("X", "Real", (1, 1, 1, 5))
    assert (net.outputs[0].name, net.outputs[0].shape, net.outputs[0].size) == ("Y", (1, 5), 5)
    assert net.inputs[0].index_text(3) == "X[0,0,0,3]"
    assert detect_version((V2 / "test_prop.vnnlib").read_text()) == "2.0"
    assert detect_version("; (declare-network in a comment)\n(declare-const X_0 Real)\n") == "1.0"


def test_gzipped_v2_named_without_gz(tmp_path):
    (tmp_path / "q.vnnlib.gz").write_bytes(gzip.compress((V2 / "test_nano.vnnlib").read_bytes()))
    spec = load_spec(tmp_path / "q.vnnlib", n_inputs=1, n_outputs=1)
    assert spec.disjuncts[0].lo.tolist() == [-1.0] and spec.disjuncts[0].d.tolist() == [-1.0]


def test_operators_and_terms():
    spec = parse_vnnlib2(HEAD + BOX + "(assert (or (< Y[0] Y[1]) (== (- Y[2]) -0.5) (> (* 2 (+ Y[0] 1)) Y [2])))")
    rows = [(d.C.tolist(), d.d.tolist(), d.strict_rows().tolist()) for d in spec.disjuncts]
    assert rows == [([[1, -1, 0]], [0.0], [True]),                          # Y0 < Y1: a strict row
                    ([[0, 0, -1], [0, 0, 1]], [-0.5, 0.5], [False, False]),  # -Y2 == -0.5: two rows
                    ([[-2, 0, 1]], [2.0], [True])]                          # 2 (Y0 + 1) > Y2
    lo, hi = spec.disjuncts[0].lo, spec.disjuncts[0].hi
    assert lo.tolist() == [0, -1] and hi.tolist() == [1, 1]
    scalar = parse_vnnlib2("(vnnlib-version <2.0>)\n(declare-network s (declare-input x float32 [])"
                           " (declare-output y real []))\n(assert (and (<= x 2) (>= x 1) (<= y 0)))")
    assert (scalar.n_inputs, scalar.n_outputs, scalar.disjuncts[0].hi.tolist()) == (1, 1, [2.0])


def test_not_equal_is_two_strict_comparisons():
    spec = parse_vnnlib2(HEAD + BOX + "(assert (!= (+ Y[0] 1) Y\n [2]))")
    rows = [(d.C.tolist(), d.d.tolist(), d.strict_rows().tolist()) for d in spec.disjuncts]
    assert rows == [([[1, 0, -1]], [-1.0], [True]), ([[-1, 0, 1]], [1.0], [True])]  # Y0 + 1 < Y2, Y0 + 1 > Y2
    q = parse_query(HEAD + BOX + "(assert (!= (+ Y[0] 1) Y\n [2]))\n(assert (<= Y[1] 1))")
    assert q.v1_text.count("\n") == (HEAD + BOX).count("\n") + 2  # the lines stay where they were
    with pytest.raises(SpecError, match=r"q.vnnlib:8: Y has shape \[3\] and needs 1 index; got 2"):
        parse_vnnlib2(HEAD + BOX + "(assert (!= (+ Y[0] 1) Y\n [2]))\n(assert (<= Y[0 ,1] 1))", "q.vnnlib")


@pytest.mark.parametrize("extra,what,n_outputs", [
    ("(assert (<= (+ X[0,0] Y[1]) 1))", "relates X[0,0] to other variables", 4),  # Y, then X[0,0]
    ("(assert (<= X[0,1] X[0,0]))", "relates X[0,1] to other variables", 5),  # Y, X[0,1], X[0,0]
])
def test_load_spec_refuses_a_query_that_needs_the_composed_model(tmp_path, extra, what, n_outputs):
    """The main `verify` command runs a network's own model: a query that needs several networks' models or the
    inputs among the outputs is refused, naming vnnlib-solver, which composes them."""
    path = tmp_path / "q.vnnlib"
    path.write_text(HEAD + BOX + extra)
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert what in str(e.value) and "vnnlib-solver verify QUERY --network NAME=MODEL" in str(e.value)
    q = load_query(path)
    assert not q.is_plain and q.to_spec().n_outputs == n_outputs


def test_strict_input_bounds_are_open_and_combine_with_closed_ones():
    spec = parse_vnnlib2(HEAD + "(assert (and (> X[0,0] 0) (>= X[0,0] 0) (<= X[0,0] 1) (>= X[0,1] -1) (< X[0,1] 1)))\n"
                         "(assert (or (and (< X[0,1] 0.5) (<= Y[0] 0)) (and (> X[0,0] 1) (<= Y[1] 0))))")
    (dj,) = spec.disjuncts  # the second disjunct's box is empty (x > 1 and x <= 1): dropped, no error
    assert dj.lo.tolist() == [0, -1] and dj.hi.tolist() == [1, 0.5]
    assert dj.lo_open.tolist() == [True, False] and dj.hi_open.tolist() == [False, True]
    assert dj.C.tolist() == [[1, 0, 0]] and dj.strict is None
    none = parse_vnnlib2(HEAD + "(assert (and (> X[0,0] 1) (<= X[0,0] 1) (>= X[0,1] -1) (<= X[0,1] 1)))\n"
                         "(assert (<= Y[0] 0))")
    assert none.disjuncts == ()  # the input set is empty by an open bound: no disjunct (unsat)


@pytest.mark.parametrize("token,fragment", [
    ("\u0663", "is not a number: VNN-LIB numbers are written with the ASCII digits 0-9"),
    ("\uff11.5", "is not a number"), ("1e400", "number out of range: 1e400"), ("nan", "'nan' is not a valid number"),
    ("-inf", "'-inf' is not a valid number"), ("Infinity", "'Infinity' is not a valid number"),
    ("1_0", "bad number '1_0'"), ("0x10", "bad number '0x10'"),
])
def test_v2_numbers_are_ascii_finite_decimals(token, fragment):
    for text in (HEAD + BOX + f"(assert (<= Y[0] {token}))",
                 HEAD + f"(assert (and (>= X[0,0] {token}) (<= X[0,0] 1)))"):
        with pytest.raises(SpecError) as e:
            parse_vnnlib2(text, "q.vnnlib")
        assert e.value.line in (5, 6) and fragment in str(e.value), str(e.value)


@pytest.mark.parametrize("text,line,fragment", [
    (HEAD + BOX + "(assert (<= Z[0] 1))", 6, "undeclared variable Z"),
    (HEAD + BOX + "(assert (<= X_0 1))", 6, "undeclared variable X_0"),  # 1.0 names are not 2.0 names
    (HEAD + BOX + "(assert (<= Y[3] 1))", 6, "index 3 is out of range for dimension 0 of Y"),
    (HEAD + BOX + "(assert (<= Y[0,0] 1))", 6, "Y has shape [3] and needs 1 index; got 2"),
    (HEAD + BOX + "(assert (<= Y 1))", 6, "needs 1 index; got 0"),
    (HEAD + BOX + "(assert (<= Y[0]))", 6, "'<=' needs at least two operands"),
    (HEAD + BOX + "(assert (!= Y[0] 1 Y[1]))", 6, "'!=' needs two operands, got 3"),
    (HEAD + BOX + "(assert (or (!= Y [0])))", 6, "'!=' needs two operands, got 1"),
    (HEAD + BOX + "(assert (<= Y[0] 1) (<= Y[1] 1))", 6, "assert takes exactly one formula"),
    (HEAD + BOX + "(assert (<= Y[99999999999999999999999] 1))", 6, "an integer of more than 18 digits"),
    (HEAD + BOX + "(assert (<= Y[" + "9" * 5000 + "] 1))", 6, "an integer of more than 18 digits"),
    ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X Real [" + "9" * 5000 + "]) (declare-output Y "
     "Real [1]))\n(assert (<= Y[0] 1))", 2, "an integer of more than 18 digits"),
    (HEAD + "(assert (>= X[0,0] 0))\n(assert (<= Y[0] 1))", 3, "input X[0,1] has no lower bound"),
    (HEAD + BOX + "(assert (<= Y[0] 1)", 6, "missing ')'"),
    ("(vnnlib-version <3.0>)\n", 1, "version 3.0 is not supported"),
    ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X Real [2])\n (declare-hidden H Real [2]) "
     "(declare-output Y Real [1]))\n(assert (<= Y[0] 1))", 3, "hidden node H needs the ONNX node name as a string"),
    ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X Real [2]) (declare-output Y Real [1]))\n"
     "(declare-network M (equal-to Q) (declare-input A Real [2]) (declare-output B Real [1]))\n(assert (<= Y[0] 1))",
     3, "network M is declared equal-to Q, which the query does not declare"),
    ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X Real [2]) (declare-output Y Real [1]))\n"
     "(declare-network M (isomorphic-to M) (declare-input A Real [2]) (declare-output B Real [1]))\n"
     "(assert (<= Y[0] 1))", 3, "network M is declared isomorphic-to itself"),
    ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X Real [2]) (declare-output Y Real [1]))\n"
     "(declare-network M (equal-to N) (declare-input A Real [3]) (declare-output B Real [1]))\n(assert (<= Y[0] 1))",
     3, "network M is declared equal-to N but its inputs [[3]] differ from N's [[2]]"),
    ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X Real [2]) (declare-output Y Real [1]))\n"
     "(declare-network M (equal-to N) (equal-to N) (declare-input A Real [2]) (declare-output B Real [1]))\n"
     "(assert (<= Y[0] 1))", 3, "network M is declared equal-to N already"),
    ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X Real [2]) (declare-input Z Real [2]))\n"
     "(assert (<= X[0] 1))", 2, "network N declares 2 inputs and 0 outputs; a network needs at least one of each"),
    ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X Real [2]) (declare-output X Real [1]))\n"
     "(assert (<= X[0] 1))", 2, "X is declared twice"),
    ("(vnnlib-version <2.0>)\n(declare-network N (declare-input X flaot32 [2]) (declare-output Y Real [1]))\n"
     "(assert (<= Y[0] 1))", 2, "unknown element type 'flaot32'"),
    ("(vnnlib-version <2.0>)\n(declare-const X_0 Real)\n", 2, "'declare-const' is VNN-LIB 1.0"),
])
def test_errors_name_the_file_and_line(text, line, fragment):
    with pytest.raises(SpecError) as ei:
        parse_vnnlib2(text, "q.vnnlib", 2, 3)
    assert ei.value.path == "q.vnnlib" and ei.value.line == line, str(ei.value)
    assert fragment in str(ei.value)


def test_sizes_must_match_the_network():
    with pytest.raises(SpecError, match="spec declares 2 inputs but the network has 5"):
        parse_vnnlib2(HEAD + BOX + "(assert (<= Y[0] 1))", "q", 5, 3)
    q = parse_query(HEAD + BOX + "(assert (<= Y[0] 1))")
    assert q.v1_text.count("\n") == (HEAD + BOX + "(assert (<= Y[0] 1))").count("\n")  # lines kept in place


# --------------------------------------------------------------------------- verdicts
def solver(capsys, *argv) -> tuple[int, list[str], str]:
    rc = vnnlib2_cli.main(list(map(str, argv)))
    cap = capsys.readouterr()
    return rc, cap.out.splitlines(), cap.err


VERDICT_CASES = [  # (2.0 file, 1.0 file, model, method, timeout)
    ("test_nano", TEST / "test_nano.vnnlib", TEST / "test_nano.onnx", "crown", 20),
    ("test_tiny", TEST / "test_tiny.vnnlib", TEST / "test_tiny.onnx", "crown", 20),
    ("test_prop", TEST / "test_prop.vnnlib", TEST / "test_sat.onnx", "crown", 20),
    ("test_prop", TEST / "test_prop.vnnlib", TEST / "test_unsat.onnx", "crown", 20),
    ("acasxu_prop_2", ACAS / "vnnlib" / "prop_2.vnnlib", ACAS / "onnx" / "ACASXU_run2a_2_1_batch_2000.onnx", "attack",
     20),
]


@needs_bench
@pytest.mark.parametrize("v2,v1,model,method,timeout", VERDICT_CASES,
                         ids=[f"{c[0]}-{Path(c[2]).stem}" for c in VERDICT_CASES])
def test_v2_query_gives_the_v1_verdict(capsys, v2, v1, model, method, timeout):
    from verifier.api import verify

    r1 = verify(model, v1, method=method, timeout=timeout)
    name = load_query(V2 / f"{v2}.vnnlib").network.name
    rc, out, err = solver(capsys, "verify", V2 / f"{v2}.vnnlib", "--network", f"{name}={model}",
                          "--method", method, "--timeout", timeout)
    assert rc == 0, err
    word = {"timed-out": "timeout"}.get(out[0], out[0])
    assert word == str(r1.verdict), (out, r1.summary())
    assert word in ("sat", "unsat"), "these instances are decided by the method within the timeout"


@needs_bench
def test_solver_command_line_prints_verdict_then_assignment():
    """A real process, as a VNN-LIB 2.0 test suite runs it: verdict on stdout's first line, logs on stderr."""
    from frontends.onnx.reference import OnnxReference
    from frontends.vnnlib.v1 import load_vnnlib

    res = subprocess.run([sys.executable, "-m", "verifier.cli.vnnlib_solver", "verify", str(V2 / "test_prop.vnnlib"),
                          "--network", f"acas={TEST / 'test_sat.onnx'}", "--method", "crown", "--timeout", "30"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert out[0] == "sat" and out[1] == "X Real [1,1,1,5]" and out[7] == "Y Real [1,5]" and len(out) == 13
    x, y = np.array(out[2:7], dtype=float), np.array(out[8:13], dtype=float)
    assert "method=" in res.stderr and "method=" not in res.stdout
    spec = load_vnnlib(TEST / "test_prop.vnnlib")
    assert spec.violated_disjunct(x, OnnxReference(TEST / "test_sat.onnx").run(x)) is not None
    np.testing.assert_allclose(OnnxReference(TEST / "test_sat.onnx").run(x), y, rtol=1e-6)


@needs_bench
def test_solver_errors_go_to_stderr_with_nothing_on_stdout(capsys, tmp_path):
    q = V2 / "test_nano.vnnlib"
    model = TEST / "test_nano.onnx"
    rc, out, err = solver(capsys, "verify", q)
    assert rc == 1 and out == [] and "--network nano=PATH" in err
    rc, out, err = solver(capsys, "verify", q, "--network", f"other={model}")
    assert rc == 1 and out == [] and "declares no network of that name" in err
    rc, out, err = solver(capsys, "verify", q, "--network", f"nano={model}", "--network", f"extra={model}")
    assert rc == 1 and out == [] and "--network extra" in err
    f32 = tmp_path / "f32.vnnlib"  # float32 is accepted by default (no consent flag: the standard defines none)
    f32.write_text(q.read_text().replace("Real", "float32"))
    rc, out, err = solver(capsys, "verify", f32, "--network", f"nano={model}", "--method", "crown")
    assert rc == 0 and out == ["unsat"], err
    f64 = tmp_path / "f64.vnnlib"
    f64.write_text(q.read_text().replace("Real", "float64"))
    rc, out, err = solver(capsys, "verify", f64, "--network", f"nano={model}")
    assert rc == 1 and out == [] and "is declared float64 but the model's input" in err and "is float32" in err
    rc, out, err = solver(capsys, "verify", TEST / "test_nano.vnnlib", "--network", f"any={model}", "--method",
                          "crown")
    assert rc == 0 and out == ["unsat"]  # VNN-LIB 1.0 queries work too, with one --network


def test_solver_time_limit_passing_while_the_query_is_read_is_timed_out(capsys, tmp_path):
    query = tmp_path / "big.vnnlib"  # 200,000 disjuncts: longer to read than the grace a read gets past its deadline
    query.write_text((V2 / "test_nano.vnnlib").read_text().replace(
        "(assert", "(assert (or " + " ".join(f"(<= Y[0] {k})" for k in range(200_000)) + "))\n(assert", 1))
    assert load_query(query).network.name == "nano"
    rc, out, err = solver(capsys, "verify", query, "--network", f"nano={ROOT / 'vnnlib_specs' / 'test_nano.onnx'}",
                          "--timeout", "0")
    assert (rc, out) == (0, ["timed-out"]) and "timed out while reading the spec" in err, err


def test_supports_and_identity(capsys):
    assert solver(capsys, "supports", "--vnnlib-versions")[1] == ["1.0", "2.0"]
    assert solver(capsys, "supports", "--onnx-element-types")[1] == ["real"]
    assert solver(capsys, "supports", "--multiple-network-theories")[1] == ["SNET", "MNET", "MENET", "MINET"]
    assert solver(capsys, "supports", "--hidden-node-theories")[1] == ["NH", "H"]
    ops = solver(capsys, "supports", "--onnx-operators")[1]
    assert "Relu" in ops  # the full claimed list: tests/test_vnnlib_solver_cli.py
    lo, hi = solver(capsys, "supports", "--onnx-opset-versions")[1]
    assert int(lo) <= int(hi)
    rc, out, _ = solver(capsys, "--name")
    assert rc == 0 and len(out) == 1 and out[0]
    rc, out, _ = solver(capsys, "supports")
    assert rc == 2
