"""Tests of the solver backends: encoder exactness, cross-checks between bounds, solver agreement, verdicts.

The oracles are orderings that must hold with the same pre-activation bounds:
``MILP optimum >= LP optimum >= CROWN, alpha-CROWN and dual lower bounds``, every
bound ``<=`` the best sampled value, and the three MILP solvers agree on the optimum.
Real solvers throughout (HiGHS, Gurobi with its size-limited licence, CBC via PuLP).
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import torch
from conftest import BENCH, ZOO, make_fc, make_residual, needs_bench, read_expected, save

import backends
from backends.backend import get_backend
from backends.dual import dual_network_bound
from backends.encoding import LinearModel, encode_network, safe_lp_bound
from backends.runner import run_backend
from backends.solvers import SolveStatus, get_solver, make_solver
from frontends.load import load_problem
from frontends.onnx.loader import load_onnx
from frontends.onnx.reference import OnnxReference
from verifier.bounds import intermediate_bounds, objective_bounds
from verifier.ir.deadline import Deadline
from verifier.ir.problem import Problem
from verifier.ir.result import Verdict
from verifier.ir.spec import Disjunct, Spec
from verifier.settings import BoundSettings
from verifier.settings.options import VerifyOptions

SOLVERS = ("highs", "gurobi", "cbc")


# ------------------------------------------------------------------------------------------------ helpers
def _box(graph, seed, radius):
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 1, graph.n_inputs)
    return c - radius, c + radius


def _pre(graph, lo, hi):
    return intermediate_bounds(graph, torch.tensor(lo)[None], torch.tensor(hi)[None], "crown")


def _samples(graph, lo, hi, C, d, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, size=(n, lo.size))
    x = np.concatenate([x, lo[None], hi[None]])
    y = graph.forward(torch.tensor(x)).numpy()
    return (y @ C.T - d).max(1)


def _point_vector(enc, graph, x):
    """The encoding's variable vector at the true network point for input ``x`` (MILP mode)."""
    vals = graph.forward_all(torch.tensor(x)[None])
    v = np.zeros(enc.n_vars)
    v[enc.input_vars] = x
    for name, var in enc.pre_vars.items():
        val = vals[name].reshape(-1).numpy()
        v[var[var >= 0]] = val[var >= 0]
    for node in graph.nodes:
        if node.name not in enc.relu_binaries:
            continue
        E, _ = enc.exprs[node.name]
        E = E.tocsr()
        z = vals[node.name].reshape(-1).numpy()
        pre = vals[node.inputs[0]].reshape(-1).numpy()
        elems, bins = enc.relu_binaries[node.name]
        for k, el in enumerate(elems):
            zi = E.indices[E.indptr[el]:E.indptr[el + 1]]
            v[zi] = z[el]
            if bins.size:
                v[bins[k]] = 1.0 if pre[el] > 0 else 0.0
    return v


# ------------------------------------------------------------------------------------------------ encoder
@pytest.mark.parametrize("kind", sorted(ZOO))
def test_encoding_contains_the_network(kind):
    """At true network points the MILP and LP encodings are feasible and give the true output and objective."""
    graph = load_onnx_model(ZOO[kind](1))
    lo, hi = _box(graph, 1, 0.3)
    pre = _pre(graph, lo, hi)
    rng = np.random.default_rng(2)
    C = rng.standard_normal((2, graph.n_outputs))
    d = rng.standard_normal(2)
    for mode in ("milp", "lp"):
        enc = encode_network(graph, pre, lo, hi, mode)
        model = enc.with_objective(C, d)
        Y, y0 = enc.output
        for x in rng.uniform(lo, hi, size=(20, lo.size)):
            v = _point_vector(enc, graph, x)
            y = graph.forward(torch.tensor(x)[None]).numpy()[0]
            assert np.allclose(Y @ v + y0, y, atol=1e-9), f"{kind}/{mode}: output expression differs"
            val = float(np.max(C @ y - d))
            full = np.append(v, val)
            assert model.max_violation(full) < 1e-7, f"{kind}/{mode}: true point violates the encoding"
            assert model.objective_value(full) == pytest.approx(val)
    assert encode_network(graph, pre, lo, hi, "milp").n_unstable > 0 or kind == "branches"


