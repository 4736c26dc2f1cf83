"""What the MILP backend (``backends.milp``) records while it runs, and the ``Result`` made from it.

``MILPRun`` holds one run's problem, solver and records (a ``DisjunctRecord`` per box
and disjunct solved or settled); ``milp_result`` turns them into the verdict, the bound
and the per-disjunct summary.
"""
from __future__ import annotations

from dataclasses import dataclass

from backends.backend import unfinished_verdict
from backends.core_bounds import CoreBounds
from backends.solvers import SolverAdapter
from verifier.ir.graph import Graph
from verifier.ir.result import Counterexample, Result, Verdict
from verifier.ir.spec import Spec

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


@dataclass
class MILPRun:
    """One run of the MILP backend: what its boxes share, and the outcome so far."""

    graph: Graph
    spec: Spec
    solver: SolverAdapter
    thr: float  # the unsat margin: max(1e-6, the solver's tolerance)
    deadline: object
    reference: object  # an OnnxReference, or None (no counterexample can be validated)
    leaves: dict  # disjunct -> [DisjunctRecord] (one per box it was solved or settled on)
    timings: dict
    stats: dict
    sat: Counterexample | None = None
    source: str | None = None  # where the counterexample came from, when not the MILP solution
    stop: bool = False  # the search ended early (counterexample, timeout): unexamined boxes may remain


def _summary(ctx: MILPRun, core: CoreBounds, complete: bool) -> tuple[list[dict], list[float]]:
    """Per disjunct: its status over the boxes, its bound (the region's CROWN bound where boxes remain)."""
    summary, bounds = [], []
    for j in range(len(ctx.spec.disjuncts)):
        recs = ctx.leaves[j]
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
    return summary, bounds


def milp_result(name: str, ctx: MILPRun, core: CoreBounds, elapsed: float) -> Result:
    """The verdict of the run ``ctx``: sat (validated point), unsat (every disjunct proven), timeout or unknown."""
    complete = not ctx.stop
    summary, bounds = _summary(ctx, core, complete)
    ctx.stats["disjuncts"] = summary
    bound = min(bounds) if bounds else None
    msgs = list(getattr(ctx.solver, "messages", []))
    if ctx.sat is not None:
        verdict = Verdict.SAT
        msgs.append(f"counterexample from {ctx.stats.get('counterexample_source') or 'the MILP solution'}, validated "
                    f"by onnxruntime (disjunct {ctx.sat.disjunct})")
    elif complete and all(r["status"] == "proven" for r in summary):
        verdict = Verdict.UNSAT
        msgs.append(TOLERANCE_NOTE.format(thr=ctx.thr))
    elif any(r["status"] == "timeout" for r in summary) or not complete:
        verdict = unfinished_verdict(ctx.deadline)
        msgs.append("MILP solver ran out of time")
    else:
        verdict = Verdict.UNKNOWN
        msgs.extend(r.message for j in range(len(ctx.spec.disjuncts)) for r in ctx.leaves[j]
                    if r.status == "unknown" and r.message)
    return Result(verdict, name, bound, ctx.sat, elapsed, ctx.timings, ctx.stats, "; ".join(m for m in msgs if m))
