"""MILP refinement of the root's intermediate bounds, before (or between) ReLU-splitting searches.

Single-neuron relaxations (CROWN, alpha-CROWN, the triangle LP) all bound a neuron by its
relaxation optimum; on deep, wide nets with large input boxes (mnist_fc 256x4 / 256x6 at
eps 0.05) those bounds stay loose, most neurons of the later layers stay unstable, and splitting
converges slowly. An exact (big-M MILP) bound of an intermediate neuron over the network up to it is
tighter, and every later layer and the objective gain from it (alpha,beta-CROWN's ``bab-refine``).

For each pre-activation node after the first nonlinearity, in order: the network up to the node is
encoded exactly with the bounds refined so far (``encode_network(stop_at=)``), and each unstable
neuron's lower and upper bounds are minimised under a per-neuron time limit. Whatever the solve
reaches, the solver's dual bound (``ModelSession.bound``: Gurobi's ``ObjBound``) is a valid bound; a
margin covers its feasibility tolerances. A bound is only ever tightened. After each node the later
nodes' bounds are re-derived by CROWN with the refined ones fixed (and intersected with the previous
ones). Neurons are taken widest relaxation first (``-l u / (u - l)``), so an interrupted layer has refined the ones that
matter most. The solves of a layer run on ``threads`` Gurobi models kept open side by side
(``SolverAdapter.open``, one Python thread each: the solver releases the GIL).

Gurobi only: HiGHS solves these MILPs one to two orders of magnitude slower (about 26 neurons in
120 s on mnist_fc 256x4), which the splitting search uses better. Where gurobipy is missing or its
licence does not cover the model (the pip wheel's size-limited licence: about 2000 variables and
constraints), the refinement stops there and says so in the log; the bounds refined until then stay.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from backends.box import all_finite, apply_bound, box_tensors, count_unstable, node_bounds
from backends.encoding import NetworkEncoding, encode_network
from backends.solvers import ModelSession, SolverAdapter, SolverUnavailable, get_solver
from verifier.bab.common import Rows
from verifier.bounds.crown import after_nonlinear, intermediate_bounds, pre_activation_nodes
from verifier.bounds.objective import objective_bounds
from verifier.ir.deadline import Deadline
from verifier.ir.graph import Graph
from verifier.ir.problem import Problem
from verifier.settings import BoundSettings
from verifier.settings.bab import BaBSettings

log = logging.getLogger("verifier.bab")

SOLVER = "gurobi"  # see the module docstring: HiGHS is far too slow on these MILPs
# a refined bound need not be optimal to the last digit: the models' relative and absolute MIP gaps
GAP, ABS_GAP = 1e-4, 1e-4
# margin taken off a MILP dual bound: relative and absolute, far above Gurobi's 1e-6 feasibility and
# integrality tolerances times the size of these models' coefficients
MARGIN_REL, MARGIN_ABS = 1e-5, 1e-5


@dataclass
class RefineStats:
    nodes: int = 0  # pre-activation nodes refined (fully or in part)
    solves: int = 0
    stabilised: int = 0  # neurons made stable
    unstable_before: int = 0
    unstable_after: int = 0
    time_s: float = 0.0
    stopped: str = ""  # why it stopped early ("time", "licence: ...", "gurobipy: ...")
    per_node: list = field(default_factory=list)  # (node, unstable before, after, solves)


def _margin(b: float) -> float:
    return MARGIN_ABS + MARGIN_REL * abs(b)


@dataclass
class _Refinement:
    """One call of ``refine_intermediate``: the net, the box, the budget and the solver it runs with."""

    graph: Graph
    x_lo: np.ndarray
    x_hi: np.ndarray
    names: list  # the pre-activation nodes (the input excluded)
    deadline: Deadline
    per_neuron: float
    threads: int
    slopes: dict | None
    stats: RefineStats
    adapter: SolverAdapter

    def rederive(self, pre: dict) -> dict:
        """CROWN bounds of every node with the refined ones fixed (a node's bounds only shrink)."""
        xl, xh = box_tensors(self.graph, self.x_lo, self.x_hi)
        with torch.no_grad():
            return intermediate_bounds(self.graph, xl, xh, "crown", fixed={n: pre[n] for n in self.names},
                                       slopes=self.slopes)


def _open_sessions(adapter: SolverAdapter, enc: NetworkEncoding, n: int) -> list[ModelSession]:
    """``n`` (at least one) models of the encoding kept open in the solver; none left open if one fails."""
    base = enc.with_linear_objective(np.zeros(enc.n_vars))
    sessions: list[ModelSession] = []
    try:
        for _ in range(max(1, n)):
            sessions.append(adapter.open(base, gap=GAP, abs_gap=ABS_GAP))
    except SolverUnavailable:
        for s in sessions:
            s.close()
        raise
    return sessions


def _bound_side_by_side(sessions: list[ModelSession], enc: NetworkEncoding, items, limit: float,
                        deadline: Deadline) -> dict:
    """Minimise ``s (Y[j] v + y0[j])`` for each item ``(j, s)`` on the sessions, a thread each, until the items or
    the deadline run out; ``{(j, s): a valid lower bound}`` (the dual bound less the margin)."""
    Y, y0 = enc.output
    Y = Y.tocsr()
    work: queue.SimpleQueue = queue.SimpleQueue()
    for it in items:
        work.put(it)
    out: dict = {}
    errors: list = []

    def run(session: ModelSession):
        try:
            while not deadline.expired():
                try:
                    j, s = work.get_nowait()
                except queue.Empty:
                    return
                cost = np.zeros(enc.n_vars)
                row = Y[j].toarray().reshape(-1)
                cost[:row.size] = s * row
                # a lower bound above 0 (or an upper bound below 0) settles the neuron: stop there
                b = session.bound(cost, s * float(y0[j]), min(limit, deadline.left()), stop_at=0.0)
                if b is not None:
                    out[(j, s)] = b - _margin(b)
        except Exception as e:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,), daemon=True) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]  # SolverUnavailable where the licence does not cover the model
    return out