def load_onnx_model(model):
    from frontends.onnx.loader import graph_from_onnx

    return graph_from_onnx(model, dtype=torch.float64)


def test_sigmoid_is_rejected_with_the_node_name():
    from verifier.ir.errors import UnsupportedError
    from verifier.ir.graph import Graph, Node
    from verifier.ir.ops import Linear, Sigmoid

    W = torch.ones(2, 2, dtype=torch.float64)
    g = Graph("x", (2,), [Node("h", Linear(W, None), ("x",), (2,), "gemm0"),
                          Node("s", Sigmoid(), ("h",), (2,), "sig_7")], "s", dtype=torch.float64)
    pre = {"h": (torch.full((1, 2), -1.0), torch.ones(1, 2))}
    with pytest.raises(UnsupportedError, match="sig_7"):
        encode_network(g, pre, np.zeros(2), np.ones(2))


def test_safe_lp_bound_is_valid_and_tight():
    rng = np.random.default_rng(0)
    graph = load_onnx_model(make_fc(3, sizes=(3, 12, 12, 2)))
    lo, hi = _box(graph, 3, 0.4)
    enc = encode_network(graph, _pre(graph, lo, hi), lo, hi, "lp")
    model = enc.with_objective(rng.standard_normal((2, 2)), np.zeros(2))
    out = get_solver("highs").solve(model)
    assert out.status == SolveStatus.OPTIMAL
    safe = safe_lp_bound(model, out.row_dual)
    assert out.objective - 1e-6 <= safe <= out.objective + 1e-9
    # zero multipliers still give a valid (weak) bound: the variable box alone
    weak = safe_lp_bound(model, np.zeros(model.n_rows))
    assert weak <= safe
    # wrong-sign multipliers on one-sided rows are dropped, so any multipliers stay valid
    junk = safe_lp_bound(model, rng.standard_normal(model.n_rows) * 10)
    assert junk <= out.objective + 1e-9


# ------------------------------------------------------------------------------------------------ cross-checks
def _cross_check(graph, lo, hi, C, d, solvers=SOLVERS, tol=1e-6):
    """All orderings on one disjunct; returns the values."""
    pre = _pre(graph, lo, hi)
    xl, xh = torch.tensor(lo)[None], torch.tensor(hi)[None]
    Ct, dt = torch.tensor(C), torch.tensor(d)
    crown = float(objective_bounds(graph, Ct, dt, xl, xh, BoundSettings("crown"), pre=pre).lower.max())
    # the LP uses the CROWN intermediate bounds ``pre``: it dominates alpha-CROWN on the same bounds;
    # alpha-CROWN with optimised intermediate slopes tightens those bounds and may beat it
    alpha = float(objective_bounds(graph, Ct, dt, xl, xh, BoundSettings("alpha-crown", intermediate_alpha=False),
                                   pre=pre).lower.max())
    alpha_all = float(objective_bounds(graph, Ct, dt, xl, xh, BoundSettings("alpha-crown"), pre=pre).lower.max())
    dual = float(dual_network_bound(graph, Ct, dt, xl, xh, pre).value.max())
    lp_model = encode_network(graph, pre, lo, hi, "lp").with_objective(C, d)
    lp_out = get_solver("highs").solve(lp_model)
    lp = lp_out.objective
    lp_safe = safe_lp_bound(lp_model, lp_out.row_dual)
    milp_model = encode_network(graph, pre, lo, hi, "milp").with_objective(C, d)
    milp = {}
    for s in solvers:
        out = make_solver(s).solve(milp_model, 120)
        assert out.status == SolveStatus.OPTIMAL, (s, out.message)
        milp[s] = out.objective
        # the solver's point, re-run through the network, attains the optimum
        x = np.clip(out.x[milp_model.input_vars], lo, hi)
        y = graph.forward(torch.tensor(x)[None]).numpy()[0]
        assert float(np.max(C @ y - d)) == pytest.approx(out.objective, abs=1e-4, rel=1e-4), s
    best = float(_samples(graph, lo, hi, C, d).min())
    m = milp["highs"]
    assert m >= lp - tol, "MILP optimum below the LP optimum"
    assert lp >= max(crown, alpha, dual) - tol, "LP optimum below a single-pass bound"
    assert lp_safe <= lp + 1e-9 and lp_safe >= lp - 1e-5
    assert m <= best + tol, "MILP optimum above a sampled value"
    assert crown - tol <= alpha_all <= m + tol, "alpha-CROWN (all layers) below CROWN or above the MILP optimum"
    for s, v in milp.items():
        assert v == pytest.approx(m, abs=1e-5, rel=1e-5), f"{s} disagrees with highs: {v} vs {m}"
    return dict(crown=crown, alpha=alpha, alpha_all=alpha_all, dual=dual, lp=lp, milp=m, best=best,
                **{f"milp_{k}": v for k, v in milp.items()})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cross_check_random_mlps(seed):
    graph = load_onnx_model(make_fc(seed, sizes=(3, 10, 10, 4)))
    lo, hi = _box(graph, seed, 0.5)
    rng = np.random.default_rng(seed)
    C = rng.standard_normal((2, 4))
    d = rng.standard_normal(2) * 0.1
    v = _cross_check(graph, lo, hi, C, d)
    # the relaxations are not all exact here: the test would not notice a broken ordering otherwise
    assert v["milp"] > v["crown"] + 1e-4 or v["milp"] > v["dual"] + 1e-4


