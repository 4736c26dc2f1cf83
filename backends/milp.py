"""Complete verification by a big-M MILP, one solve per (unproven) disjunct.

For disjunct ``j`` the MILP minimises ``t >= max_i (C_j y - d_j)_i`` over the exact
encoding of the network on the disjunct's box. Verdicts:

- ``sat``: an incumbent with ``t <= 0`` whose input, re-run through onnxruntime,
  meets a disjunct (``validate_candidate``). A point that does not validate is
  polished (binaries fixed, the remaining LP re-solved) and tried again; failing
  that the disjunct is left ``unknown``.
- ``unsat``: every disjunct's proven lower bound (the MIP dual bound, or the core's
  CROWN bound) exceeds ``max(1e-6, solver tolerance)`` (reaches it, for a disjunct whose rows are all
  strict: ``verifier.bounds.proof``). This relies on the solver's feasibility tolerances, and the
  result says so. The model encodes the closure ``C y <= d`` of strict rows (sound for a proof);
  a point on the boundary of a strict row is only a candidate: validation rejects it and the
  disjunct stays ``unknown``.

Before any MILP, the triangle LP's optimal input is tried as a counterexample
(``lp_probe``; cheap, and often enough on sat instances). In the default decision mode
the solver stops as soon as the sign is settled (dual bound above the margin, or a
validated counterexample). With ``exact=True`` every disjunct is solved to optimality
(no early stop, CROWN-proven disjuncts are solved too), which gives the exact optimum
for comparisons.

Input splitting (``split_threshold > 0``, networks with at most ``split_max_inputs``
inputs, where halving a box pays): a box whose CROWN bounds leave more
than ``split_threshold`` unstable ReLUs is halved along the input dimension with
the largest influence on the open rows (width times the CROWN coefficient), up to
``max_boxes`` boxes; CROWN settles what it can on each sub-box and the MILP solves
the rest. The sub-boxes cover the box, so the answer stays complete; each MILP is
smaller and its big-M constants tighter.

The verdict and the per-disjunct summary are assembled in ``backends.milp_result``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from backends.backend import Backend, register_backend, solution_counterexample, time_left
from backends.box import box_tensors, count_unstable
from backends.core_bounds import CoreBounds, RegionBounds
from backends.encoding import encode_network
from backends.milp_result import DisjunctRecord, MILPRun, milp_result
from backends.solvers import SolveStatus, StopRule, make_solver
from backends.tighten import tighten_bounds
from verifier.attack.validate import validate_candidate
from verifier.bounds import backward_lower, intermediate_bounds, objective_bounds, pre_activation_nodes
from verifier.bounds.exact import settle_near_zero
from verifier.bounds.proof import max_is_strict, refutes
from verifier.ir.result import Result
from verifier.ir.spec import Spec
from verifier.settings import BoundSettings


@dataclass
class Box:
    """An input box to solve, its open disjuncts and, once known, its CROWN bounds (``pre``) and values (``crown``)."""

    lo: np.ndarray
    hi: np.ndarray
    todo: list[int]
    pre: dict | None = None  # None: a sub-box whose CROWN bounds are still to compute
    crown: dict | None = None  # disjunct -> CROWN lower bound on the box


@dataclass(eq=False)
class MILPBackend(Backend):
    name = "milp"
    complete = True
    description = "complete MILP (big-M)"

    solver: str = "highs"
    exact: bool = False  # every disjunct to optimality (no early stop; CROWN-proven ones too)
    tighten: str | None = "lp"  # per-neuron tightening before each MILP: "lp", "milp" or None
    tighten_fraction: float = 0.25  # of the time left, at most tighten_budget seconds
    tighten_budget: float = 30.0
    threads: int | None = None
    verbose: bool = False
    split_threshold: int = 80  # unstable ReLUs above which a box is halved (0: no splitting)
    split_max_inputs: int = 16
    max_boxes: int = 512
    lp_probe: bool = True  # the triangle LP's optimal input tried as a counterexample first
    lp_probe_fraction: float = 0.15

    def run(self, graph, spec: Spec, core: CoreBounds, deadline=None, reference=None) -> Result:
        t_start = time.perf_counter()
        solver = make_solver(self.solver, threads=self.threads, verbose=self.verbose)
        thr = max(1e-6, solver.tolerance())
        ctx = MILPRun(graph, spec, solver, thr, deadline, reference, {j: [] for j in range(len(spec.disjuncts))},
                      {"tighten": 0.0, "encode": 0.0, "solve": 0.0, "split": 0.0},
                      {"solver": self.solver, "margin": thr, "tighten": [], "model": [], "boxes": 0,
                       "leaves_milp": 0})
        # regions with their most promising (smallest CROWN value) disjunct first
        for region in sorted(core.regions, key=lambda r: min(r.crown_value(j) for j in r.disjuncts)):
            if ctx.stop:
                break
            self._solve_region(ctx, region)
        ctx.stats["counterexample_source"] = (ctx.source or "the MILP solution") if ctx.sat is not None else None
        return milp_result(self.name, ctx, core, time.perf_counter() - t_start)

    # ------------------------------------------------------------------------------------------------
    def _solve_region(self, ctx: MILPRun, region: RegionBounds) -> None:
        """The region's disjuncts that CROWN leaves open: LP probe, then the box and its sub-boxes."""
        todo = []
        for j in region.disjuncts:
            if not self.exact and region.crown_proven(j):
                ctx.leaves[j].append(DisjunctRecord(j, "crown", region.crown_value(j)))
            else:
                todo.append(j)
        if not todo:
            return
        if self.lp_probe and not self.exact and ctx.reference is not None:
            t0 = time.perf_counter()
            cex = self._lp_probe(ctx, region, todo)
            ctx.timings["lp_probe"] = ctx.timings.get("lp_probe", 0.0) + time.perf_counter() - t0
            if cex is not None:
                ctx.sat, ctx.stop, ctx.source = cex, True, "the LP relaxation's optimal input"
                ctx.leaves[cex.disjunct].append(DisjunctRecord(cex.disjunct, "sat", None,
                                                               message="LP relaxation point validated"))
                return
        # the region's own box first
        queue = [Box(region.lo, region.hi, todo, region.pre, {j: region.crown_value(j) for j in todo})]
        while queue and not ctx.stop:
            box = queue.pop()
            if time_left(ctx.deadline) <= 0:
                for j in box.todo:
                    ctx.leaves[j].append(DisjunctRecord(j, "timeout", None, message="no time left"))
                ctx.stop = True
                break
            ctx.stats["boxes"] += 1
            if box.pre is None:  # a sub-box: the core's CROWN bounds on it
                t0 = time.perf_counter()
                self._box_bounds(ctx, box)
                ctx.timings["split"] += time.perf_counter() - t0
                if not box.todo:
                    continue
            if self._should_split(ctx.graph, box.pre, ctx.stats["boxes"] + len(queue)):
                t0 = time.perf_counter()
                queue.extend(self._halves(ctx, box))
                ctx.timings["split"] += time.perf_counter() - t0
                continue
            self._solve_box(ctx, box)

    def _lp_probe(self, ctx: MILPRun, region: RegionBounds, todo):
        """Cheap first look for a counterexample: the triangle LP's optimal input, validated by onnxruntime.

        Gets at most ``lp_probe_fraction`` of the time left, over all disjuncts of the region.
        """
        end = time.monotonic() + self.lp_probe_fraction * time_left(ctx.deadline)
        enc = encode_network(ctx.graph, region.pre, region.lo, region.hi, "lp")
        for j in sorted(todo, key=region.crown_value):
            left = min(end - time.monotonic(), time_left(ctx.deadline))
            if left <= 0:
                return None
            dj = ctx.spec.disjuncts[j]
            model = enc.with_objective(dj.C, dj.d)
            cex = solution_counterexample(ctx.reference, ctx.spec, model, ctx.solver.solve(model, left))
            if cex is not None:
                return cex
        return None

    def _should_split(self, graph, pre, n_boxes) -> bool:
        if not self.split_threshold or n_boxes >= self.max_boxes or graph.n_inputs > self.split_max_inputs:
            return False
        return count_unstable(pre, pre_activation_nodes(graph)) > self.split_threshold

    def _box_bounds(self, ctx: MILPRun, box: Box) -> None:
        """CROWN bounds on a sub-box; disjuncts CROWN proves there are recorded and dropped from ``box.todo``."""
        xl, xh = box_tensors(ctx.graph, box.lo, box.hi)
        with torch.no_grad():
            box.pre = intermediate_bounds(ctx.graph, xl, xh, "crown")
        box.crown, left = {}, []
        for j in box.todo:
            box.crown[j], proven = _crown_disjunct(ctx, j, xl, xh, box.pre)
            if not self.exact and proven:
                ctx.leaves[j].append(DisjunctRecord(j, "crown", box.crown[j]))
            else:
                left.append(j)
        box.todo = left

    def _halves(self, ctx: MILPRun, box: Box) -> list[Box]:
        """The box halved along the input dimension with the largest influence on the open rows (width times
        |CROWN coefficient|); the lower half last (solved first)."""
        graph = ctx.graph
        xl, xh = box_tensors(graph, box.lo, box.hi)
        C = torch.tensor(np.concatenate([ctx.spec.disjuncts[j].C for j in box.todo], 0), dtype=graph.dtype,
                         device=graph.device)
        A0 = C.reshape(1, C.shape[0], *graph.output_shape)
        with torch.no_grad():
            _, Ax, _ = backward_lower(graph, graph.output_name, A0, xl, xh, box.pre, return_linear=True)
        k = int(np.argmax((Ax[0].abs().sum(0).cpu().numpy()) * (box.hi - box.lo)))
        mid = 0.5 * (box.lo[k] + box.hi[k])
        hi1, lo2 = box.hi.copy(), box.lo.copy()
        hi1[k], lo2[k] = mid, mid
        return [Box(lo2, box.hi, box.todo), Box(box.lo, hi1, box.todo)]

    def _solve_box(self, ctx: MILPRun, box: Box) -> None:
        """Tighten the box's bounds, let CROWN settle what it can on them, then one MILP per open disjunct."""
        ctx.stats["leaves_milp"] += 1
        pre, todo = box.pre, box.todo
        if self.tighten and time_left(ctx.deadline) > 0:
            t0 = time.perf_counter()
            budget = min(self.tighten_budget, self.tighten_fraction * time_left(ctx.deadline))
            pre, tst = tighten_bounds(ctx.graph, pre, box.lo, box.hi, ctx.solver, self.tighten, budget)
            ctx.timings["tighten"] += time.perf_counter() - t0
            ctx.stats["tighten"].append({"unstable_before": tst.unstable_before, "unstable_after": tst.unstable_after,
                                         "solves": tst.solves, "time_s": round(tst.time_s, 3),
                                         "complete": tst.complete})
            if not self.exact:  # the tighter bounds may let CROWN settle some disjuncts
                todo = self._crown_recheck(ctx, box, pre, todo)
        if not todo:
            return
        t0 = time.perf_counter()
        enc = encode_network(ctx.graph, pre, box.lo, box.hi, "milp")
        ctx.timings["encode"] += time.perf_counter() - t0
        ctx.stats["model"].append({"vars": int(enc.n_vars), "rows": int(enc.A.shape[0]),
                                   "binaries": int(enc.n_unstable)})
        for j in sorted(todo, key=lambda j: box.crown[j]):
            if time_left(ctx.deadline) <= 0:
                ctx.leaves[j].append(DisjunctRecord(j, "timeout", box.crown[j], message="no time left"))
                ctx.stop = True
                return
            t0 = time.perf_counter()
            rec, cex = self._solve_disjunct(ctx, enc, j, box.crown[j])
            ctx.timings["solve"] += time.perf_counter() - t0
            ctx.leaves[j].append(rec)
            if cex is not None and ctx.sat is None:
                ctx.sat = cex
            if rec.status == "timeout" or (ctx.sat is not None and not self.exact):
                ctx.stop = True
                return

    # ------------------------------------------------------------------------------------------------
    def _crown_recheck(self, ctx: MILPRun, box: Box, pre, todo):
        """CROWN on the tightened bounds ``pre``: the disjuncts it proves are recorded, the others returned."""
        xl, xh = box_tensors(ctx.graph, box.lo, box.hi)
        left = []
        for j in todo:
            val, proven = _crown_disjunct(ctx, j, xl, xh, pre)
            box.crown[j] = max(box.crown[j], val)
            if proven:
                ctx.leaves[j].append(DisjunctRecord(j, "crown", box.crown[j], message="CROWN after tightening"))
            else:
                left.append(j)
        return left

    def _solve_disjunct(self, ctx: MILPRun, enc, j, crown):
        dj = ctx.spec.disjuncts[j]
        model = enc.with_objective(dj.C, dj.d)
        found: dict = {}

        def on_solution(v, obj):
            if obj > 0 or ctx.reference is None or "cex" in found:
                return False
            cex = validate_candidate(ctx.reference, ctx.spec, v[model.input_vars], disjuncts=[j])
            if cex is not None:
                found["cex"] = cex
                return not self.exact
            return False

        stop = StopRule(bound_above=None if self.exact else ctx.thr, on_solution=on_solution)
        out = ctx.solver.solve(model, time_left(ctx.deadline), stop)
        rec = DisjunctRecord(j, "unknown", None, out.objective, out.time_s, out.nodes, out.solver,
                             out.message)
        lower = out.bound if out.bound is not None else -math.inf
        if out.status == SolveStatus.OPTIMAL and out.bound is None and out.objective is not None:
            lower = out.objective
        if self.exact and out.status == SolveStatus.OPTIMAL:
            rec.bound = lower
        else:
            rec.bound = max(lower, crown)
        if "cex" not in found and out.x is not None and out.objective is not None and out.objective <= 0:
            cex = self._validate(ctx, model, out.x)
            if cex is not None:
                found["cex"] = cex
        if "cex" in found:
            rec.status = "sat"
            return rec, found["cex"]
        thr, deadline = ctx.thr, ctx.deadline
        if refutes(lower, thr, max_is_strict(dj.strict)):
            rec.status = "proven"
        elif out.status == SolveStatus.TIME_LIMIT or (out.status != SolveStatus.OPTIMAL and time_left(deadline) <= 0):
            rec.status = "timeout"
        elif out.status == SolveStatus.OPTIMAL:
            obj = out.objective if out.objective is not None else lower
            if obj > 0:
                rec.message = f"optimum {obj:.3g} within the solver tolerance margin {thr:g} of zero"
            elif ctx.reference is None:
                rec.message = "optimum <= 0 but no reference model to validate the point"
            else:
                rec.message = f"optimum {obj:.3g} <= 0 but the point did not validate through onnxruntime"
        elif out.status == SolveStatus.INFEASIBLE:
            rec.message = "the MILP is infeasible (inconsistent bounds?)"
        return rec, None

    def _validate(self, ctx: MILPRun, model, v):
        """Validate the solver's point; if it fails, fix the binaries, re-solve the LP and validate that point."""
        if ctx.reference is None:
            return None
        cex = validate_candidate(ctx.reference, ctx.spec, v[model.input_vars])
        if cex is not None:
            return cex
        ints = np.nonzero(model.integer)[0]
        if ints.size == 0 or time_left(ctx.deadline) <= 0:
            return None
        lp = model.with_fixed(ints, np.clip(np.round(v[ints]), model.lb[ints], model.ub[ints])).relaxed()
        out = ctx.solver.solve(lp, time_left(ctx.deadline))
        if out.x is None or out.status != SolveStatus.OPTIMAL:
            return None
        return validate_candidate(ctx.reference, ctx.spec, out.x[model.input_vars])


def _crown_disjunct(ctx: MILPRun, j: int, xl, xh, pre) -> tuple[float, bool]:
    """CROWN's lower bound of ``max_i (C_j y - d_j)_i`` on the box under ``pre``, and whether it proves disjunct j."""
    dj = ctx.spec.disjuncts[j]
    ob = objective_bounds(ctx.graph, torch.tensor(np.array(dj.C)), torch.tensor(np.array(dj.d)), xl, xh,
                          BoundSettings("crown"), pre=pre, strict=dj.strict)
    val = float(ob.lower[0].max()) if dj.C.shape[0] else -math.inf
    proven = bool(ob.proven()[0].any())
    if not proven and dj.C.shape[0]:  # a strict row within rounding of zero: the exact check on the box
        proven = settle_near_zero(ctx.graph, dj, ob.lower[0], ob.tol[0], xl[0].cpu().numpy(), xh[0].cpu().numpy())
    return val, proven


register_backend("milp", MILPBackend)
