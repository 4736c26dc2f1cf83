"""Strict rows in proofs, the exact check, specs without rows or without disjuncts, NaN guards.

The four queries of the issue are real ONNX nets (onnx.helper) run by the methods on specs with strict
rows, built as ``Spec`` objects and as VNN-LIB files (the reader keeps ``<`` / ``>`` strict):
each must answer ``unsat`` and its non-strict twin ``sat`` with a counterexample that onnxruntime confirms.
"""
from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import conftest as zoo
import numpy as np
import onnx
import pytest
import torch
from conftest import ROOT, box_vnnlib, ort_run_batch, ort_session, save
from onnx import TensorProto, helper, numpy_helper
from test_cli import run_cli

from frontends.load import load_problem
from frontends.onnx.loader import graph_from_onnx
from verifier.api import verify_problem
from verifier.bounds.exact import exact_refutes_disjunct, exact_row_bounds, supported
from verifier.bounds.objective import objective_bounds
from verifier.bounds.proof import max_is_strict, refutes, within_rounding
from verifier.bounds.spec_bounds import bound_spec
from verifier.ir.graph import Graph, Node
from verifier.ir.ops import Linear, ReLU
from verifier.ir.problem import Problem
from verifier.ir.result import Verdict
from verifier.ir.spec import Disjunct, Spec
from verifier.methods import available_methods
from verifier.settings import BoundSettings
from verifier.settings.options import VerifyOptions

ALL_METHODS = sorted(available_methods())


