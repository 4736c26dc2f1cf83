"""MILP refinement of the root's intermediate bounds, before (or between) ReLU-splitting searches.

Single-neuron relaxations (CROWN, alpha-CROWN, the triangle LP) all bound a neuron by its
relaxation optimum; on deep, wide nets with large input boxes (mnist_fc 256x4 / 256x6 at
eps 0.05) those bounds stay loose, most neurons of the later layers stay unstable, and splitting
converges slowly. An exact (big-M MILP) bound of an intermediate neuron over the network up to it is
tighter, and every later layer and the objective gain from it (alpha,beta-CROWN's ``bab-refine``).

For each pre-activation node after the first nonlinearity, in order: the network up to the node is
encoded exactly with the bounds refined so far (``encode_network(stop_at=)``), and each unstable
neuron's lower and upper bounds are minimised under a per-neuron time limit. Whatever the solve
reaches, the solver's dual bound (``ObjBound``) is a valid bound; a margin covers its feasibility
tolerances. A bound is only ever tightened. After each node the later nodes' bounds are re-derived
by CROWN with the refined ones fixed (and intersected with the previous ones). Neurons are taken
widest relaxation first (``-l u / (u - l)``), so an interrupted layer has refined the ones that
matter most. The solves of a layer run on ``threads`` Gurobi models side by side (the solver
releases the GIL).

Gurobi only: HiGHS solves these MILPs one to two orders of magnitude slower (about 26 neurons in
120 s on mnist_fc 256x4), which the splitting search uses better. Where gurobipy is missing or its
licence does not cover the model (the pip wheel's size-limited licence: about 2000 variables and
constraints), the refinement stops there and says so in the log; the bounds refined until then stay.
"""
from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from backends.base import SolverUnavailable
from backends.encoder import encode_network
from backends.gurobi import LICENSE_CODES, GurobiAdapter
from backends.tighten import count_unstable, node_bounds
from verifier.bab.common import Rows
from verifier.bounds.crown import after_nonlinear, intermediate_bounds, pre_activation_nodes
from verifier.bounds.objective import objective_bounds
from verifier.ir.deadline import Deadline
from verifier.ir.graph import Graph
from verifier.ir.problem import Problem
from verifier.settings import BoundSettings
from verifier.settings.bab import BaBSettings

log = logging.getLogger("verifier.bab")

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


