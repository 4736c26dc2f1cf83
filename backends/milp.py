"""Complete verification by a big-M MILP, one solve per (unproven) disjunct.

For disjunct ``j`` the MILP minimises ``t >= max_i (C_j y - d_j)_i`` over the exact
encoding of the network on the disjunct's box. Verdicts:

- ``sat``: an incumbent with ``t <= 0`` whose input, re-run through onnxruntime,
  meets a disjunct (``validate_candidate``). A point that does not validate is
  polished (binaries fixed, the remaining LP re-solved) and tried again; failing
  that the disjunct is left ``unknown``.
- ``unsat``: every disjunct's proven lower bound (the MIP dual bound, or the core's
  CROWN bound) exceeds ``max(1e-6, solver tolerance)``. This relies on the solver's
  feasibility tolerances, and the result says so.

In the default decision mode the solver stops as soon as the sign is settled
(dual bound above the margin, or a validated counterexample). With ``exact=True``
every disjunct is solved to optimality (no early stop, CROWN-proven disjuncts are
solved too), which gives the exact optimum for comparisons.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from verifier.bounds import BoundSettings, objective_bounds
from verifier.result import Result, Verdict
from verifier.spec import Spec
from verifier.validate import validate_candidate

from .base import Backend, CoreBounds, SolveStatus, StopRule, make_solver, register_backend, time_left
from .encoder import encode_network
from .tighten import tighten_bounds

TOLERANCE_NOTE = "unsat relies on the MILP solver's feasibility tolerances (margin {thr:g})"


@dataclass
class DisjunctRecord:
    index: int
    status: str  # proven | crown | sat | unknown | timeout | skipped
    bound: float | None = None  # proven lower bound of min_x max_i (C y - d)_i
    objective: float | None = None  # value of the best point the solver found
    time_s: float = 0.0
    nodes: int = 0
    solver: str = ""
    message: str = ""


class MILPBackend(Backend):
    name = "milp"
    complete = True
    description = "complete MILP (big-M)"

    def __init__(self, solver: str = "highs", exact: bool = False, tighten: str | None = "lp",
                 tighten_fraction: float = 0.25, tighten_budget: float = 30.0, threads: int | None = None,
                 verbose: bool = False):
        self.solver_name = solver
        self.exact = exact
        self.tighten = tighten
        self.tighten_fraction = tighten_fraction
        self.tighten_budget = tighten_budget
        self.threads = threads
        self.verbose = verbose

    def run(self, graph, spec: Spec, core: CoreBounds, deadline=None, reference=None) -> Result:
        t_start = time.perf_counter()
        solver = make_solver(self.solver_name, threads=self.threads, verbose=self.verbose)
        thr = max(1e-6, solver.tolerance())
        records: dict[int, DisjunctRecord] = {}
        timings = {"tighten": 0.0, "encode": 0.0, "solve": 0.0}
        stats: dict = {"solver": self.solver_name, "margin": thr, "tighten": []}
        sat_cex = None
        out_of_time = False
        # regions with their most promising (smallest CROWN value) disjunct first
        regions = sorted(core.regions, key=lambda r: min(r.crown_value(j) for j in r.disjuncts))
        for region in regions:
            if out_of_time or (sat_cex is not None and not self.exact):
                break
            todo = []
            for j in region.disjuncts:
                if not self.exact and region.crown_proven(j):
                    records[j] = DisjunctRecord(j, "crown", region.crown_value(j))
                else:
                    todo.append(j)
            if not todo:
                continue
            pre = region.pre
            if self.tighten:
                t0 = time.perf_counter()
                budget = min(self.tighten_budget, self.tighten_fraction * time_left(deadline))
                pre, tst = tighten_bounds(graph, pre, region.lo, region.hi, solver, self.tighten, budget)
                timings["tighten"] += time.perf_counter() - t0
                stats["tighten"].append({"unstable_before": tst.unstable_before, "unstable_after": tst.unstable_after,
                                         "solves": tst.solves, "time_s": round(tst.time_s, 3),
                                         "complete": tst.complete})
                if not self.exact:  # the tighter bounds may let CROWN settle some disjuncts
                    todo = self._crown_recheck(graph, spec, region, pre, todo, records)
            if not todo:
                continue
            t0 = time.perf_counter()
            enc = encode_network(graph, pre, region.lo, region.hi, "milp")
            timings["encode"] += time.perf_counter() - t0
            stats.setdefault("model", []).append({"vars": int(enc.n_vars), "rows": int(enc.A.shape[0]),
                                                  "binaries": int(enc.n_unstable)})
            for j in sorted(todo, key=region.crown_value):
                if time_left(deadline) <= 0:
                    records[j] = DisjunctRecord(j, "timeout", region.crown_value(j), message="no time left")
                    out_of_time = True
                    continue
                t0 = time.perf_counter()
                rec, cex = self._solve_disjunct(enc, spec, j, region, solver, thr, deadline, reference)
                timings["solve"] += time.perf_counter() - t0
                records[j] = rec
                if cex is not None and sat_cex is None:
                    sat_cex = cex
                if rec.status == "timeout":
                    out_of_time = True
                if (sat_cex is not None and not self.exact) or out_of_time:
                    break
        for j in range(len(spec.disjuncts)):
            if j not in records:
                r = core.region_of(j)
                records[j] = DisjunctRecord(j, "skipped", r.crown_value(j))
        fallback = getattr(solver, "messages", [])
        return self._result(spec, records, sat_cex, thr, deadline, timings, stats, fallback,
                            time.perf_counter() - t_start)

    # ------------------------------------------------------------------------------------------------
    def _crown_recheck(self, graph, spec, region, pre, todo, records):
        dt, dev = graph.dtype, graph.device
        xl = torch.as_tensor(region.lo, dtype=dt, device=dev).reshape(1, -1)
        xh = torch.as_tensor(region.hi, dtype=dt, device=dev).reshape(1, -1)
        left = []
        for j in todo:
            dj = spec.disjuncts[j]
            ob = objective_bounds(graph, torch.as_tensor(dj.C), torch.as_tensor(dj.d), xl, xh,
                                  BoundSettings("crown"), pre=pre)
            low = ob.lower[0].cpu().numpy()
            if bool(ob.proven()[0].any()):
                records[j] = DisjunctRecord(j, "crown", float(np.max(low)), message="CROWN after tightening")
            else:
                region.row_lower[j] = np.maximum(region.row_lower[j], low)
                left.append(j)
        return left

    def _solve_disjunct(self, enc, spec, j, region, solver, thr, deadline, reference):
        dj = spec.disjuncts[j]
        model = enc.with_objective(dj.C, dj.d)
        found: dict = {}

        def on_solution(v, obj):
            if obj > 0 or reference is None or "cex" in found:
                return False
            cex = validate_candidate(reference, spec, v[model.input_vars], disjuncts=[j])
            if cex is not None:
                found["cex"] = cex
                return not self.exact
            return False

        stop = StopRule(bound_above=None if self.exact else thr, on_solution=on_solution)
        out = solver.solve(model, time_left(deadline), stop)
        rec = DisjunctRecord(j, "unknown", None, out.objective, out.time_s, out.nodes, out.solver,
                             out.message)
        crown = region.crown_value(j)
        lower = out.bound if out.bound is not None else -math.inf
        if out.status == SolveStatus.OPTIMAL and out.bound is None and out.objective is not None:
            lower = out.objective
        if self.exact and out.status == SolveStatus.OPTIMAL:
            rec.bound = lower
        else:
            rec.bound = max(lower, crown)
        if "cex" not in found and out.x is not None and out.objective is not None and out.objective <= 0:
            cex = self._validate(model, out.x, spec, j, solver, reference, deadline)
            if cex is not None:
                found["cex"] = cex
        if "cex" in found:
            rec.status = "sat"
            return rec, found["cex"]
        if lower > thr:
            rec.status = "proven"
        elif out.status == SolveStatus.TIME_LIMIT or (out.status != SolveStatus.OPTIMAL and time_left(deadline) <= 0):
            rec.status = "timeout"
        elif out.status == SolveStatus.OPTIMAL:
            obj = out.objective if out.objective is not None else lower
            if obj > 0:
                rec.message = f"optimum {obj:.3g} within the solver tolerance margin {thr:g} of zero"
            elif reference is None:
                rec.message = "optimum <= 0 but no reference model to validate the point"
            else:
                rec.message = f"optimum {obj:.3g} <= 0 but the point did not validate through onnxruntime"
        elif out.status == SolveStatus.INFEASIBLE:
            rec.message = "the MILP is infeasible (inconsistent bounds?)"
        return rec, None

    def _validate(self, model, v, spec, j, solver, reference, deadline):
        """Validate the solver's point; if it fails, fix the binaries, re-solve the LP and validate that point."""
        if reference is None:
            return None
        cex = validate_candidate(reference, spec, v[model.input_vars])
        if cex is not None:
            return cex
        ints = np.nonzero(model.integer)[0]
        if ints.size == 0 or time_left(deadline) <= 0:
            return None
        lp = model.with_fixed(ints, np.clip(np.round(v[ints]), model.lb[ints], model.ub[ints])).relaxed()
        out = solver.solve(lp, time_left(deadline))
        if out.x is None or out.status != SolveStatus.OPTIMAL:
            return None
        return validate_candidate(reference, spec, out.x[model.input_vars])

    def _result(self, spec, records, sat_cex, thr, deadline, timings, stats, fallback, elapsed):
        recs = [records[j] for j in range(len(spec.disjuncts))]
        stats["disjuncts"] = [r.__dict__.copy() for r in recs]
        bounds = [r.bound for r in recs if r.bound is not None]
        bound = min(bounds) if len(bounds) == len(recs) and bounds else None
        msgs = list(fallback)
        if sat_cex is not None:
            verdict = Verdict.SAT
            sat_rec = [r for r in recs if r.status == "sat"]
            if not self.exact and sat_rec:
                bound = sat_rec[0].bound
            msgs.append(f"counterexample from the MILP, validated by onnxruntime (disjunct {sat_cex.disjunct})")
        elif all(r.status in ("proven", "crown") for r in recs):
            verdict = Verdict.UNSAT
            msgs.append(TOLERANCE_NOTE.format(thr=thr))
        elif any(r.status == "timeout" for r in recs):
            verdict = Verdict.TIMEOUT if (deadline is not None and deadline.left() <= 0) else Verdict.UNKNOWN
            msgs.append("MILP solver ran out of time")
        else:
            verdict = Verdict.UNKNOWN
            msgs.extend(r.message for r in recs if r.status == "unknown" and r.message)
        return Result(verdict, self.name, bound, sat_cex, elapsed, timings, stats, "; ".join(m for m in msgs if m))


register_backend("milp", MILPBackend)
