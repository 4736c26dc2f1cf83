"""Run several verification methods on one instance and tabulate them: complete vs incomplete.

    from verifier.api.compare import compare, format_table
    rows = compare("model.onnx", "spec.vnnlib", methods=["crown", "dual", "lp", "milp"], timeout=60)
    print(format_table(rows))

Every row's ``bound`` is a lower bound of the same quantity,
``v* = min over disjuncts, min over the box of max_i (C y - d)_i`` (the property
holds iff ``v* > 0``), so the bounds are comparable across methods: with the same
pre-activation bounds, MILP (exact) >= LP >= CROWN and the dual bound. ``ibp``,
``crown`` and ``alpha-crown`` are computed here directly with that convention;
``dual``, ``lp`` and ``milp`` run the backends (``milp`` with ``exact=True`` gives
the exact optimum instead of stopping once the sign is settled); any other name
is looked up in the method registry and its ``Result.bound`` is shown as it is.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from backends.runner import run_backend
from frontends.load import load_problem
from verifier.bounds.objective import objective_bounds
from verifier.bounds.spec_bounds import stacked_rows, stacked_strict
from verifier.ir.deadline import Deadline
from verifier.ir.problem import Problem
from verifier.ir.result import Result, Verdict
from verifier.methods import get_method
from verifier.methods.trivial import decide_by_shape
from verifier.settings import METHODS as BOUND_METHODS
from verifier.settings import BoundSettings, VerifyOptions

DEFAULT_METHODS = ("crown", "alpha-crown", "dual", "lp", "milp")
BACKEND_METHODS = ("milp", "lp", "dual")


@dataclass
class CompareRow:
    method: str
    verdict: str
    bound: float | None
    time_s: float
    message: str = ""


def compare(model_path, spec_path, methods=DEFAULT_METHODS, timeout: float = 60.0, solver: str = "highs",
            exact: bool = False, device: str = "cpu") -> list[CompareRow]:
    """Load the instance and run each method with its own ``timeout`` (seconds); one row per method."""
    problem = load_problem(model_path, spec_path)
    return compare_problem(problem, methods, timeout, solver, exact, device)


def compare_problem(problem: Problem, methods=DEFAULT_METHODS, timeout: float = 60.0, solver: str = "highs",
                    exact: bool = False, device: str = "cpu") -> list[CompareRow]:
    rows = []
    for name in methods:
        t0 = time.perf_counter()
        deadline = Deadline(timeout)
        options = VerifyOptions(method=name, timeout=timeout, solver=solver, device=device)
        try:
            early = decide_by_shape(problem, name)  # no disjunct left, or one without rows: as every method does
            if early is not None:
                r = early
            elif name in BACKEND_METHODS:
                settings = {"exact": True} if (name == "milp" and exact) else {}
                r = run_backend(name, problem, options, deadline, **settings)
            elif name in BOUND_METHODS:
                r = bound_method(problem, name)
            else:
                r = get_method(name)(problem, options, deadline)
            rows.append(CompareRow(name, str(r.verdict), r.bound, time.perf_counter() - t0, r.message))
        except Exception as e:  # one failing method must not hide the others' rows
            rows.append(CompareRow(name, str(Verdict.ERROR), None, time.perf_counter() - t0,
                                   f"{type(e).__name__}: {e}"))
    return rows


def bound_method(problem: Problem, method: str) -> Result:
    """IBP / CROWN / alpha-CROWN bound of ``v*`` in float64 (``unsat`` when every disjunct has a proven row)."""
    t0 = time.perf_counter()
    graph = problem.graph.to(dtype=torch.float64)
    values, proven = {}, {}
    for lo, hi, idx in problem.spec.regions():
        xl = torch.as_tensor(np.array(lo, dtype=np.float64)).reshape(1, -1)
        xh = torch.as_tensor(np.array(hi, dtype=np.float64)).reshape(1, -1)
        C, d, groups = stacked_rows(problem.spec, idx)
        ob = objective_bounds(graph, C, d, xl, xh, BoundSettings(method), groups=groups,
                              strict=stacked_strict(problem.spec, idx))
        low, ok = ob.lower[0].numpy(), ob.proven()[0].numpy()
        for j, g in zip(idx, groups):
            values[j] = float(np.max(low[g])) if g else -math.inf
            proven[j] = bool(ok[g].any()) if g else False
    n = len(problem.spec.disjuncts)
    bound = min(values.values()) if values else None
    verdict = Verdict.UNSAT if n and all(proven.values()) else Verdict.UNKNOWN
    return Result(verdict, method, bound, None, time.perf_counter() - t0,
                  stats={"disjuncts": [values[j] for j in range(n)]})


def format_table(rows: list[CompareRow]) -> str:
    """A plain-text table: method, verdict, bound, time."""
    head = ("method", "verdict", "bound", "time (s)")
    body = [(r.method, r.verdict, "-" if r.bound is None else f"{r.bound:.6g}", f"{r.time_s:.3f}") for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(4)]
    fmt = "  ".join(["{:<%d}" % widths[0], "{:<%d}" % widths[1], "{:>%d}" % widths[2], "{:>%d}" % widths[3]])
    lines = [fmt.format(*head), fmt.format(*["-" * w for w in widths])]
    lines += [fmt.format(*b) for b in body]
    notes = [f"  {r.method}: {r.message}" for r in rows if r.verdict == "error" and r.message]
    return "\n".join(lines + (["errors:", *notes] if notes else []))
