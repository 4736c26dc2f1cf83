"""Run a backend on a ``Problem``: float64 graph, the core's CROWN bounds, the backend, timings.

``run_backend(name, problem, options, deadline, **settings)`` is what the
registered methods (``verifier.methods.solvers``: ``verify --method milp|lp|dual``) and
``verifier.api.compare`` call. Where the core's bounds or the spec hold a NaN or an infinity (a non-finite
weight, an overflow), nothing is sent to a solver: the answer is ``unknown`` with a message.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from backends.backend import get_backend
from backends.box import all_finite
from backends.core_bounds import compute_core_bounds
from verifier.ir.deadline import Deadline
from verifier.ir.problem import Problem
from verifier.ir.result import Result, Verdict


def _device(options) -> str:
    dev = getattr(options, "device", "cpu") or "cpu"
    if str(dev).startswith("cuda") and not torch.cuda.is_available():
        return "cpu"
    return dev


def run_backend(name: str, problem: Problem, options=None, deadline: Deadline | None = None, **settings) -> Result:
    """Run backend ``name`` (``milp``, ``lp``, ``dual``) on ``problem``.

    Solver backends use ``options.solver`` unless ``settings`` names one; the dual
    backend runs on ``options.device``. Bounds and encodings are computed in float64.
    """
    t0 = time.perf_counter()
    if deadline is None:
        deadline = Deadline(getattr(options, "timeout", 300.0) if options is not None else 300.0)
    if name in ("milp", "lp") and "solver" not in settings and options is not None:
        settings["solver"] = getattr(options, "solver", "highs")
    if name in ("milp", "lp") and "verbose" not in settings and options is not None:
        settings["verbose"] = bool(getattr(options, "verbose", False))
    device = _device(options) if name == "dual" else "cpu"
    graph = problem.graph.to(device=device, dtype=torch.float64)
    core = compute_core_bounds(graph, problem.spec, "crown")
    bad = _non_finite(core, problem.spec)
    if bad:
        return Result(Verdict.UNKNOWN, name, time_s=time.perf_counter() - t0, timings={"core_bounds": core.time_s},
                      message=f"{bad} is not finite (NaN or infinite; non-finite weights?): nothing sent to the solver")
    backend = get_backend(name, **settings)
    reference = problem.reference if problem.model_path else None
    result = backend.run(graph, problem.spec, core, deadline, reference)
    result.method = name
    result.timings = {"core_bounds": core.time_s, **result.timings}
    result.time_s = time.perf_counter() - t0
    return result


def _non_finite(core, spec) -> str:
    """What holds a NaN or an infinity: "the bounds of node N", "the spec's rows", or "" where all is finite."""
    for region in core.regions:
        for node, b in region.pre.items():
            if not all_finite({node: b}):
                return f"the bounds of node {node!r}"
    for dj in spec.disjuncts:
        if not (np.all(np.isfinite(dj.C)) and np.all(np.isfinite(dj.d))):
            return "the spec's rows"
    return ""
