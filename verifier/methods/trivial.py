"""Specs that the shape of their disjuncts decides, before any method runs (every method starts here:
``registry.register_method`` wraps each one with ``decide_by_shape``).

- No disjunct with a non-empty input set (the reader drops the disjuncts that hold no input, e.g.
  ``X_0 > 1`` with ``X_0 <= 1``; a spec may end with none): nothing is unsafe, ``unsat``.
- A disjunct with no output row (a spec with no output constraint, or one whose rows were all
  trivially true, such as ``Y_0 <= Y_0``): every input of its box is unsafe. Its box centre (rounded to
  float32 and clipped into the box, strictly inside open sides) is run through onnxruntime and
  validated like any counterexample: ``sat`` at once, with no bound computed. Where no point
  validates (the box holds no float32 number, or no reference model is loaded) the answer is
  ``unknown``: the property is violated in real arithmetic, so ``unsat`` would be wrong.

This holds for every method, the ones that otherwise answer ``unsat`` only (``lp``, ``dual``,
``lipschitz``) included: the counterexample is validated, so ``sat`` is sound for all of them.
"""
from __future__ import annotations

import numpy as np

from verifier.attack.validate import validate_candidate
from verifier.ir.problem import Problem
from verifier.ir.result import Result, Verdict


def box_point(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A point of the box ``lo``..``hi`` (its centre; an infinite side gives the finite one, or 0)."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    flo, fhi = np.isfinite(lo), np.isfinite(hi)
    with np.errstate(over="ignore", invalid="ignore"):
        mid = lo / 2 + hi / 2
    return np.where(flo & fhi, mid, np.where(flo, lo, np.where(fhi, hi, 0.0)))


def _empty_disjuncts(spec) -> list[bool]:
    """``dj.is_empty()`` for every disjunct, with the box test done once per input region (``Spec.regions``: a
    spec of 90,000 disjuncts on one box is one test, not 90,000); disjuncts with an open side on their own."""
    empty = [False] * len(spec.disjuncts)
    for lo, hi, idx in spec.regions():
        crossed = bool((np.asarray(lo) > np.asarray(hi)).any())
        for j in idx:
            dj = spec.disjuncts[j]
            empty[j] = crossed or ((dj.lo_open is not None or dj.hi_open is not None) and dj.is_empty())
    return empty


def decide_by_shape(problem: Problem, method: str) -> Result | None:
    """``unsat`` for a spec with no disjunct that holds an input, ``sat`` (validated) or ``unknown`` for one with
    a disjunct without output rows; None where the method has to decide."""
    spec = problem.spec
    live = [j for j, e in enumerate(_empty_disjuncts(spec)) if not e]
    if not live:
        return Result(Verdict.UNSAT, method, stats={"disjuncts": len(spec.disjuncts)},
                      message="the spec has no disjunct with an input: no input is unsafe")
    free = [j for j in live if spec.disjuncts[j].C.shape[0] == 0]
    if not free:
        return None
    if problem.reference is not None:
        for j in free:
            dj = spec.disjuncts[j]
            cex = validate_candidate(problem.reference, spec, box_point(dj.lo, dj.hi), disjuncts=[j])
            if cex is not None:
                return Result(Verdict.SAT, method, counterexample=cex, stats={"unconstrained_disjunct": j},
                              message=f"disjunct {j} has no output constraint: every input of its box is unsafe")
    why = "no float32 point of its box validated" if problem.reference is not None else \
        "no reference model to validate a point"
    return Result(Verdict.UNKNOWN, method, stats={"unconstrained_disjunct": free[0]},
                  message=f"disjunct {free[0]} has no output constraint (every input of its box is unsafe), but {why}")