def _refine_node(r: _Refinement, pre: dict, name: str) -> bool:
    """MILP bounds of node ``name``'s unstable neurons, written into ``pre``; False where there was nothing to
    refine. Raises ``SolverUnavailable`` (recorded in ``r.stats``) where the solver cannot run the model."""
    lo_t, hi_t = pre[name]
    lo, hi, unstable = node_bounds(pre, name)
    if unstable.size == 0:
        return False
    order = unstable[np.argsort(lo[unstable] * hi[unstable] / (hi[unstable] - lo[unstable]))]  # widest first
    enc = encode_network(r.graph, {n: pre[n] for n in r.names}, r.x_lo, r.x_hi, "milp", stop_at=name)
    if enc.n_unstable == 0:  # affine in the input on the box: CROWN's bounds are exact
        return False
    sessions = []
    try:
        sessions = _open_sessions(r.adapter, enc, r.threads)
        out = _bound_side_by_side(sessions, enc, [(int(j), s) for j in order for s in (1, -1)], r.per_neuron,
                                  r.deadline)
    except SolverUnavailable as e:
        r.stats.stopped = f"licence: {e}"
        log.info("MILP refinement of intermediate bounds stops at node %s: %s (%d variables, %d rows)", name, e,
                 enc.n_vars, enc.A.shape[0])
        raise
    finally:
        for s in sessions:
            s.close()
    for (j, s), b in out.items():
        apply_bound(lo, hi, j, s, b)
    lo = np.minimum(lo, hi)
    after = int(((lo < 0) & (hi > 0)).sum())
    r.stats.nodes += 1
    r.stats.solves += len(out)
    r.stats.stabilised += int(unstable.size) - after
    r.stats.per_node.append((name, int(unstable.size), after, len(out)))
    dt, dev, shape = r.graph.dtype, r.graph.device, lo_t.shape
    pre[name] = (torch.maximum(lo_t, torch.as_tensor(lo, dtype=dt, device=dev).reshape(shape)),
                 torch.minimum(hi_t, torch.as_tensor(hi, dtype=dt, device=dev).reshape(shape)))
    log.info("MILP refinement: node %s, %d unstable -> %d (%d solves), %.1fs left", name, unstable.size, after,
             len(out), r.deadline.left())
    return True


