"""The method ``lipschitz``: the Lipschitz fast path on its own (``unsat`` or ``unknown``; it never searches for a
counterexample: ``sat`` only for a disjunct without output rows, which every method answers at once with a validated
point, ``verifier.methods.trivial``)."""
from __future__ import annotations

import time

from verifier.certificates.lipschitz.fastpath import METHOD, lipschitz_fast_path
from verifier.ir.errors import UnsupportedError
from verifier.ir.result import Result, Verdict
from verifier.methods.registry import register_method


def lipschitz_method(problem, options, deadline) -> Result:
    """Registered method ``lipschitz``: ``unsat`` when certified, else ``unknown`` (never ``sat``)."""
    t0 = time.perf_counter()
    if deadline is not None and deadline.expired():
        return Result(Verdict.TIMEOUT, method=METHOD, message="no time left")
    try:
        res = lipschitz_fast_path(problem.graph, problem.spec)
    except UnsupportedError as e:
        return Result(Verdict.UNKNOWN, method=METHOD, time_s=time.perf_counter() - t0, message=str(e))
    if res is None:
        return Result(Verdict.UNKNOWN, method=METHOD, time_s=time.perf_counter() - t0,
                      message="not a robustness spec, or the Lipschitz radius does not cover the input box")
    return res


register_method(METHOD, lipschitz_method)