def test_cross_check_residual_network():
    graph = load_onnx_model(make_residual(4))
    lo, hi = _box(graph, 4, 0.4)
    C = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]])
    _cross_check(graph, lo, hi, C, np.zeros(2))


# ------------------------------------------------------------------------------------------------ verdicts
def _exact_min(graph, lo, hi, c):
    pre = _pre(graph, lo, hi)
    model = encode_network(graph, pre, lo, hi, "milp").with_objective(c[None], np.zeros(1))
    return get_solver("highs").solve(model).objective


@pytest.mark.parametrize("solver", SOLVERS)
def test_milp_verdicts_sat_and_unsat(tmp_path, solver):
    """Spec thresholds just above / below the exact minimum: sat with a validated point, and unsat."""
    model = make_fc(7, sizes=(3, 8, 8, 2))
    path = save(model, tmp_path / "net.onnx")
    graph32 = load_onnx(path)
    g64 = graph32.to(dtype=torch.float64)
    lo, hi = np.full(3, -0.5), np.full(3, 0.5)
    c = np.array([1.0, -1.0])
    m = _exact_min(g64, lo, hi, c)
    for delta, expect in ((-0.05, Verdict.UNSAT), (0.05, Verdict.SAT)):
        spec = Spec(3, 2, (Disjunct(lo, hi, c[None], np.array([m + delta])),))
        prob = Problem(graph32, spec, str(path), reference=OnnxReference(path))
        # lp_probe off: the counterexample must come from the MILP itself (callback or final point)
        r = run_backend("milp", prob, VerifyOptions(solver=solver, timeout=60), Deadline(60), lp_probe=False)
        assert r.verdict == expect, r.summary()
        if expect == Verdict.SAT:
            cex = r.counterexample
            assert cex.validated and spec.disjuncts[0].contains_input(cex.x)
            assert float(c @ cex.y) <= m + delta
        else:
            assert "tolerance" in r.message and r.bound > 0
    # a disjunction: unsafe if either disjunct is met; one unreachable, one reachable -> sat
    spec = Spec(3, 2, (Disjunct(lo, hi, c[None], np.array([m - 0.05])),
                       Disjunct(lo * 0.5, hi * 0.5, -c[None], np.array([10.0]))))
    prob = Problem(graph32, spec, str(path), reference=OnnxReference(path))
    r = run_backend("milp", prob, VerifyOptions(solver=solver), Deadline(60))
    assert r.verdict == Verdict.SAT and r.counterexample.disjunct == 1


