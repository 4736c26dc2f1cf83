"""Per-neuron bound tightening by LP (triangle relaxation) or MILP, layer by layer, within a time budget.

For each pre-activation node in topological order the network is encoded up to
that node (with the bounds tightened so far), and each unstable neuron's value is
minimised and maximised. LP bounds are made rigorous from the LP's duals
(``safe_lp_bound``); MILP bounds are the solver's dual bound less its tolerance.
After each layer the core's CROWN pass re-propagates the tightened bounds to the
later layers (``intermediate_bounds(..., fixed=...)``).

Each MILP is a model of its own (``SolverAdapter.solve``), not a ``ModelSession``
re-solved with a new objective: a kept model warm-starts from the previous solve,
which changes the bounds a time-limited solve reaches, and every adapter (HiGHS, the
fallback, included) can solve a model while only Gurobi keeps one open.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from backends.box import all_finite, apply_bound, box_tensors, count_unstable, node_bounds
from backends.encoding import NetworkEncoding, encode_network, safe_lp_bound
from backends.solvers.base import SolverAdapter, SolveStatus, StopRule
from verifier.bounds import intermediate_bounds, pre_activation_nodes
from verifier.ir.graph import Graph


@dataclass
class TightenStats:
    layers: int = 0
    neurons: int = 0
    solves: int = 0
    unstable_before: int = 0
    unstable_after: int = 0
    time_s: float = 0.0
    complete: bool = True
    per_layer: list = field(default_factory=list)


def tighten_bounds(graph: Graph, pre: dict, x_lo: np.ndarray, x_hi: np.ndarray, solver: SolverAdapter,
                   mode: str = "lp", time_budget: float = 10.0, per_neuron_limit: float = 1.0):
    """Tighter pre-activation bounds (dict like ``pre``) and ``TightenStats``.

    Only neurons unstable under the current bounds are solved for; bounds only ever shrink. Bounds with a NaN or
    an infinity are never encoded for a solver: they come back as they are (``stats.complete`` False).
    """
    if mode not in ("lp", "milp"):
        raise ValueError(f"unknown tightening mode {mode!r}")
    t0 = time.monotonic()
    end = t0 + max(0.0, time_budget)
    names = [n for n in pre_activation_nodes(graph) if n != graph.input_name]
    stats = TightenStats(unstable_before=count_unstable(pre, names))
    if not all_finite(pre) or not (np.all(np.isfinite(x_lo)) and np.all(np.isfinite(x_hi))):
        stats.complete = False
        return pre, stats
    dt, dev = graph.dtype, graph.device
    xl, xh = box_tensors(graph, x_lo, x_hi)
    fixed: dict = {}
    for name in names:
        if time.monotonic() >= end:
            stats.complete = False
            break
        if fixed:
            with torch.no_grad():
                pre = intermediate_bounds(graph, xl, xh, "crown", fixed=fixed)
        lo_t, hi_t = pre[name]
        lo, hi, unstable = node_bounds(pre, name)
        if unstable.size == 0:
            continue
        enc = encode_network(graph, pre, x_lo, x_hi, "lp" if mode == "lp" else "milp", stop_at=name)
        if enc.n_unstable == 0:  # affine in the input on the box: CROWN's bound is already exact
            continue
        before = int(unstable.size)
        if mode == "lp":
            stats.solves += _tighten_by_lp(enc, unstable, lo, hi, solver, end)
        else:
            stats.solves += _tighten_by_milp(enc, unstable, lo, hi, solver, end, per_neuron_limit)
        lo = np.minimum(lo, hi)  # guard against crossing by rounding (keeps the box non-empty)
        shape = lo_t.shape
        fixed[name] = (torch.as_tensor(lo, dtype=dt, device=dev).reshape(shape),
                       torch.as_tensor(hi, dtype=dt, device=dev).reshape(shape))
        after = int(((lo < 0) & (hi > 0)).sum())
        stats.layers += 1
        stats.neurons += before
        stats.per_layer.append((name, before, after))
    if fixed and time.monotonic() < end:  # propagate the last layer's tightening to the later layers
        with torch.no_grad():
            pre = intermediate_bounds(graph, xl, xh, "crown", fixed=fixed)
    elif fixed:  # out of time: intersect without propagating (still valid)
        pre = dict(pre)
        for name, (lo_f, hi_f) in fixed.items():
            lo0, hi0 = pre[name]
            pre[name] = (torch.maximum(lo0, lo_f), torch.minimum(hi0, hi_f))
    stats.unstable_after = count_unstable(pre, names)
    stats.time_s = time.monotonic() - t0
    return pre, stats


def _tighten_by_lp(enc: NetworkEncoding, unstable, lo, hi, solver: SolverAdapter, end: float) -> int:
    """Both LP bounds of each unstable neuron (one LP, many costs), made rigorous from the duals; the solves made."""
    Y, y0 = enc.output
    Y = Y.tocsr()
    costs = []
    for j in unstable:
        row = Y[j].toarray().reshape(-1)
        costs.append((row, float(y0[j])))
        costs.append((-row, -float(y0[j])))
    base = enc.with_linear_objective(np.zeros(enc.n_vars))
    outs = solver.solve_objectives(base, costs, max(0.0, end - time.monotonic()))
    for k, j in enumerate(unstable):
        for sgn, o, (c, off) in ((1, outs[2 * k], costs[2 * k]), (-1, outs[2 * k + 1], costs[2 * k + 1])):
            if o.status != SolveStatus.OPTIMAL:
                continue
            b = safe_lp_bound(base.with_cost(c, off), o.row_dual) if o.row_dual is not None else -math.inf
            apply_bound(lo, hi, j, sgn, b)
    return len(outs)


def _tighten_by_milp(enc: NetworkEncoding, unstable, lo, hi, solver: SolverAdapter, end: float,
                     per_neuron_limit: float) -> int:
    """Both MILP dual bounds (less the solver's tolerance) of each unstable neuron, a model each; the solves made."""
    Y, y0 = enc.output
    Y = Y.tocsr()
    tol = solver.tolerance()
    solves = 0
    for j in unstable:
        row = Y[j].toarray().reshape(-1)
        for sgn in (1, -1):
            left = end - time.monotonic()
            if left <= 0:
                break
            m = enc.with_linear_objective(sgn * row, sgn * float(y0[j]))
            o = solver.solve(m, min(per_neuron_limit, left), StopRule())
            solves += 1
            if o.bound is None or not math.isfinite(o.bound):
                continue
            apply_bound(lo, hi, j, sgn, o.bound - tol * (1.0 + abs(o.bound)))
    return solves
