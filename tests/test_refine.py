"""MILP refinement of intermediate bounds (verifier/bab/refine.py), against sampling and an exact MILP.

The refined bounds must hold every sampled activation (soundness), never be looser than the bounds they
start from, and, on a net small enough to solve each neuron's MILP to optimality, equal the exact range of
every neuron whose range crosses zero (the refinement really is exact there, not merely valid). The exact
range comes from HiGHS on the same big-M encoding, the refinement from Gurobi: two solvers cross-checked.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import make_fc

from frontends.onnx.loader import graph_from_onnx
from verifier.bab.refine import RefineStats, refine_intermediate
from verifier.bounds import intermediate_bounds
from verifier.bounds.crown import after_nonlinear, pre_activation_nodes
from verifier.ir.deadline import Deadline

pytest.importorskip("gurobipy", reason="the MILP refinement uses Gurobi (gurobipy, from the test extras)")

F64 = torch.float64


def _setup(seed, sizes, width=1.0):
    g = graph_from_onnx(make_fc(seed, sizes=sizes), dtype=F64)
    lo, hi = -width * np.ones(sizes[0]), width * np.ones(sizes[0])
    xl, xh = torch.tensor(lo).reshape(1, -1), torch.tensor(hi).reshape(1, -1)
    pre = intermediate_bounds(g, xl, xh, "crown")
    return g, lo, hi, xl, xh, pre


def _activations(g, x):
    names = pre_activation_nodes(g)
    vals = {g.input_name: x.reshape(x.shape[0], *g.input_shape)}
    for node in g.nodes:
        vals[node.name] = node.op.forward(*[vals[i] for i in node.inputs])
    return {n: vals[n].reshape(x.shape[0], -1) for n in names}


def _exact_range(g, pre, lo, hi, name, j):
    """(min, max) of neuron ``j`` of node ``name`` over the box, by HiGHS on the big-M encoding."""
    from backends.encoding import encode_network
    from backends.solvers import SolveStatus, make_solver
    enc = encode_network(g, pre, lo, hi, "milp", stop_at=name)
    Y, y0 = enc.output
    row = Y.tocsr()[j].toarray().reshape(-1)
    solver = make_solver("highs")
    out = []
    for s in (1, -1):
        o = solver.solve(enc.with_linear_objective(s * row, s * float(y0[j])), 60)
        assert o.status == SolveStatus.OPTIMAL, o
        out.append(s * o.objective)
    return out


@pytest.mark.parametrize("seed", [0, 3])
def test_refined_bounds_are_sound_and_exact(seed):
    g, lo, hi, xl, xh, pre = _setup(seed, (4, 10, 10, 10, 2))
    stats = RefineStats()
    ref = refine_intermediate(g, pre, lo, hi, Deadline(60), per_neuron=10.0, threads=2, stats=stats)
    assert stats.solves > 0 and stats.stopped == "", stats
    names = pre_activation_nodes(g)
    tightened = 0
    for n in names:  # only ever tighter
        assert bool((ref[n][0] >= pre[n][0]).all()) and bool((ref[n][1] <= pre[n][1]).all()), n
        tightened += int((ref[n][0] > pre[n][0] + 1e-6).sum() + (ref[n][1] < pre[n][1] - 1e-6).sum())
    assert tightened > 0, "CROWN's bounds were already exact: the net does not exercise the refinement"
    # soundness: random points and vertices of the box
    rng = np.random.default_rng(seed)
    for u in (rng.uniform(size=(20000, lo.size)), rng.integers(0, 2, size=(2000, lo.size))):
        x = xl + (xh - xl) * torch.tensor(u, dtype=F64)
        a = _activations(g, x)
        for n in names:
            lo_n, hi_n = (t.reshape(1, -1) for t in ref[n])
            assert bool((a[n] >= lo_n - 1e-9).all() and (a[n] <= hi_n + 1e-9).all()), n
    # exactness where the exact range crosses zero (elsewhere the solve may stop once the sign is settled)
    checked = 0
    for n in names:
        if not after_nonlinear(g, n):
            continue
        lo_n, hi_n = (t.reshape(-1) for t in ref[n])
        for j in range(lo_n.numel()):
            if not (pre[n][0].reshape(-1)[j] < 0 < pre[n][1].reshape(-1)[j]):
                continue
            emin, emax = _exact_range(g, pre, lo, hi, n, j)
            assert lo_n[j] <= emin + 1e-9 and hi_n[j] >= emax - 1e-9, (n, j, emin, emax)  # sound
            if emin < 0 < emax:
                assert math.isclose(float(lo_n[j]), emin, abs_tol=1e-3) and \
                    math.isclose(float(hi_n[j]), emax, abs_tol=1e-3), (n, j, float(lo_n[j]), emin,
                                                                        float(hi_n[j]), emax)
                checked += 1
    assert checked >= 3, checked


def test_refinement_stops_at_the_deadline_with_valid_bounds():
    g, lo, hi, xl, xh, pre = _setup(1, (4, 10, 10, 10, 2))
    stats = RefineStats()
    ref = refine_intermediate(g, pre, lo, hi, Deadline(0.0), stats=stats)
    assert stats.stopped == "time" and stats.solves == 0
    for n in pre_activation_nodes(g):
        assert torch.equal(ref[n][0], pre[n][0]) and torch.equal(ref[n][1], pre[n][1])


def test_refinement_ends_when_enough():
    """``enough`` is asked after each refined node; true ends the refinement there."""
    g, lo, hi, xl, xh, pre = _setup(0, (4, 10, 10, 10, 2))
    asked = []
    stats = RefineStats()
    refine_intermediate(g, pre, lo, hi, Deadline(60), per_neuron=10.0, stats=stats,
                        enough=lambda p: asked.append(p) is None)
    assert len(asked) == 1 and stats.stopped == "enough" and stats.nodes == 1, stats


def test_refinement_stops_where_the_licence_does_not_cover_the_model():
    """The pip wheel's size-limited Gurobi licence (about 2000 variables): a 2100-input net does not fit; the
    refinement says so and returns the bounds it started from (still valid)."""
    import gurobipy as gp
    try:
        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
        m = gp.Model(env=env)
        x = m.addMVar(2100, ub=1.0)
        m.setObjective(x.sum())
        m.optimize()
        m.dispose()
        pytest.skip("this Gurobi licence is not size-limited: there is no limit to hit")
    except gp.GurobiError:
        pass
    g, lo, hi, xl, xh, pre = _setup(2, (2100, 6, 6, 2), width=0.01)
    stats = RefineStats()
    ref = refine_intermediate(g, pre, lo, hi, Deadline(30), stats=stats)
    assert stats.stopped.startswith("licence"), stats
    for n in pre_activation_nodes(g):
        assert torch.equal(ref[n][0], pre[n][0]) and torch.equal(ref[n][1], pre[n][1])