def test_lp_and_dual_never_claim_unvalidated_sat(tmp_path):
    path = save(make_fc(8, sizes=(3, 8, 8, 2)), tmp_path / "net.onnx")
    graph32 = load_onnx(path)
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    c = np.array([1.0, -1.0])
    m = _exact_min(graph32.to(dtype=torch.float64), lo, hi, c)
    for delta in (-0.02, 0.3):
        spec = Spec(3, 2, (Disjunct(lo, hi, c[None], np.array([m + delta])),))
        prob = Problem(graph32, spec, str(path), reference=OnnxReference(path))
        for name in ("lp", "dual"):
            r = run_backend(name, prob, VerifyOptions(), Deadline(30))
            if delta < 0:
                assert r.verdict in (Verdict.UNSAT, Verdict.UNKNOWN)
                assert r.bound <= -delta + 1e-6  # the exact minimum of c y - d is -delta
            else:
                assert r.verdict in (Verdict.SAT, Verdict.UNKNOWN)
                if r.verdict == Verdict.SAT:
                    assert r.counterexample.validated


def test_methods_are_registered():
    from verifier.methods.registry import available_methods, get_method

    names = available_methods()
    for n in ("milp", "lp", "dual"):
        assert n in names
        assert callable(get_method(n))
    assert set(backends.available_backends()) >= {"milp", "lp", "dual"}
    assert set(backends.available_solvers()) >= set(SOLVERS)
    with pytest.raises(KeyError):
        get_backend("nope")


# ------------------------------------------------------------------------------------------------ solvers
def test_gurobi_size_limit_falls_back_to_highs(capsys):
    """A model beyond the pip licence's size limit runs on HiGHS, with the reason in the messages."""
    n = 2600
    rng = np.random.default_rng(0)
    import scipy.sparse as sp

    A = sp.csr_matrix(np.ones((1, n)))
    model = LinearModel(rng.uniform(0.5, 1.0, n), np.zeros(n), np.ones(n), np.zeros(n, bool), A,
                        np.array([3.0]), np.array([np.inf]))
    s = make_solver("gurobi")
    out = s.solve(model, 30)
    assert out.status == SolveStatus.OPTIMAL and out.solver == "highs"
    assert out.objective == pytest.approx(np.sort(model.cost)[:3].sum(), rel=1e-7)
    assert s.messages and "10010" in s.messages[0] and "highs" in s.messages[0]
    assert "fell back" in capsys.readouterr().err


def test_solvers_solve_without_deprecation_warnings():
    """Each solver's MILP and LP solves give the same optimum and raise no DeprecationWarning (PuLP 3.3
    deprecated the CBC command our adapter used, one warning per solve: 105 in a test run)."""
    graph = load_onnx_model(make_fc(3, sizes=(3, 12, 12, 2)))
    lo, hi = _box(graph, 3, 0.4)
    objs = {}
    for mode in ("milp", "lp"):
        model = encode_network(graph, _pre(graph, lo, hi), lo, hi, mode).with_objective(np.array([[1.0, -1.0]]),
                                                                                         np.zeros(1))
        for s in SOLVERS:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = make_solver(s).solve(model, 30.0)
            assert out.status == SolveStatus.OPTIMAL, (s, mode, out.message)
            dep = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
            assert not dep, (s, mode, dep)
            objs[s, mode] = out.objective
    for s in SOLVERS:
        assert objs[s, "milp"] == pytest.approx(objs["highs", "milp"], abs=1e-5)
        assert objs[s, "lp"] == pytest.approx(objs["highs", "lp"], abs=1e-6)
        assert objs[s, "lp"] <= objs[s, "milp"] + 1e-6


def test_solver_time_limit_is_honoured():
    """A MILP that takes far longer than the limit returns TIME_LIMIT close to the limit (each solver)."""
    graph = load_onnx_model(make_fc(11, sizes=(6, 40, 40, 40, 2)))
    lo, hi = np.full(6, -1.0), np.full(6, 1.0)
    model = encode_network(graph, _pre(graph, lo, hi), lo, hi, "milp").with_objective(np.array([[1.0, -1.0]]),
                                                                                       np.zeros(1))
    assert model.n_integer > 60
    for s in SOLVERS:
        t = time.perf_counter()
        out = make_solver(s).solve(model, 1.0)
        took = time.perf_counter() - t
        assert out.status in (SolveStatus.TIME_LIMIT, SolveStatus.OPTIMAL), s
        assert took < 8.0, f"{s} ignored the time limit ({took:.1f} s)"