def refine_intermediate(graph: Graph, pre: dict, x_lo: np.ndarray, x_hi: np.ndarray, deadline: Deadline,
                        per_neuron: float = 1.0, threads: int = 2, slopes: dict | None = None,
                        stats: RefineStats | None = None, enough=None) -> dict:
    """Tighter bounds of the pre-activation nodes (a new dict like ``pre``, batch 1) within ``deadline``.

    ``enough(pre) -> bool``, when given, is asked after each node (with the later nodes re-derived): true
    ends the refinement there (e.g. the objective is proven on those bounds)."""
    stats = stats if stats is not None else RefineStats()
    t0 = time.monotonic()
    names = [n for n in pre_activation_nodes(graph) if n != graph.input_name]
    stats.unstable_before = count_unstable(pre, names)
    pre = dict(pre)
    if not all_finite(pre):  # NaN or infinite bounds (non-finite weights?): nothing to encode for a solver
        stats.stopped = "non-finite bounds"
        return pre
    adapter = get_solver(SOLVER, threads=1)  # one thread per model: the models solve side by side
    missing = adapter.missing()
    if missing:
        stats.stopped = missing
        log.info("MILP refinement of intermediate bounds skipped: %s", missing)
        return pre
    r = _Refinement(graph, x_lo, x_hi, names, deadline, per_neuron, threads, slopes, stats, adapter)
    changed = False
    for name in names:
        if not after_nonlinear(graph, name):  # affine in the input: its interval bounds are exact
            continue
        if deadline.left() < 0.5:
            stats.stopped = "time"
            break
        if changed:  # re-derive this and the later nodes from the refined ones (bounds only shrink)
            pre = r.rederive(pre)
            changed = False
            if enough is not None and enough(pre):
                stats.stopped = "enough"
                break
        try:
            changed = _refine_node(r, pre, name)
        except SolverUnavailable:
            break
    if changed:
        pre = r.rederive(pre)
    stats.unstable_after = count_unstable(pre, names)
    stats.time_s = time.monotonic() - t0
    return pre


def refine_root(problem: Problem, lo_np, hi_np, idx, settings: BaBSettings, deadline: Deadline, stats: dict):
    """The root's intermediate bounds refined by MILP (``refine.refine_intermediate``) within ``deadline``."""
    graph = problem.graph
    rows = Rows(problem.spec, idx, graph.device, graph.dtype)
    x_lo = torch.tensor(lo_np, dtype=graph.dtype, device=graph.device).reshape(1, -1)
    x_hi = torch.tensor(hi_np, dtype=graph.dtype, device=graph.device).reshape(1, -1)
    ob = objective_bounds(graph, rows.C, rows.d, x_lo, x_hi, BoundSettings("alpha-crown"), groups=rows.groups,
                          deadline=deadline)
    rs = RefineStats()

    def proven(pre) -> bool:  # CROWN proves every disjunct on the refined bounds: the search can start
        with torch.no_grad():
            o = objective_bounds(graph, rows.C, rows.d, x_lo, x_hi, BoundSettings("crown"), pre=pre)
        return bool(rows.group_ok(o.lower, o.tol, torch.zeros(1, len(rows.groups), dtype=torch.bool,
                                                               device=graph.device)).all())

    pre = refine_intermediate(graph, ob.pre, lo_np, hi_np, deadline, settings.relu_refine_neuron_s,
                              settings.relu_refine_threads or min(4, os.cpu_count() or 1), ob.inter_slopes, rs,
                              enough=proven)
    stats["refine_time"] = stats.get("refine_time", 0.0) + rs.time_s
    stats["refine_solves"] = stats.get("refine_solves", 0) + rs.solves
    stats["refine_unstable"] = [rs.unstable_before, rs.unstable_after]
    if rs.stopped and rs.stopped not in ("time", "enough"):
        stats["refine_stopped"] = rs.stopped
    log.info("relu split: MILP refinement of the root's intermediate bounds: %d -> %d unstable ReLUs, %d solves, "
             "%.1fs", rs.unstable_before, rs.unstable_after, rs.solves, rs.time_s)
    return pre if rs.nodes else None