# --------------------------------------------------------------------------- nets
def _model(nodes, inits: dict, n_in: int, n_out: int) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "strict", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, n_in])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, n_out])],
                          initializer=[numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def relu_net():
    """Y = Relu(X), one input."""
    return _model([helper.make_node("Relu", ["X"], ["Y"])], {}, 1, 1)


def gemm_relu_net():
    """Y = Relu(Gemm(X, [[1.0]], [0.0])): the pre-activation's upper bound 0 is widened for rounding, so the
    float bound of Y's maximum on X in [-1, 0] is about 1e-6, not 0."""
    return _model([helper.make_node("Gemm", ["X", "W", "B"], ["H"]), helper.make_node("Relu", ["H"], ["Y"])],
                  {"W": [[1.0]], "B": [0.0]}, 1, 1)


def identity_net():
    """Y = X by a MatMul with [[1.0]]."""
    return _model([helper.make_node("MatMul", ["X", "W"], ["Y"])], {"W": [[1.0]]}, 1, 1)


def twin_net(n_in=2, hidden=4, seed=0):
    """Two outputs made by the same weights: Y_0 == Y_1 for every input."""
    r = np.random.default_rng(seed)
    w = r.standard_normal((hidden, 1))
    inits = {"W1": r.standard_normal((n_in, hidden)) / np.sqrt(n_in), "b1": 0.3 * r.standard_normal(hidden),
             "W2": np.hstack([w, w]), "b2": [0.25, 0.25]}
    nodes = [helper.make_node("MatMul", ["X", "W1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["r"]), helper.make_node("MatMul", ["r", "W2"], ["o"]),
             helper.make_node("Add", ["o", "b2"], ["Y"])]
    return _model(nodes, inits, n_in, 2)


def kink_net():
    """Y = Relu(X - 1) + 1: Y == 1 on [0, 1], Y = X beyond."""
    nodes = [helper.make_node("Add", ["X", "m1"], ["z"]), helper.make_node("Relu", ["z"], ["r"]),
             helper.make_node("Add", ["r", "p1"], ["Y"])]
    return _model(nodes, {"m1": [-1.0], "p1": [1.0]}, 1, 1)


def abs_net():
    """Y = Relu(X) + Relu(-X) = |X|."""
    nodes = [helper.make_node("MatMul", ["X", "W1"], ["z"]), helper.make_node("Relu", ["z"], ["r"]),
             helper.make_node("MatMul", ["r", "W2"], ["Y"])]
    return _model(nodes, {"W1": [[1.0, -1.0]], "W2": [[1.0], [1.0]]}, 1, 1)


def problem(tmp_path: Path, model, lo, hi, disjuncts, name="net") -> Problem:
    """The problem of ``model`` (saved and loaded like any file) with the spec ``disjuncts`` (Disjunct objects)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    path = save(model, tmp_path / f"{name}.onnx")
    n_out = model.graph.output[0].type.tensor_type.shape.dim[1].dim_value
    vnn = tmp_path / f"{name}.vnnlib"
    vnn.write_text(box_vnnlib(lo, hi, np.eye(1, n_out), [1e9]))
    p = load_problem(path, vnn)
    return replace(p, spec=Spec(lo.size, n_out, tuple(disjuncts)))


def dj(lo, hi, C, d, strict=None, lo_open=None, hi_open=None) -> Disjunct:
    """A disjunct with rows ``C y <= d`` (``strict``: which are ``<``) on the box ``lo``..``hi``."""
    return Disjunct(np.asarray(lo, float), np.asarray(hi, float), np.atleast_2d(np.asarray(C, float)),
                    np.asarray(d, float), None if strict is None else np.asarray(strict, bool), lo_open, hi_open)


def run(p: Problem, method: str, timeout: float = 20.0):
    return verify_problem(p, VerifyOptions(method=method, timeout=timeout))


def assert_validated_sat(p: Problem, r):
    """``sat`` whose counterexample, re-run here through onnxruntime, lies in the disjunct's set and meets its rows
    (strict rows strictly)."""
    assert r.verdict is Verdict.SAT, (r.verdict, r.message)
    cex = r.counterexample
    target = p.spec.disjuncts[cex.disjunct]
    y = ort_run_batch(ort_session(p.model_path), cex.x[None, :])[0]
    assert target.contains_input(cex.x)
    assert target.output_holds(y), (cex.x, y)


# The four queries: (net, box, disjunct rows of the strict form, its non-strict twin's rows)
QUERIES = {
    # Y = Relu(X) on [-1, 0]: Y > 0 (row -Y < 0) never holds; Y >= 0 everywhere
    "relu": (relu_net, [-1.0], [0.0], [[-1.0]], [0.0]),
    # Y = X on [1, 2]: Y < 1 never; Y <= 1 at X = 1
    "identity": (identity_net, [1.0], [2.0], [[1.0]], [1.0]),
    # Y_0 == Y_1: Y_0 < Y_1 never; Y_0 <= Y_1 everywhere
    "twin": (twin_net, [-1.0, -1.0], [1.0, 1.0], [[1.0, -1.0]], [0.0]),
}


# --------------------------------------------------------------------------- the rule
def test_refutes_strict_rows_at_zero_and_never_on_nan():
    lb = torch.tensor([[0.5, 0.0, 0.0, -1e-9, float("nan")]], dtype=torch.float64)
    tol = torch.tensor([[0.1, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    strict = torch.tensor([False, False, True, True, True])
    assert refutes(lb, tol).tolist() == [[True, False, False, False, False]]
    assert refutes(lb, tol, strict).tolist() == [[True, False, True, False, False]]
    assert refutes(lb.numpy(), tol.numpy(), strict.numpy()).tolist() == [[True, False, True, False, False]]
    assert refutes(0.0, 0.0, True) and not refutes(0.0, 0.0, False) and not refutes(float("nan"), 0.0, True)
    assert not refutes(1.0, float("nan"), True)
    assert not refutes(0.0, 1e-5, True)  # within the allowance: not a float proof
    # rows tried exactly: within the allowance plus NEAR_ZERO (1e-4) of zero
    assert within_rounding(torch.tensor([-1e-6, -1e-4, -1e-3]), torch.tensor([1e-5, 1e-5, 1e-5])).tolist() == \
        [True, True, False]
    assert max_is_strict(np.array([True, True])) and not max_is_strict(np.array([True, False]))
    assert not max_is_strict(None) and not max_is_strict(np.zeros(0, bool))


def test_objective_bounds_prove_a_strict_row_by_a_zero_bound_only_when_strict():
    g = graph_from_onnx(relu_net(), dtype=torch.float64)
    lo, hi = torch.tensor([[-2.0]]), torch.tensor([[-1.0]])  # Relu is 0 there: -Y - 0 has bound 0, no allowance
    C, d = torch.tensor([[-1.0]]), torch.tensor([0.0])
    assert not bool(objective_bounds(g, C, d, lo, hi, BoundSettings("crown")).proven().any())
    assert bool(objective_bounds(g, C, d, lo, hi, BoundSettings("crown"), strict=[True]).proven().all())


# --------------------------------------------------------------------------- the exact check
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_exact_bounds_refute_the_strict_rows_at_zero(name):
    make, lo, hi, C, d = QUERIES[name]
    g = graph_from_onnx(make())
    for strict, expect in ((False, False), (True, True)):
        out = exact_row_bounds(g, C, d, lo, hi, strict=[strict])
        assert out is not None
        assert out.lower[0] == 0  # the exact minimum of the row, no rounding allowance
        assert bool(out.refuted[0]) is expect


def test_exact_bounds_use_open_input_sides():
    g = graph_from_onnx(identity_net())
    C, d = [[1.0]], [1.0]  # Y <= 1 (non-strict)
    assert not exact_row_bounds(g, C, d, [1.0], [2.0]).refuted[0]  # X = 1 reaches it
    assert exact_row_bounds(g, C, d, [1.0], [2.0], lo_open=[True]).refuted[0]  # X > 1: Y > 1 everywhere
    assert not exact_row_bounds(g, C, d, [1.0], [2.0], hi_open=[True]).refuted[0]  # X < 2 changes nothing
    # an empty set (X > 1 and X <= 1) reaches nothing
    assert exact_row_bounds(g, C, d, [1.0], [1.0], lo_open=[True]).refuted[0]
    # a sub-box keeps the disjunct's open side only where it shares it
    dj_open = dj([1.0], [2.0], C, d, lo_open=np.array([True]))
    assert exact_refutes_disjunct(g, dj_open, [1.0], [1.5]) is True
    assert exact_refutes_disjunct(g, dj_open, [1.25], [1.5]) is True  # Y >= 1.25 > 1
    dj_closed = dj([0.5], [2.0], C, d, lo_open=np.array([True]))
    assert exact_refutes_disjunct(g, dj_closed, [1.0], [1.5]) is False  # X = 1 is inside the disjunct's set


@pytest.mark.parametrize("kind,seed", [("fc", 0), ("fc", 1), ("fc_norm", 2), ("residual", 3), ("misc", 4),
                                       ("branches", 5)])
def test_exact_bounds_are_sound_and_tight_on_points(kind, seed):
    """Every sampled point's value lies above the exact lower bound, and on a box that is a single point the
    bound is the network's value there (every ReLU stable: nothing relaxed)."""
    model = {"fc": lambda: zoo.make_fc(seed, sizes=(3, 6, 5, 2)),
             "fc_norm": lambda: zoo.make_fc(seed, sizes=(2, 5, 4, 3), normalise=True),
             "residual": lambda: zoo.make_residual(seed, n_in=2, width=4, n_out=2),
             "misc": lambda: zoo.make_misc(seed), "branches": lambda: zoo.make_branches(seed)}[kind]()
    g = graph_from_onnx(model, dtype=torch.float64)
    rng = np.random.default_rng(seed)
    n, m = g.n_inputs, g.n_outputs
    C = rng.standard_normal((3, m))
    d = rng.standard_normal(3)
    lo = rng.uniform(-1, 0, n)
    hi = lo + rng.uniform(0.1, 1.0, n)
    out = exact_row_bounds(g, C, d, lo, hi)
    assert out is not None, "the net should be within the exact check's reach"
    xs = lo + rng.random((4000, n)) * (hi - lo)
    xs = np.vstack([xs, lo, hi])
    vals = g.forward(torch.tensor(xs)).numpy() @ C.T - d
    assert np.all(vals.min(0) >= np.array([float(v) for v in out.lower]) - 1e-9)
    # float CROWN on the same box is no tighter than a sampled point either, and the two bounds are close
    ob = objective_bounds(g, torch.tensor(C), torch.tensor(d), torch.tensor(lo)[None], torch.tensor(hi)[None],
                          BoundSettings("crown"))
    assert np.all(np.abs(ob.lower[0].numpy() - np.array([float(v) for v in out.lower])) <= 1.0 + np.abs(vals).max())
    x = xs[7]
    point = exact_row_bounds(g, C, d, x, x)
    y = g.forward(torch.tensor(x[None])).numpy()[0] @ C.T - d
    assert np.allclose([float(v) for v in point.lower], y, atol=1e-12)
    assert all(isinstance(v, Fraction) for v in point.lower)


def test_exact_check_declines_what_it_cannot_do_exactly():
    g = graph_from_onnx(zoo.make_fc(0, sizes=(5, 60, 60, 5)))  # 7500 weights: the rows' pass alone exceeds the budget
    assert not supported(g, 3)
    assert exact_row_bounds(g, np.ones((3, 5)), np.zeros(3), -np.ones(5), np.ones(5)) is None
    lin = Linear(torch.tensor([[float("nan")]], dtype=torch.float64), None)
    bad = Graph("x", (1,), [Node("y", lin, ("x",), (1,))], "y", dtype=torch.float64)
    assert exact_row_bounds(bad, [[1.0]], [0.0], [0.0], [1.0], strict=[True]) is None
    assert exact_row_bounds(graph_from_onnx(identity_net()), [[1.0]], [0.0], [-np.inf], [1.0]) is None


# --------------------------------------------------------------------------- the four queries
@pytest.mark.parametrize("name", sorted(QUERIES))
@pytest.mark.parametrize("method", ["auto", "crown", "alpha-crown", "milp", "lp"])
def test_strict_query_is_unsat(tmp_path, name, method):
    make, lo, hi, C, d = QUERIES[name]
    p = problem(tmp_path, make(), lo, hi, [dj(lo, hi, C, d, strict=[True])], name)
    r = run(p, method)
    assert r.verdict is Verdict.UNSAT, (r.verdict, r.method, r.message)


@pytest.mark.parametrize("name", sorted(QUERIES))
@pytest.mark.parametrize("method", ["auto", "crown", "milp"])
def test_non_strict_twin_is_sat_with_a_validated_point(tmp_path, name, method):
    make, lo, hi, C, d = QUERIES[name]
    p = problem(tmp_path, make(), lo, hi, [dj(lo, hi, C, d)], name)
    assert_validated_sat(p, run(p, method))


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_dual_answers_a_strict_query_unsat_or_unknown_never_sat(tmp_path, name):
    make, lo, hi, C, d = QUERIES[name]
    for strict in (True, False):
        p = problem(tmp_path, make(), lo, hi, [dj(lo, hi, C, d, strict=[strict])], name)
        assert run(p, "dual").verdict in ((Verdict.UNSAT, Verdict.UNKNOWN) if strict else (Verdict.UNKNOWN,))


def test_twin_query_on_a_wide_input_goes_the_relu_split_way_and_is_unsat(tmp_path):
    """40 inputs: past input splitting's reach; the root's exact check proves Y_0 < Y_1 unreachable."""
    p = problem(tmp_path, twin_net(n_in=40, hidden=6, seed=3), -np.ones(40), np.ones(40),
                [dj(-np.ones(40), np.ones(40), [[1.0, -1.0]], [0.0], strict=[True])])
    r = run(p, "auto")
    assert r.verdict is Verdict.UNSAT and r.stats.get("exact_proved") == 1, (r.verdict, r.method, r.stats)
    twin = replace(p, spec=Spec(40, 2, (dj(-np.ones(40), np.ones(40), [[1.0, -1.0]], [0.0]),)))
    assert_validated_sat(twin, run(twin, "auto"))


def test_input_splitting_settles_a_strict_row_whose_minimum_is_zero(tmp_path):
    """Y = Relu(X - 1) + 1 on [0, 3] never reaches Y < 1: the root's float bound of Y - 1 is 0 at best (CROWN's -1,
    the interval bound's 0), within rounding, and the root's exact check cannot close it (the ReLU is unstable
    there); on the sub-boxes of [0, 1.5] the bound is 0 again, and only the exact check on those boxes closes
    them."""
    lo, hi = [0.0], [3.0]
    p = problem(tmp_path, kink_net(), lo, hi, [dj(lo, hi, [[1.0]], [1.0], strict=[True])], "kink")
    proven, best = bound_spec(p, BoundSettings("crown"))
    assert not proven[0] and best[0] <= 1e-6  # the root's exact check cannot decide: the search has to split
    r = run(p, "auto")
    assert r.verdict is Verdict.UNSAT, (r.verdict, r.method, r.message)
    assert r.method == "auto:input-split" and r.stats["exact_proved"] >= 1
    twin = replace(p, spec=Spec(1, 1, (dj(lo, hi, [[1.0]], [1.0]),)))
    assert_validated_sat(twin, run(twin, "auto"))


def test_milp_point_on_a_strict_boundary_is_a_candidate_not_an_answer(tmp_path):
    """|X| < 0 on [-1, 2]: the MILP's optimum 0 (at X = 0) is on the strict row's boundary; validation rejects it,
    the exact check's relaxation cannot close the box, so the answer is unknown (not sat, not unsat)."""
    lo, hi = [-1.0], [2.0]
    target = dj(lo, hi, [[1.0]], [0.0], strict=[True])
    p = problem(tmp_path, abs_net(), lo, hi, [target], "abs")
    assert exact_refutes_disjunct(p.graph, target) is False
    r = run(p, "milp")
    assert r.verdict is Verdict.UNKNOWN, (r.verdict, r.message)


# --------------------------------------------------------------------------- no rows, no disjuncts
@pytest.mark.parametrize("method", ALL_METHODS)
def test_spec_without_disjuncts_is_unsat_for_every_method(tmp_path, method):
    p = problem(tmp_path, twin_net(), [-1, -1], [1, 1], [])
    r = run(p, method)
    assert r.verdict is Verdict.UNSAT, (r.verdict, r.message)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_disjunct_without_rows_is_sat_at_once_for_every_method(tmp_path, method):
    lo, hi = [-1.0, 0.5], [1.0, 2.0]
    rows_free = Disjunct(np.array(lo), np.array(hi), np.zeros((0, 2)), np.zeros(0), hi_open=np.array([False, True]))
    # a mixed spec: a disjunct that no input reaches (Y_0 - Y_1 >= 1 never: they are equal), then one without rows
    p = problem(tmp_path, twin_net(), lo, hi, [dj(lo, hi, [[-1.0, 1.0]], [-1.0]), rows_free])
    r = run(p, method)
    assert_validated_sat(p, r)
    assert r.counterexample.disjunct == 1 and r.counterexample.x[1] < 2.0
    assert "exact_proved" not in r.stats and "crown_bound" not in r.stats  # answered before any bound


def test_empty_disjuncts_only_is_unsat(tmp_path):
    empty = dj([1.0], [1.0], [[1.0]], [5.0], lo_open=np.array([True]))  # X > 1 and X <= 1
    p = problem(tmp_path, identity_net(), [1.0], [1.0], [empty])
    assert run(p, "auto").verdict is Verdict.UNSAT


def test_rows_free_disjunct_with_no_float32_point_is_unknown(tmp_path):
    lo = 1.0
    hi = float(np.nextafter(np.float64(1.0), 2.0))  # (1, 1 + 2^-52): real points, no float32 one
    free = Disjunct(np.array([lo]), np.array([hi]), np.zeros((0, 1)), np.zeros(0), lo_open=np.array([True]),
                    hi_open=np.array([True]))
    p = problem(tmp_path, identity_net(), [lo], [hi], [free])
    r = run(p, "crown")
    assert r.verdict is Verdict.UNKNOWN and "no output constraint" in r.message


def test_cli_answers_a_spec_without_output_constraint_sat(tmp_path):
    spec = tmp_path / "free.vnnlib"
    spec.write_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 -1))\n(assert (<= X_0 1))\n")
    out = run_cli(ROOT / "vnnlib_specs" / "test_small.onnx", spec, "--method", "milp", "--timeout", "30", "-q")
    assert out.returncode == 0 and out.stdout.splitlines()[0] == "sat", (out.stdout, out.stderr)
    assert "(X_0 " in out.stdout


# --------------------------------------------------------------------------- NaN
def test_nan_weights_never_prove_and_never_reach_a_solver(tmp_path):
    p = problem(tmp_path, identity_net(), [1.0], [2.0], [dj([1.0], [2.0], [[1.0]], [0.5])])
    lin = Linear(torch.tensor([[float("nan")]]), None)
    g = Graph(p.graph.input_name, p.graph.input_shape, [Node(p.graph.output_name, lin, (p.graph.input_name,),
                                                            p.graph.output_shape)], p.graph.output_name)
    bad = replace(p, graph=g, _graph64=None)
    proven, _ = bound_spec(bad, BoundSettings("crown"))
    assert proven == [False]
    for method in ("milp", "lp"):
        r = run(bad, method)
        assert r.verdict is Verdict.UNKNOWN and "not finite" in r.message, (method, r.verdict, r.message)
    assert run(bad, "dual").verdict is Verdict.UNKNOWN
    relu_bad = Graph("x", (1,), [Node("z", lin, ("x",), (1,)), Node("y", ReLU(), ("z",), (1,))], "y")
    assert exact_row_bounds(relu_bad, [[1.0]], [0.0], [0.0], [1.0], strict=[True]) is None


# --------------------------------------------------------------------------- Lipschitz fast path
def test_lipschitz_fast_path_reads_strict_rows():
    from verifier.certificates.lipschitz.fastpath import lipschitz_fast_path

    g = graph_from_onnx(zoo.make_fc(1, sizes=(3, 8, 3)), dtype=torch.float64)
    x = np.full(3, 0.2)
    t = int(np.argmax(g.forward(torch.tensor(x[None])).numpy()[0]))
    others = [j for j in range(3) if j != t]
    for strict in (None, np.array([True])):
        rows = [Disjunct(x - 1e-4, x + 1e-4, (np.eye(3)[t] - np.eye(3)[j])[None], np.zeros(1), strict) for j in others]
        res = lipschitz_fast_path(g, Spec(3, 3, tuple(rows)))
        assert res is not None and res.verdict is Verdict.UNSAT


# --------------------------------------------------------------------------- the four queries as files
_H1 = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
_H2 = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
_BOX2 = "(assert (>= X_0 -1.0))\n(assert (<= X_0 1.0))\n(assert (>= X_1 -1.0))\n(assert (<= X_1 1.0))\n"
FILES = {  # name: (net, the strict spec, its non-strict twin)
    "relu": (relu_net, _H1 + "(assert (>= X_0 -1.0))\n(assert (<= X_0 0.0))\n(assert (> Y_0 0.0))\n",
             _H1 + "(assert (>= X_0 -1.0))\n(assert (<= X_0 0.0))\n(assert (>= Y_0 0.0))\n"),
    "gemm-relu": (gemm_relu_net, _H1 + "(assert (>= X_0 -1.0))\n(assert (<= X_0 0.0))\n(assert (> Y_0 0.0))\n",
                  _H1 + "(assert (>= X_0 -1.0))\n(assert (<= X_0 0.0))\n(assert (>= Y_0 0.0))\n"),
    "identity": (identity_net, _H1 + "(assert (>= X_0 1.0))\n(assert (<= X_0 2.0))\n(assert (< Y_0 1.0))\n",
                 _H1 + "(assert (>= X_0 1.0))\n(assert (<= X_0 2.0))\n(assert (<= Y_0 1.0))\n"),
    # no point has X_0 > 1 and X_0 <= 1: the reader drops the disjunct and the spec has none
    "empty-input": (identity_net, _H1 + "(assert (> X_0 1.0))\n(assert (<= X_0 1.0))\n",
                    _H1 + "(assert (>= X_0 1.0))\n(assert (<= X_0 1.0))\n"),
    "twin": (twin_net, _H2 + _BOX2 + "(assert (< Y_0 Y_1))\n", _H2 + _BOX2 + "(assert (<= Y_0 Y_1))\n"),
}


def _files(tmp_path, name):
    make, strict, twin = FILES[name]
    model = save(make(), tmp_path / f"{name}.onnx")
    (tmp_path / "strict.vnnlib").write_text(strict)
    (tmp_path / "twin.vnnlib").write_text(twin)
    return model, tmp_path / "strict.vnnlib", tmp_path / "twin.vnnlib"


@pytest.mark.parametrize("name", sorted(FILES))
def test_strict_files_are_unsat_and_their_twins_sat(tmp_path, name):
    from verifier.api import verify

    model, strict, twin = _files(tmp_path, name)
    for method in ("auto", "crown", "alpha-crown", "milp", "lp"):
        r = verify(model, strict, method=method, timeout=20)
        assert r.verdict is Verdict.UNSAT, (method, r.verdict, r.message)
    for method in ("auto", "crown", "milp"):
        r = verify(model, twin, method=method, timeout=20)
        assert_validated_sat(load_problem(model, twin), r)


def test_cli_prints_unsat_for_a_strict_query(tmp_path):
    model, strict, _ = _files(tmp_path, "identity")
    out = run_cli(model, strict, "--timeout", "30", "-q")
    assert out.returncode == 0 and out.stdout.splitlines() == ["unsat"], (out.stdout, out.stderr)


def test_open_input_side_refutes_a_non_strict_row_that_only_its_edge_reaches(tmp_path):
    """Y = X with X > 1: Y <= 1 is never met (the bound 0 sits on the open side only); with X >= 1 it is, at X = 1."""
    from verifier.api import verify

    model = save(identity_net(), tmp_path / "id.onnx")
    for lower, expect in (("(> X_0 1.0)", Verdict.UNSAT), ("(>= X_0 1.0)", Verdict.SAT)):
        spec = tmp_path / "open.vnnlib"
        spec.write_text(_H1 + f"(assert {lower})\n(assert (<= X_0 2.0))\n(assert (<= Y_0 1.0))\n")
        for method in ("auto", "crown", "milp"):
            r = verify(model, spec, method=method, timeout=20)
            assert r.verdict is expect, (lower, method, r.verdict, r.message)
            if expect is Verdict.SAT:
                assert_validated_sat(load_problem(model, spec), r)


def test_strict_row_just_above_the_minimum_is_sat_not_unsat(tmp_path):
    """Y = X on [1, 2] and Y < 1 + 2^-40: X = 1 meets it. The float bound of Y - d is within rounding of zero, so
    the exact check runs, and must decline (its bound is -2^-40); the attack then finds X = 1."""
    lo, hi, d = [1.0], [2.0], [1.0 + 2.0 ** -40]
    target = dj(lo, hi, [[1.0]], d, strict=[True])
    p = problem(tmp_path, identity_net(), lo, hi, [target])
    assert exact_refutes_disjunct(p.graph, target) is False
    for method in ("auto", "crown", "milp"):
        assert_validated_sat(p, run(p, method))
