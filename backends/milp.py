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

Before any MILP, the triangle LP's optimal input is tried as a counterexample
(``lp_probe``; cheap, and often enough on sat instances). In the default decision mode the solver stops as soon as the sign is settled
(dual bound above the margin, or a validated counterexample). With ``exact=True``
every disjunct is solved to optimality (no early stop, CROWN-proven disjuncts are
solved too), which gives the exact optimum for comparisons.

Input splitting (``split_threshold > 0``, networks with at most ``split_max_inputs``
inputs, where halving a box pays): a box whose CROWN bounds leave more
than ``split_threshold`` unstable ReLUs is halved along the input dimension with
the largest influence on the open rows (width times the CROWN coefficient), up to
``max_boxes`` boxes; CROWN settles what it can on each sub-box and the MILP solves
the rest. The sub-boxes cover the box, so the answer stays complete; each MILP is
smaller and its big-M constants tighter.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from backends.base import Backend, CoreBounds, SolveStatus, StopRule, make_solver, register_backend, time_left
from backends.encoder import encode_network
from backends.tighten import tighten_bounds
from verifier.attack.validate import validate_candidate
from verifier.bounds import backward_lower, intermediate_bounds, objective_bounds, pre_activation_nodes
from verifier.ir.result import Result, Verdict
from verifier.ir.spec import Spec
from verifier.settings import BoundSettings

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
                 verbose: bool = False, split_threshold: int = 80, split_max_inputs: int = 16,
                 max_boxes: int = 512, lp_probe: bool = True, lp_probe_fraction: float = 0.15):
        self.solver_name = solver
        self.lp_probe = lp_probe
        self.lp_probe_fraction = lp_probe_fraction
        self.split_threshold = split_threshold
        self.split_max_inputs = split_max_inputs
        self.max_boxes = max_boxes
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
        leaves: dict[int, list[DisjunctRecord]] = {j: [] for j in range(len(spec.disjuncts))}
        timings = {"tighten": 0.0, "encode": 0.0, "solve": 0.0, "split": 0.0}
        stats: dict = {"solver": self.solver_name, "margin": thr, "tighten": [], "model": [], "boxes": 0,
                       "leaves_milp": 0}
        state = {"sat": None, "stop": False}
        # regions with their most promising (smallest CROWN value) disjunct first
        regions = sorted(core.regions, key=lambda r: min(r.crown_value(j) for j in r.disjuncts))
        for region in regions:
            if state["stop"]:
                break
            todo = []
            for j in region.disjuncts:
                if not self.exact and region.crown_proven(j):
                    leaves[j].append(DisjunctRecord(j, "crown", region.crown_value(j)))
                else:
                    todo.append(j)
            if not todo:
                continue
            if self.lp_probe and not self.exact and reference is not None:
                t0 = time.perf_counter()
                cex = self._lp_probe(graph, spec, region, todo, solver, deadline, reference)
                timings["lp_probe"] = timings.get("lp_probe", 0.0) + time.perf_counter() - t0
                if cex is not None:
                    state["sat"], state["stop"], state["source"] = cex, True, "the LP relaxation's optimal input"
                    leaves[cex.disjunct].append(DisjunctRecord(cex.disjunct, "sat", None,
                                                               message="LP relaxation point validated"))
                    break
            # boxes to solve: (lo, hi, disjuncts, pre, crown values per disjunct); the region's own box first
            queue = [(region.lo, region.hi, todo, region.pre, {j: region.crown_value(j) for j in todo})]
            while queue and not state["stop"]:
                lo, hi, todo, pre, crown = queue.pop()
                if time_left(deadline) <= 0:
                    for j in todo:
                        leaves[j].append(DisjunctRecord(j, "timeout", None, message="no time left"))
                    state["stop"] = True
                    break
                stats["boxes"] += 1
                if pre is None:  # a sub-box: the core's CROWN bounds on it
                    t0 = time.perf_counter()
                    pre, crown, todo = self._box_bounds(graph, spec, lo, hi, todo, leaves)
                    timings["split"] += time.perf_counter() - t0
                    if not todo:
                        continue
                if self._should_split(graph, pre, stats["boxes"] + len(queue)):
                    t0 = time.perf_counter()
                    k = self._split_dim(graph, spec, lo, hi, todo, pre)
                    mid = 0.5 * (lo[k] + hi[k])
                    hi1, lo2 = hi.copy(), lo.copy()
                    hi1[k], lo2[k] = mid, mid
                    queue.append((lo2, hi, todo, None, None))
                    queue.append((lo, hi1, todo, None, None))
                    timings["split"] += time.perf_counter() - t0
                    continue
                self._solve_box(graph, spec, lo, hi, todo, pre, crown, solver, thr, deadline, reference, leaves,
                                timings, stats, state)
        fallback = getattr(solver, "messages", [])
        stats["counterexample_source"] = state.get("source", "the MILP solution") if state["sat"] is not None else None
        return self._result(spec, core, leaves, state["sat"], thr, not state["stop"], deadline, timings, stats, fallback,
                            time.perf_counter() - t_start)

    # ------------------------------------------------------------------------------------------------
    def _lp_probe(self, graph, spec, region, todo, solver, deadline, reference):
        """Cheap first look for a counterexample: the triangle LP's optimal input, validated by onnxruntime.

        Gets at most ``lp_probe_fraction`` of the time left, over all disjuncts of the region.
        """
        end = time.monotonic() + self.lp_probe_fraction * time_left(deadline)
        enc = encode_network(graph, region.pre, region.lo, region.hi, "lp")
        for j in sorted(todo, key=region.crown_value):
            left = min(end - time.monotonic(), time_left(deadline))
            if left <= 0:
                return None
            dj = spec.disjuncts[j]
            model = enc.with_objective(dj.C, dj.d)
            out = solver.solve(model, left)
            if out.x is not None and out.objective is not None and out.objective <= 0:
                cex = validate_candidate(reference, spec, out.x[model.input_vars])
                if cex is not None:
                    return cex
        return None

    def _should_split(self, graph, pre, n_boxes) -> bool:
        if not self.split_threshold or n_boxes >= self.max_boxes or graph.n_inputs > self.split_max_inputs:
            return False
        return _n_unstable(graph, pre) > self.split_threshold

    def _box_bounds(self, graph, spec, lo, hi, todo, leaves):
        """CROWN bounds on a sub-box; disjuncts CROWN proves there are recorded and dropped."""
        dt, dev = graph.dtype, graph.device
        xl = torch.as_tensor(np.array(lo, dtype=np.float64), dtype=dt, device=dev).reshape(1, -1)
        xh = torch.as_tensor(np.array(hi, dtype=np.float64), dtype=dt, device=dev).reshape(1, -1)
        with torch.no_grad():
            pre = intermediate_bounds(graph, xl, xh, "crown")
        crown, left = {}, []
        for j in todo:
            dj = spec.disjuncts[j]
            ob = objective_bounds(graph, torch.tensor(np.array(dj.C)), torch.tensor(np.array(dj.d)), xl, xh,
                                  BoundSettings("crown"), pre=pre)
            crown[j] = float(ob.lower[0].max()) if dj.C.shape[0] else -math.inf
            if not self.exact and bool(ob.proven()[0].any()):
                leaves[j].append(DisjunctRecord(j, "crown", crown[j]))
            else:
                left.append(j)
        return pre, crown, left

    def _split_dim(self, graph, spec, lo, hi, todo, pre) -> int:
        """Input dimension with the largest influence on the open rows: width times |CROWN coefficient|."""
        dt, dev = graph.dtype, graph.device
        xl = torch.as_tensor(np.array(lo, dtype=np.float64), dtype=dt, device=dev).reshape(1, -1)
        xh = torch.as_tensor(np.array(hi, dtype=np.float64), dtype=dt, device=dev).reshape(1, -1)
        C = torch.tensor(np.concatenate([spec.disjuncts[j].C for j in todo], 0), dtype=dt, device=dev)
        A0 = C.reshape(1, C.shape[0], *graph.output_shape)
        with torch.no_grad():
            _, Ax, _ = backward_lower(graph, graph.output_name, A0, xl, xh, pre, return_linear=True)
        smear = (Ax[0].abs().sum(0).cpu().numpy()) * (hi - lo)
        return int(np.argmax(smear))

    def _solve_box(self, graph, spec, lo, hi, todo, pre, crown, solver, thr, deadline, reference, leaves, timings,
                   stats, state):
        stats["leaves_milp"] += 1
        if self.tighten and time_left(deadline) > 0:
            t0 = time.perf_counter()
            budget = min(self.tighten_budget, self.tighten_fraction * time_left(deadline))
            pre, tst = tighten_bounds(graph, pre, lo, hi, solver, self.tighten, budget)
            timings["tighten"] += time.perf_counter() - t0
            stats["tighten"].append({"unstable_before": tst.unstable_before, "unstable_after": tst.unstable_after,
                                     "solves": tst.solves, "time_s": round(tst.time_s, 3), "complete": tst.complete})
            if not self.exact:  # the tighter bounds may let CROWN settle some disjuncts
                todo = self._crown_recheck(graph, spec, lo, hi, pre, todo, crown, leaves)
        if not todo:
            return
        t0 = time.perf_counter()
        enc = encode_network(graph, pre, lo, hi, "milp")
        timings["encode"] += time.perf_counter() - t0
        stats["model"].append({"vars": int(enc.n_vars), "rows": int(enc.A.shape[0]), "binaries": int(enc.n_unstable)})
        for j in sorted(todo, key=lambda j: crown[j]):
            if time_left(deadline) <= 0:
                leaves[j].append(DisjunctRecord(j, "timeout", crown[j], message="no time left"))
                state["stop"] = True
                return
            t0 = time.perf_counter()
            rec, cex = self._solve_disjunct(enc, spec, j, crown[j], solver, thr, deadline, reference)
            timings["solve"] += time.perf_counter() - t0
            leaves[j].append(rec)
            if cex is not None and state["sat"] is None:
                state["sat"] = cex
            if rec.status == "timeout" or (state["sat"] is not None and not self.exact):
                state["stop"] = True
                return

    # ------------------------------------------------------------------------------------------------
    def _crown_recheck(self, graph, spec, lo, hi, pre, todo, crown, leaves):
        dt, dev = graph.dtype, graph.device
        xl = torch.as_tensor(np.array(lo, dtype=np.float64), dtype=dt, device=dev).reshape(1, -1)
        xh = torch.as_tensor(np.array(hi, dtype=np.float64), dtype=dt, device=dev).reshape(1, -1)
        left = []
        for j in todo:
            dj = spec.disjuncts[j]
            ob = objective_bounds(graph, torch.tensor(np.array(dj.C)), torch.tensor(np.array(dj.d)), xl, xh,
                                  BoundSettings("crown"), pre=pre)
            val = float(ob.lower[0].max()) if dj.C.shape[0] else -math.inf
            crown[j] = max(crown[j], val)
            if bool(ob.proven()[0].any()):
                leaves[j].append(DisjunctRecord(j, "crown", crown[j], message="CROWN after tightening"))
            else:
                left.append(j)
        return left

    def _solve_disjunct(self, enc, spec, j, crown, solver, thr, deadline, reference):
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

    def _result(self, spec, core, leaves, sat_cex, thr, complete, deadline, timings, stats, fallback, elapsed):
        summary = []
        bounds = []
        for j in range(len(spec.disjuncts)):
            recs = leaves[j]
            crown = core.region_of(j).crown_value(j)
            vals = [r.bound for r in recs if r.bound is not None]
            if complete and recs and len(vals) == len(recs):
                b = min(vals)
            else:  # unexamined boxes remain: the region's CROWN bound still holds for them
                b = min(vals + [crown])
            bounds.append(b)
            status = ("sat" if any(r.status == "sat" for r in recs) else
                      "proven" if complete and recs and all(r.status in ("proven", "crown") for r in recs) else
                      "timeout" if any(r.status == "timeout" for r in recs) else
                      "unknown" if recs else "skipped")
            objs = [r.objective for r in recs if r.objective is not None]
            summary.append({"index": j, "status": status, "bound": b, "objective": min(objs) if objs else None,
                            "leaves": len(recs), "nodes": sum(r.nodes for r in recs),
                            "time_s": round(sum(r.time_s for r in recs), 4)})
        stats["disjuncts"] = summary
        bound = min(bounds) if bounds else None
        msgs = list(fallback)
        if sat_cex is not None:
            verdict = Verdict.SAT
            msgs.append(f"counterexample from {stats.get('counterexample_source') or 'the MILP solution'}, validated by "
                        f"onnxruntime (disjunct {sat_cex.disjunct})")
        elif complete and all(r["status"] == "proven" for r in summary):
            verdict = Verdict.UNSAT
            msgs.append(TOLERANCE_NOTE.format(thr=thr))
        elif any(r["status"] == "timeout" for r in summary) or not complete:
            verdict = Verdict.TIMEOUT if (deadline is not None and deadline.left() <= 0) else Verdict.UNKNOWN
            msgs.append("MILP solver ran out of time")
        else:
            verdict = Verdict.UNKNOWN
            msgs.extend(r.message for j in range(len(spec.disjuncts)) for r in leaves[j]
                        if r.status == "unknown" and r.message)
        return Result(verdict, self.name, bound, sat_cex, elapsed, timings, stats, "; ".join(m for m in msgs if m))


def _n_unstable(graph, pre) -> int:
    """Unstable ReLUs under ``pre``."""
    n = 0
    for name in pre_activation_nodes(graph):
        lo, hi = pre[name]
        n += int(((lo < 0) & (hi > 0)).sum())
    return n


register_backend("milp", MILPBackend)