# ------------------------------------------------------------------------------------------------ benchmarks
@needs_bench
def test_milp_answers_the_test_benchmark():
    folder = BENCH / "test"
    expected = read_expected(folder)
    from verifier.methods.registry import get_method

    milp = get_method("milp")
    for (onnx_rel, vnn_rel), exp in sorted(expected.items()):
        prob = load_problem(folder / onnx_rel, folder / vnn_rel)
        r = milp(prob, VerifyOptions(method="milp", timeout=60), Deadline(60))
        assert str(r.verdict) == exp, f"{onnx_rel} {vnn_rel}: {r.summary()}"


def _first_disjunct(bench: str, onnx_rel: str, vnn_rel: str):
    """The float64 graph of a benchmark instance and its spec's first disjunct."""
    prob = load_problem(BENCH / bench / onnx_rel, BENCH / bench / vnn_rel)
    return prob.graph.to(dtype=torch.float64), prob.spec.disjuncts[0]


@needs_bench
def test_cross_check_test_benchmark_sat_network():
    """test_sat: exact MILP (HiGHS, Gurobi) >= LP >= CROWN / dual, <= sampled; the optimum is negative (sat)."""
    g, dj = _first_disjunct("test", "test_sat.onnx", "test_prop.vnnlib")
    v = _cross_check(g, dj.lo, dj.hi, dj.C, dj.d, solvers=("highs", "gurobi"))  # CBC: ~10 s here
    assert v["milp"] < 0 < v["milp"] + 0.01


@needs_bench
@pytest.mark.slow
def test_cross_check_test_benchmark_unsat_network_all_solvers():
    """test_unsat: the three solvers agree on the exact optimum (CBC's default cutoff increment once made it
    stop ~8e-6 above the optimum here), and it lies above the LP / CROWN / dual bounds."""
    g, dj = _first_disjunct("test", "test_unsat.onnx", "test_prop.vnnlib")
    v = _cross_check(g, dj.lo, dj.hi, dj.C, dj.d, tol=1e-7)
    assert v["milp_cbc"] == pytest.approx(v["milp_highs"], abs=1e-7)
    assert v["milp"] > 0


@needs_bench
def test_cross_check_acasxu_sub_box():
    """ACAS Xu 1_1, property 4, on a sub-box around the centre: all orderings, and the three solvers agree."""
    g, dj = _first_disjunct("acasxu", "onnx/ACASXU_run2a_1_1_batch_2000.onnx", "vnnlib/prop_4.vnnlib")
    mid, rad = (dj.lo + dj.hi) / 2, (dj.hi - dj.lo) / 2
    lo, hi = mid - rad / 6, mid + rad / 6
    v = _cross_check(g, lo, hi, dj.C, dj.d)
    assert v["milp"] > 0  # property 4 holds (expected unsat) on the sub-box too


@needs_bench
def test_milp_acasxu_instance_with_each_solver():
    """ACAS Xu 2_7 / property 4 (expected unsat) through ``--method milp`` with HiGHS, Gurobi and CBC."""
    folder = BENCH / "acasxu"
    prob = load_problem(folder / "onnx/ACASXU_run2a_2_7_batch_2000.onnx", folder / "vnnlib/prop_4.vnnlib")
    for s in SOLVERS:
        r = run_backend("milp", prob, VerifyOptions(solver=s, timeout=116), Deadline(116))
        assert r.verdict == Verdict.UNSAT, (s, r.summary())
        # the LP and dual bounds lie below the MILP's proven bound
    lp = run_backend("lp", prob, VerifyOptions(), Deadline(60))
    dual = run_backend("dual", prob, VerifyOptions(), Deadline(60))
    assert lp.bound >= dual.bound - 1e-6
    assert lp.verdict != Verdict.SAT and dual.verdict != Verdict.SAT


@needs_bench
def test_milp_timeout_verdict():
    """A MILP too hard for the deadline ends in TIMEOUT (not a guess), close to the deadline."""
    folder = BENCH / "acasxu"
    prob = load_problem(folder / "onnx/ACASXU_run2a_1_1_batch_2000.onnx", folder / "vnnlib/prop_2.vnnlib")
    t = time.perf_counter()
    r = run_backend("milp", prob, VerifyOptions(timeout=2.0), Deadline(2.0), tighten=None, split_threshold=0)
    assert r.verdict == Verdict.TIMEOUT, r.summary()
    assert time.perf_counter() - t < 8.0
