"""VNN-COMP result files (verifier/resultfile.py) and counterexample validation (verifier/validate.py).

A ``sat`` result written by ``verify --method attack`` must pass the competition checker's rules
(X in the box within 1e-4, onnxruntime's output matching the printed Y within relative 1e-3,
and meeting a disjunct within 1e-4); tampered files must be rejected.
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
from conftest import BENCH, make_fc, needs_bench, save
from test_cli import verify_cmd

from frontends.onnx.reference import OnnxReference
from frontends.result_file import check_counterexample, format_result, parse_result_text, write_result_file
from frontends.vnnlib.v1 import load_vnnlib, parse_vnnlib
from verifier.attack.validate import clip_to_box_f32, validate_candidate
from verifier.ir.result import Counterexample, Result, Verdict


def sat_result(x, y) -> Result:
    return Result(Verdict.SAT, "test", counterexample=Counterexample(np.asarray(x), np.asarray(y), 0, True))


# --------------------------------------------------------------------------- format / parse
def test_round_trip_is_exact():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(7) * 10.0 ** rng.integers(-8, 8, 7), [0.0, -0.0, 1e-300, 1.5e300]])
    y = rng.standard_normal(5)
    text = format_result(sat_result(x, y))
    word, xp, yp = parse_result_text(text)
    assert word == "sat"
    assert np.array_equal(xp, x) and np.array_equal(yp, y)  # repr() round-trips float64 exactly
    lines = text.splitlines()
    assert lines[0] == "sat"
    assert lines[1].startswith("((X_0 ") and lines[-1].endswith("))")
    assert len(lines) == 1 + x.size + y.size  # one pair a line
    names = [ln.strip(" ()").split()[0] for ln in lines[1:]]
    assert names == [f"X_{i}" for i in range(x.size)] + [f"Y_{j}" for j in range(y.size)]


def test_float32_counterexample_round_trip():
    x = np.float32([0.1, -3.3, 7e-8]).astype(np.float64)
    word, xp, _ = parse_result_text(format_result(sat_result(x, [1.0])))
    assert np.array_equal(xp.astype(np.float32).astype(np.float64), x)


@pytest.mark.parametrize("verdict", ["unsat", "unknown", "timeout", "error"])
def test_non_sat_verdicts(verdict, tmp_path):
    r = Result(verdict, "m", message="whatever")
    assert format_result(r) == verdict + "\n"
    path = tmp_path / "out.txt"
    write_result_file(path, r)
    assert parse_result_text(path.read_text()) == (verdict, None, None)


def test_parse_accepts_2021_words_and_spacing():
    assert parse_result_text("holds\n")[0] == "unsat"
    word, x, y = parse_result_text("violated\n( ( X_0  1.5 )\n(X_1 -2e-3) (Y_0 3))\n")
    assert word == "sat" and x.tolist() == [1.5, -0.002] and y.tolist() == [3.0]
    assert parse_result_text("  SAT \n((X_0 1)\n (Y_0 2))")[0] == "sat"


@pytest.mark.parametrize("text,msg", [
    ("", "empty"),
    ("   \n", "empty"),
    ("proved\n", "unknown verdict"),
    ("sat\n", "without a counterexample"),
    ("sat\n((X_0 1.0))\n", "without a counterexample"),
    ("sat\n((X_0 1.0)\n (X_2 1.0)\n (Y_0 0.5))\n", "not contiguous"),
])
def test_parse_rejects_bad_files(text, msg):
    with pytest.raises(ValueError, match=msg):
        parse_result_text(text)


def test_sat_result_needs_a_validated_counterexample():
    with pytest.raises(ValueError):
        Result(Verdict.SAT, "m")
    with pytest.raises(ValueError):
        Result(Verdict.SAT, "m", counterexample=Counterexample(np.zeros(2), np.zeros(1), 0, validated=False))


# --------------------------------------------------------------------------- validation helpers
def test_clip_to_box_f32_lands_inside_exactly():
    rng = np.random.default_rng(1)
    lo = rng.standard_normal(200)
    hi = lo + np.abs(rng.standard_normal(200)) * 10.0 ** rng.integers(-5, 1, 200) + 1e-5
    x = rng.standard_normal(200) * 3
    x32 = clip_to_box_f32(x, lo, hi)
    assert x32.dtype == np.float32
    xd = x32.astype(np.float64)
    assert np.all(xd >= lo) and np.all(xd <= hi)
    # a box too thin to hold any float32
    a = 0.1
    assert np.float64(np.float32(a)) != a
    lo1 = np.array([a])
    assert clip_to_box_f32(np.array([a]), lo1, lo1) is None


def test_validate_candidate_uses_onnxruntime(tmp_path):
    model = make_fc(2, sizes=(2, 4, 2))
    path = save(model, tmp_path / "m.onnx")
    ref = OnnxReference(path)
    y0 = ref.run(np.zeros(2))
    # unsafe set: Y_0 <= y0[0] + 1 (met at the origin) ; and one that no point of a tiny box meets
    spec = parse_vnnlib("(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)"
                        "(declare-const Y_1 Real)(assert (>= X_0 -0.001))(assert (<= X_0 0.001))"
                        "(assert (>= X_1 -0.001))(assert (<= X_1 0.001))"
                        f"(assert (<= Y_0 {float(y0[0]) + 1!r}))")
    cex = validate_candidate(ref, spec, np.array([0.5, -0.5]))  # outside the box: clipped into it
    assert cex is not None and cex.validated and spec.disjuncts[0].contains_input(cex.x)
    assert np.allclose(cex.y, ref.run(cex.x))
    spec_no = parse_vnnlib("(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)"
                           "(declare-const Y_1 Real)(assert (>= X_0 -0.001))(assert (<= X_0 0.001))"
                           "(assert (>= X_1 -0.001))(assert (<= X_1 0.001))"
                           f"(assert (<= Y_0 {float(y0[0]) - 1!r}))")
    assert validate_candidate(ref, spec_no, np.zeros(2)) is None


# --------------------------------------------------------------------------- a real sat result
@pytest.fixture(scope="module")
def attack_sat(tmp_path_factory):
    if not BENCH.is_dir():
        pytest.skip(f"benchmarks not found at {BENCH}")
    model, prop = BENCH / "test" / "test_sat.onnx", BENCH / "test" / "test_prop.vnnlib"
    out = tmp_path_factory.mktemp("attack") / "result.txt"
    p = subprocess.run(verify_cmd(model, prop, "--method", "attack", "--timeout", "60", "--result-file", out),
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    return model, prop, out, p.stdout


@needs_bench
def test_attack_result_passes_competition_checker(attack_sat):
    model, prop, out, stdout = attack_sat
    text = out.read_text()
    assert text == stdout  # the result file is exactly what stdout shows
    word, x, y = parse_result_text(text)
    assert word == "sat"
    spec = load_vnnlib(prop)
    ref = OnnxReference(model)
    ok, why = check_counterexample(ref.run, spec, x, y)
    assert ok, why
    # stricter than the checker: X inside the box exactly, onnxruntime's own output violates
    assert spec.violated_disjunct(x, ref.run(x)) is not None
    assert np.array_equal(x.astype(np.float32).astype(np.float64), x)  # printed X is the float32 fed to the net


@needs_bench
def test_tampered_result_rejected(attack_sat):
    model, prop, out, _ = attack_sat
    _, x, y = parse_result_text(out.read_text())
    spec = load_vnnlib(prop)
    run = OnnxReference(model).run
    assert check_counterexample(run, spec, x, y)[0]
    # printed Y changed
    y2 = y.copy()
    y2[0] += 0.01 * (1 + abs(y2[0]))
    ok, why = check_counterexample(run, spec, x, y2)
    assert not ok and "differs" in why
    # the tampered file goes through the parser unchanged, then is rejected
    text = out.read_text().replace(f"(Y_0 {float(y[0])!r})", f"(Y_0 {float(y2[0])!r})")
    assert text != out.read_text()
    _, xt, yt = parse_result_text(text)
    assert not check_counterexample(run, spec, xt, yt)[0]
    # X outside the box (by more than 1e-4), Y the model's own output there
    dj = spec.disjuncts[0]
    x3 = x.copy()
    x3[0] = dj.hi[0] + 1e-3
    ok, why = check_counterexample(run, spec, x3, run(x3))
    assert not ok and "outside" in why
    # the same X on the safe network (test_unsat.onnx): its output there meets no disjunct
    run_safe = OnnxReference(BENCH / "test" / "test_unsat.onnx").run
    ok, why = check_counterexample(run_safe, spec, x, run_safe(x))
    assert not ok and "no disjunct" in why
    # wrong sizes
    assert not check_counterexample(run, spec, x[:-1], y)[0]
    assert not check_counterexample(run, spec, x, np.append(y, 0.0))[0]
