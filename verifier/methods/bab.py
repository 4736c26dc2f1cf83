"""The complete methods ``bab`` and ``auto``: the Lipschitz fast path, CROWN, a first attack, then branch and
bound region by region (``verifier.bab.search``)."""
from __future__ import annotations

import logging
import time
from dataclasses import replace

from verifier.attack import pgd_attack
from verifier.bab.common import Outcome
from verifier.bab.refine import MARGIN_ABS, MARGIN_REL
from verifier.bab.search import search_regions
from verifier.bounds.spec_bounds import bound_spec
from verifier.certificates.lipschitz.fastpath import lipschitz_fast_path
from verifier.ir.deadline import Deadline
from verifier.ir.errors import UnsupportedError
from verifier.ir.lower_piecewise import lower_piecewise
from verifier.ir.ops import ReLU
from verifier.ir.problem import Problem
from verifier.ir.result import Result, Verdict
from verifier.methods.registry import register_method
from verifier.settings import VerifyOptions

log = logging.getLogger("verifier.bab")

REFINE_NOTE = ("the intermediate bounds were refined by MILP: unsat relies on Gurobi's feasibility tolerances "
               "there (margin {:g} + {:g} |bound|)".format(MARGIN_ABS, MARGIN_REL))


def run_bab(problem: Problem, options: VerifyOptions, deadline: Deadline, name: str = "bab") -> Result:
    """Quick CROWN bound, then an attack, then the branch and bound region by region (``options.bab``)."""
    settings = options.bab
    stats: dict = {}
    timings: dict[str, float] = {}
    fast = _lipschitz_fast_path(problem, deadline)
    if fast is not None:
        return fast
    # LeakyRelu, Abs, Clip, Max / Min with a constant as ReLU nodes (the same function): ReLU splitting applies
    problem = replace(problem, graph=lower_piecewise(problem.graph))
    other = sorted({n.op.kind for n in problem.graph.nonlinear_nodes() if not isinstance(n.op, ReLU)})
    if other:
        return _non_relu(problem, options, deadline, name, other)
    if deadline.expired():  # a spec of many disjuncts takes a while before this point
        return Result(Verdict.TIMEOUT, name, timings=timings, stats=stats)
    t = time.monotonic()
    proven, best = bound_spec(problem, replace(options.bounds, method="crown"), deadline, stats)
    timings["crown"] = time.monotonic() - t
    crown_bound = stats["crown_bound"] = min(best) if best else None
    if all(proven):
        return Result(Verdict.UNSAT, f"{name}:crown", bound=crown_bound, timings=timings, stats=stats)
    if settings.attack_first:
        t = time.monotonic()
        budget = deadline.sub(max(1.0, settings.attack_fraction * deadline.total))
        cex = pgd_attack(problem.graph, problem.spec, options.attack, budget, problem.reference,
                         rounds=settings.attack_rounds, stats=stats)
        timings["attack"] = time.monotonic() - t
        if cex is not None:
            return Result(Verdict.SAT, name + ":attack", counterexample=cex, timings=timings, stats=stats)
    if deadline.expired():
        return Result(Verdict.TIMEOUT, name, timings=timings, stats=stats)
    t = time.monotonic()
    found = search_regions(problem, proven, settings, options.bounds, deadline, stats)
    timings["search"] = time.monotonic() - t
    method = f"{name}:{found.strategy}-split"
    if found.outcome == Outcome.FALSIFIED:
        return Result(Verdict.SAT, method, counterexample=found.counterexample, timings=timings, stats=stats)
    if found.outcome == Outcome.PROVEN:
        return Result(Verdict.UNSAT, method, timings=timings, stats=stats, message=REFINE_NOTE if found.refined else "")
    return Result(Verdict.TIMEOUT if found.out_of_time else Verdict.UNKNOWN, method, timings=timings, stats=stats)


def _lipschitz_fast_path(problem: Problem, deadline: Deadline | None = None) -> Result | None:
    """The Lipschitz certificate for plain robustness specs (milliseconds); None when it does not apply."""
    try:
        r = lipschitz_fast_path(problem.graph, problem.spec, deadline=deadline)
    except Exception as e:  # never let the fast path break the search
        log.debug("Lipschitz fast path skipped: %s", e)
        return None
    if r is not None and r.verdict is Verdict.UNSAT:
        return r
    return None


def _non_relu(problem: Problem, options: VerifyOptions, deadline: Deadline, name: str, kinds: list[str]) -> Result:
    """Networks with other nonlinearities (Sigmoid, Tanh, MaxPool): CROWN (or interval) bounds, then the attack."""
    t = time.monotonic()
    bmethod, why = "crown", ""
    proven, best = [False], []
    try:
        proven, best = bound_spec(problem, replace(options.bounds, method="crown"), deadline)
    except UnsupportedError:  # e.g. MaxPool has no linear relaxation
        bmethod = "ibp"
        try:
            proven, best = bound_spec(problem, replace(options.bounds, method="ibp"), deadline)
        except UnsupportedError as e:  # e.g. Log of a possibly negative value: no bound, the attack still runs
            bmethod, why = "none", str(e)
    timings = {bmethod: time.monotonic() - t}
    bound = min(best) if best else None
    if all(proven):
        return Result(Verdict.UNSAT, f"{name}:{bmethod}", bound=bound, timings=timings)
    t = time.monotonic()
    stats: dict = {}
    cex = pgd_attack(problem.graph, problem.spec, options.attack, deadline, problem.reference, stats=stats)
    timings["attack"] = time.monotonic() - t
    if cex is not None:
        return Result(Verdict.SAT, f"{name}:attack", counterexample=cex, timings=timings, stats=stats)
    verdict = Verdict.TIMEOUT if deadline.expired() else Verdict.UNKNOWN
    message = f"branch and bound supports ReLU networks only (this one has {', '.join(kinds)})"
    if why:
        message = f"no bound: {why}; {message}"
    return Result(verdict, f"{name}:{bmethod}+attack", bound=bound, timings=timings, stats=stats, message=message)


def bab_method(problem: Problem, options: VerifyOptions, deadline: Deadline) -> Result:
    return run_bab(problem, options, deadline, "bab")


def auto_method(problem: Problem, options: VerifyOptions, deadline: Deadline) -> Result:
    return run_bab(problem, options, deadline, "auto")


register_method("bab", bab_method)
register_method("auto", auto_method)
