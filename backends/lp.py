"""Incomplete verification by the triangle LP relaxation, one LP per disjunct.

The LP's optimum is turned into a rigorous bound from its duals
(``backends.encoding.safe_lp_bound``), so an LP ``unsat`` does not depend on the solver's
tolerances. ``unsat`` when every disjunct's bound (LP, or the core's CROWN bound)
is positive beyond the rounding margin (at least zero for a disjunct whose rows are all strict); otherwise
``unknown``. The LP's optimal
point is also tried as a counterexample (``sat`` only if onnxruntime confirms it).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from backends.backend import Backend, register_backend, solution_counterexample, time_left, unfinished_verdict
from backends.core_bounds import CoreBounds
from backends.encoding import encode_network, safe_lp_bound
from backends.solvers import SolveStatus, make_solver
from backends.tighten import tighten_bounds
from verifier.bounds.proof import max_is_strict, refutes
from verifier.ir.result import Result, Verdict
from verifier.ir.spec import Spec


@dataclass(eq=False)
class LPBackend(Backend):
    name = "lp"
    complete = False
    description = "triangle LP relaxation (incomplete)"

    solver: str = "highs"
    tighten: str | None = None  # per-neuron tightening of each region's bounds first: "lp", "milp" or None
    tighten_budget: float = 30.0
    threads: int | None = None
    verbose: bool = False
    try_counterexample: bool = True  # the LP optimum's input validated as a counterexample

    def run(self, graph, spec: Spec, core: CoreBounds, deadline=None, reference=None) -> Result:
        t_start = time.perf_counter()
        solver = make_solver(self.solver, threads=self.threads, verbose=self.verbose)
        per: list[dict] = [dict(index=j) for j in range(len(spec.disjuncts))]
        timings = {"encode": 0.0, "solve": 0.0, "tighten": 0.0}
        cex = None
        timed_out = False
        for region in core.regions:
            enc = self._encode(graph, region, solver, deadline, timings)
            for j in region.disjuncts:
                rec = per[j]
                rec["crown"] = region.crown_value(j)
                rec["crown_proven"] = region.crown_proven(j)
                if time_left(deadline) <= 0:
                    timed_out = True
                    rec["status"] = "timeout"
                    continue
                dj = spec.disjuncts[j]
                model = enc.with_objective(dj.C, dj.d)
                t0 = time.perf_counter()
                out = solver.solve(model, time_left(deadline))
                timings["solve"] += time.perf_counter() - t0
                rec["status"] = out.status.value
                if out.status != SolveStatus.OPTIMAL:
                    timed_out |= out.status == SolveStatus.TIME_LIMIT
                    continue
                rec["lp_optimum"] = out.objective
                rec["lp_bound"] = safe_lp_bound(model, out.row_dual) if out.row_dual is not None else -math.inf
                if self.try_counterexample and cex is None:
                    cex = solution_counterexample(reference, spec, model, out)
        values, proven = [], []
        for j, rec in enumerate(per):
            lpb = rec.get("lp_bound", -math.inf)
            values.append(lpb)
            proven.append(refutes(lpb, 0.0, max_is_strict(spec.disjuncts[j].strict)) or rec.get("crown_proven", False))
        bound = min(values) if values else None
        if bound is not None and not math.isfinite(bound):
            bound = None
        if cex is not None:
            verdict, msg = Verdict.SAT, "the LP optimum's input validated as a counterexample"
        elif all(proven):
            verdict, msg = Verdict.UNSAT, "every disjunct proven by the LP's dual bound (or CROWN)"
        elif timed_out:
            verdict = unfinished_verdict(deadline)
            msg = "LP solver ran out of time"
        else:
            verdict, msg = Verdict.UNKNOWN, "the LP relaxation does not prove every disjunct"
        fb = getattr(solver, "messages", [])
        return Result(verdict, self.name, bound, cex, time.perf_counter() - t_start, timings,
                      {"disjuncts": per, "solver": self.solver}, "; ".join([*fb, msg]))

    def _encode(self, graph, region, solver, deadline, timings):
        """The triangle LP of the region's box, on its core bounds (tightened first with ``tighten``)."""
        pre = region.pre
        if self.tighten:
            t0 = time.perf_counter()
            pre, _ = tighten_bounds(graph, pre, region.lo, region.hi, solver, self.tighten,
                                    min(self.tighten_budget, 0.5 * time_left(deadline)))
            timings["tighten"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        enc = encode_network(graph, pre, region.lo, region.hi, "lp")
        timings["encode"] += time.perf_counter() - t0
        return enc


register_backend("lp", LPBackend)
