"""Built-in methods: ``attack`` and the bound methods ``ibp``, ``crown``, ``alpha-crown``."""
from __future__ import annotations

import logging
import time
from dataclasses import replace

from verifier.attack import pgd_attack
from verifier.bounds.spec_bounds import bound_spec
from verifier.ir.deadline import Deadline
from verifier.ir.problem import Problem
from verifier.ir.result import Result, Verdict
from verifier.methods.registry import register_method
from verifier.settings.options import VerifyOptions

log = logging.getLogger("verifier")


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
        stats: dict = {"disjuncts": len(problem.spec.disjuncts)}
        proven, best = bound_spec(problem, settings, deadline, stats)
        timings["bounds"] = time.monotonic() - t
        bound = min(best) if best else None
        if all(proven):
            return Result(Verdict.UNSAT, name, bound=bound, timings=timings, stats=stats)
        log.info("%s proves %d of %d disjuncts; trying the attack", name, sum(proven), len(proven))
        stats["proven_disjuncts"] = sum(proven)
        t = time.monotonic()
        budget = deadline.sub(max(5.0, 0.25 * deadline.total))
        cex = pgd_attack(problem.graph, problem.spec, options.attack, budget, problem.reference, stats=stats)
        timings["attack"] = time.monotonic() - t
        if cex is not None:
            return Result(Verdict.SAT, name + "+attack", bound=bound, counterexample=cex, timings=timings,
                          stats=stats)
        verdict = Verdict.TIMEOUT if deadline.expired() else Verdict.UNKNOWN
        return Result(verdict, name, bound=bound, timings=timings, stats=stats,
                      message=f"bound {bound:.4g} does not prove the property" if bound is not None else "")

    return run


register_method("attack", attack_method)
register_method("ibp", _bound_method("ibp"))
register_method("crown", _bound_method("crown"))
register_method("alpha-crown", _bound_method("alpha-crown"))