class _Models:
    """``threads`` Gurobi copies of one encoding; ``solve(items)`` bounds (neuron, sense) items on them."""

    def __init__(self, enc, threads: int):
        adapter = GurobiAdapter(threads=1)
        base = enc.with_linear_objective(np.zeros(enc.n_vars))
        self.models = []
        try:
            for _ in range(max(1, threads)):
                _, _, m, x, _ = adapter._build(base, math.inf)
                m.Params.MIPGap = 1e-4  # a refined bound need not be optimal to the last digit
                m.Params.MIPGapAbs = 1e-4
                self.models.append((m, x))
        except SolverUnavailable:
            self.close()
            raise

    def close(self):
        for m, _ in self.models:
            m.dispose()
        self.models = []

    def solve(self, Y, y0, items, limit: float, deadline: Deadline, out: dict):
        """Minimise ``s (Y[j] v + y0[j])`` for each item ``(j, s)``; ``out[(j, s)]`` = a valid lower bound."""
        work: queue.SimpleQueue = queue.SimpleQueue()
        for it in items:
            work.put(it)
        errors: list = []

        def run(m, x):
            try:
                while not deadline.expired():
                    try:
                        j, s = work.get_nowait()
                    except queue.Empty:
                        return
                    cost = np.zeros(x.shape[0])
                    row = Y[j].toarray().reshape(-1)
                    cost[:row.size] = s * row
                    x.Obj = cost
                    m.ObjCon = s * float(y0[j])
                    m.Params.TimeLimit = max(0.01, min(limit, deadline.left()))
                    # a lower bound above 0 (or an upper bound below 0) settles the neuron: stop there
                    m.Params.BestBdStop = 0.0
                    m.optimize()
                    try:
                        b = float(m.ObjBound)
                    except Exception:  # no bound (interrupted before the root relaxation)
                        continue
                    if math.isfinite(b):
                        out[(j, s)] = b - _margin(b)
            except Exception as e:  # noqa: BLE001 - reported by the caller
                errors.append(e)

        threads = [threading.Thread(target=run, args=mx, daemon=True) for mx in self.models]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            e = errors[0]
            if getattr(e, "errno", None) in LICENSE_CODES:  # the licence does not cover the model
                raise SolverUnavailable(f"Gurobi error {e.errno}: {e}") from None
            raise e


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
    dt, dev = graph.dtype, graph.device
    xl = torch.tensor(np.array(x_lo, dtype=np.float64), dtype=dt, device=dev).reshape(1, -1)
    xh = torch.tensor(np.array(x_hi, dtype=np.float64), dtype=dt, device=dev).reshape(1, -1)
    pre = dict(pre)
    try:
        import gurobipy  # noqa: F401
    except ImportError as e:
        stats.stopped = f"gurobipy: {e}"
        log.info("MILP refinement of intermediate bounds skipped: gurobipy is not installed")
        return pre
    changed = False
    for name in names:
        if not after_nonlinear(graph, name):  # affine in the input: its interval bounds are exact
            continue
        if deadline.left() < 0.5:
            stats.stopped = "time"
            break
        if changed:  # re-derive this and the later nodes from the refined ones (bounds only shrink)
            with torch.no_grad():
                pre = intermediate_bounds(graph, xl, xh, "crown", fixed={n: pre[n] for n in names}, slopes=slopes)
            changed = False
            if enough is not None and enough(pre):
                stats.stopped = "enough"
                break
        lo_t, hi_t = pre[name]
        lo, hi, unstable = node_bounds(pre, name)
        if unstable.size == 0:
            continue
        order = unstable[np.argsort(lo[unstable] * hi[unstable] / (hi[unstable] - lo[unstable]))]  # widest first
        enc = encode_network(graph, {n: pre[n] for n in names}, x_lo, x_hi, "milp", stop_at=name)
        if enc.n_unstable == 0:  # affine in the input on the box: CROWN's bounds are exact
            continue
        Y, y0 = enc.output
        Y = Y.tocsr()
        out: dict = {}
        models = None
        try:
            models = _Models(enc, threads)
            models.solve(Y, y0, [(int(j), s) for j in order for s in (1, -1)], per_neuron, deadline, out)
        except SolverUnavailable as e:
            stats.stopped = f"licence: {e}"
            log.info("MILP refinement of intermediate bounds stops at node %s: %s (%d variables, %d rows)", name, e,
                     enc.n_vars, enc.A.shape[0])
            break
        finally:
            if models is not None:
                models.close()
        for (j, s), b in out.items():
            if s > 0:
                lo[j] = max(lo[j], b)
            else:
                hi[j] = min(hi[j], -b)
        lo = np.minimum(lo, hi)
        after = int(((lo < 0) & (hi > 0)).sum())
        stats.nodes += 1
        stats.solves += len(out)
        stats.stabilised += int(unstable.size) - after
        stats.per_node.append((name, int(unstable.size), after, len(out)))
        shape = lo_t.shape
        new_lo = torch.maximum(lo_t, torch.as_tensor(lo, dtype=dt, device=dev).reshape(shape))
        new_hi = torch.minimum(hi_t, torch.as_tensor(hi, dtype=dt, device=dev).reshape(shape))
        pre[name] = (new_lo, new_hi)
        changed = True
        log.info("MILP refinement: node %s, %d unstable -> %d (%d solves), %.1fs left", name, unstable.size, after,
                 len(out), deadline.left())
    if changed:
        with torch.no_grad():
            pre = intermediate_bounds(graph, xl, xh, "crown", fixed={n: pre[n] for n in names}, slopes=slopes)
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
