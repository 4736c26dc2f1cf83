"""The complete methods ``bab`` and ``auto``: the Lipschitz fast path, CROWN, a first attack, then branch and
bound region by region (``verifier.bab.search``)."""
from __future__ import annotations

import logging
import time
from dataclasses import replace

import torch

from verifier.attack import pgd_attack
from verifier.bab.common import Outcome, Stop
from verifier.bab.general import search_general
from verifier.bab.refine import MARGIN_ABS, MARGIN_REL
from verifier.bounds.spec_bounds import bound_spec
from verifier.certificates.lipschitz.fastpath import lipschitz_fast_path
from verifier.ir.deadline import Deadline
from verifier.ir.errors import UnsupportedError
from verifier.ir.lower_piecewise import lower_piecewise
from verifier.ir.ops import ReLU
from verifier.ir.problem import Problem
from verifier.ir.result import Result, Verdict
from verifier.methods.registry import register_method
from verifier.methods.schedule import first_attack, run_plan, search_result
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
    if name == "auto":  # the planner's schedule: MILP, input or ReLU splitting, raced where cores allow
        return run_plan(problem, proven, options, deadline, stats, timings, name, REFINE_NOTE)
    sat = first_attack(problem, options, deadline, stats, timings, name) if settings.attack_first else None
    if sat is not None:
        return sat
    if deadline.expired():
        return Result(Verdict.TIMEOUT, name, timings=timings, stats=stats)
    return search_result(problem, proven, options, deadline, stats, timings, name, refine_note=REFINE_NOTE)


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


NEAR_ZERO = 1e-3  # networks with other nonlinearities: a float32 bound of an open disjunct above -NEAR_ZERO on the
# whole box is bounded again in float64 before the search


def _non_relu(problem: Problem, options: VerifyOptions, deadline: Deadline, name: str, kinds: list[str]) -> Result:
    """Networks with other nonlinearities (Sigmoid, Tanh, Sin, products, MaxPool, ...): CROWN (or interval) bounds on
    the whole box, an attack with ``BaBSettings.attack_fraction`` of the time, then input splitting interleaved with
    the attack for the rest (``verifier.bab.general``; any input dimension: ReLU splitting does not apply). Where no
    bound is defined on the whole box (e.g. Log of a possibly negative value) the attack takes all the time."""
    settings = options.bab
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
    near = any(not p and b > -NEAR_ZERO for p, b in zip(proven, best))
    if near and problem.graph.dtype != torch.float64 and not deadline.expired():
        # float32's own rounding in the bound passes (not only its allowance) can keep a bound just below 0 that
        # float64 proves (ml4acopf 118_ieee prop4: -5.4e-6 in float32, +1.1e-6 in float64)
        t = time.monotonic()
        p64 = replace(problem, graph=problem.graph64())
        try:
            proven64, best64 = bound_spec(p64, replace(options.bounds, method=bmethod), deadline)
            proven = [a or b for a, b in zip(proven, proven64)]
            best = [max(a, b) for a, b in zip(best, best64)]
            bmethod64 = all(proven)
        except UnsupportedError:
            bmethod64 = False
        timings[f"{bmethod}-float64"] = time.monotonic() - t
        if bmethod64:
            bmethod = f"{bmethod}-float64"
    bound = min(best) if best else None
    if all(proven):
        return Result(Verdict.UNSAT, f"{name}:{bmethod}", bound=bound, timings=timings)
    t = time.monotonic()
    stats: dict = {}
    budget = deadline if why else deadline.sub(max(1.0, settings.attack_fraction * deadline.left()))
    cex = pgd_attack(problem.graph, problem.spec, options.attack, budget, problem.reference, stats=stats)
    timings["attack"] = time.monotonic() - t
    if cex is not None:
        return Result(Verdict.SAT, f"{name}:attack", counterexample=cex, timings=timings, stats=stats)
    if why or deadline.expired():
        verdict = Verdict.TIMEOUT if deadline.expired() else Verdict.UNKNOWN
        message = f"no bound: {why}; input splitting needs bounds on the whole box" if why else ""
        return Result(verdict, f"{name}:{bmethod}+attack", bound=bound, timings=timings, stats=stats, message=message)
    t = time.monotonic()
    found = search_general(problem, proven, settings, options.bounds, options.attack, deadline, stats)
    timings["search"] = time.monotonic() - t
    method = f"{name}:{found.strategy}" if found.strategy == "attack" else f"{name}:input-split"
    if found.outcome == Outcome.FALSIFIED:
        return Result(Verdict.SAT, method, counterexample=found.counterexample, timings=timings, stats=stats)
    if found.outcome == Outcome.PROVEN:
        return Result(Verdict.UNSAT, method, bound=bound, timings=timings, stats=stats)
    if found.stopped == Stop.MEMORY:
        why_open = "the stored boxes passed their cap"
    elif found.stopped == Stop.UNSPLITTABLE:
        why_open = "a box became too thin to halve"
    else:
        why_open = "its time ran out"
    message = (f"input splitting ({', '.join(kinds)}) left {stats.get('open_domains', 0)} boxes open after "
               f"bounding {stats.get('domains', 0)}: {why_open}")
    return Result(Verdict.TIMEOUT if found.out_of_time else Verdict.UNKNOWN, method, bound=bound, timings=timings,
                  stats=stats, message=message)


def bab_method(problem: Problem, options: VerifyOptions, deadline: Deadline) -> Result:
    return run_bab(problem, options, deadline, "bab")


def auto_method(problem: Problem, options: VerifyOptions, deadline: Deadline) -> Result:
    return run_bab(problem, options, deadline, "auto")


register_method("bab", bab_method)
register_method("auto", auto_method)
