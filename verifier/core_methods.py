"""Built-in methods: ``attack`` and the bound methods ``ibp``, ``crown``, ``alpha-crown``."""
from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
import torch

from .attack import pgd_attack
from .bounds import BoundSettings, objective_bounds
from .methods import register_method
from .options import VerifyOptions
from .problem import Deadline, Problem
from .result import Result, Verdict

log = logging.getLogger("verifier")


def stacked_rows(spec, idx: list[int]):
    """Stack the rows of the disjuncts ``idx``: C (K, n_out), d (K,), and each disjunct's row indices."""
    Cs, ds, groups, k = [], [], [], 0
    for j in idx:
        C, d = spec.disjuncts[j].C, spec.disjuncts[j].d
        Cs.append(C)
        ds.append(d)
        groups.append(list(range(k, k + C.shape[0])))
        k += C.shape[0]
    return torch.tensor(np.concatenate(Cs)), torch.tensor(np.concatenate(ds)), groups


def bound_spec(problem: Problem, settings: BoundSettings, deadline: Deadline | None = None):
    """Bound every disjunct of the spec on its own box.

    Returns (proven: list[bool] per disjunct, best: list[float] per disjunct = max over its rows
    of the row's lower bound of C y - d).
    """
    graph, spec = problem.graph, problem.spec
    proven = [False] * len(spec.disjuncts)
    best = [-np.inf] * len(spec.disjuncts)
    for lo, hi, idx in spec.regions():
        if deadline is not None and deadline.expired():
            break
        C, d, groups = stacked_rows(spec, idx)
        x_lo = torch.tensor(lo).reshape(1, -1)
        x_hi = torch.tensor(hi).reshape(1, -1)
        ob = objective_bounds(graph, C, d, x_lo, x_hi, settings, groups=groups, deadline=deadline)
        pr = ob.proven()[0]
        for j, g in zip(idx, groups):
            proven[j] = bool(pr[g].any())
            best[j] = float(ob.lower[0, g].max())
    return proven, best


def attack_method(problem: Problem, options: VerifyOptions, deadline: Deadline) -> Result:
    stats: dict = {}
    t = time.monotonic()
    cex = pgd_attack(problem.graph, problem.spec, options.attack, deadline, problem.reference, stats=stats)
    timings = {"attack": time.monotonic() - t}
    if cex is not None:
        return Result(Verdict.SAT, "attack", counterexample=cex, timings=timings, stats=stats)
    verdict = Verdict.TIMEOUT if deadline.expired() else Verdict.UNKNOWN
    return Result(verdict, "attack", timings=timings, stats=stats,
                  message=f"no counterexample found (best loss {stats.get('attack_best', float('nan')):.4g})")


def _bound_method(name: str):
    def run(problem: Problem, options: VerifyOptions, deadline: Deadline) -> Result:
        settings = replace(options.bounds, method=name)
        timings: dict[str, float] = {}
        t = time.monotonic()
        proven, best = bound_spec(problem, settings, deadline)
        timings["bounds"] = time.monotonic() - t
        bound = min(best) if best else None
        if all(proven):
            return Result(Verdict.UNSAT, name, bound=bound, timings=timings,
                          stats={"disjuncts": len(proven)})
        log.info("%s proves %d of %d disjuncts; trying the attack", name, sum(proven), len(proven))
        stats: dict = {"disjuncts": len(proven), "proven_disjuncts": sum(proven)}
        t = time.monotonic()
        budget = Deadline(min(deadline.left(), max(5.0, 0.25 * options.timeout)))
        cex = pgd_attack(problem.graph, problem.spec, options.attack, budget, problem.reference, stats=stats)
        timings["attack"] = time.monotonic() - t
        if cex is not None:
            return Result(Verdict.SAT, name + "+attack", bound=bound, counterexample=cex, timings=timings,
                          stats=stats)
        verdict = Verdict.TIMEOUT if deadline.expired() else Verdict.UNKNOWN
        return Result(verdict, name, bound=bound, timings=timings, stats=stats,
                      message=f"bound {bound:.4g} does not prove the property" if bound is not None else "")

    return run


register_method("attack", attack_method, "PGD falsifier (sat or unknown)")
register_method("ibp", _bound_method("ibp"), "interval bounds (unsat or unknown), then attack")
register_method("crown", _bound_method("crown"), "CROWN linear bounds (unsat or unknown), then attack")
register_method("alpha-crown", _bound_method("alpha-crown"), "optimised alpha-CROWN bounds, then attack")
