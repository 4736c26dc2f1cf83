"""``auto``'s complete phase: the planner's schedule (``verifier.methods.planner``) run step by step, each step
with its share of the time left (the last: the rest), or the first MILP raced against the next step
(``verifier.methods.race``). The first step that decides ends the run; the result's method names it
(``auto:milp``, ``auto:relu-split``, ...) and its statistics hold the plan and, after a race, who answered."""
from __future__ import annotations

import logging
import time
from dataclasses import replace

from backends import run_backend
from verifier.attack import pgd_attack
from verifier.bab.common import Outcome
from verifier.bab.search import search_regions
from verifier.ir.deadline import Deadline
from verifier.ir.problem import Problem
from verifier.ir.result import Result, Verdict
from verifier.methods.features import problem_features
from verifier.methods.planner import Plan, make_plan
from verifier.methods.race import DECIDED, race
from verifier.settings import VerifyOptions

log = logging.getLogger("verifier.auto")

STRATEGIES = {"input-split": "input", "relu-split": "relu"}


def search_result(problem: Problem, proven: list[bool], options: VerifyOptions, deadline: Deadline, stats: dict,
                  timings: dict, name: str, strategy: str | None = None, refine_note: str = "") -> Result:
    """Branch and bound on the open disjuncts (``strategy``: "input", "relu" or None: by the input's size), as a
    ``Result`` named ``{name}:{strategy}-split``."""
    t = time.monotonic()
    found = search_regions(problem, proven, options.bab, options.bounds, deadline, stats, strategy)
    timings["search"] = timings.get("search", 0.0) + time.monotonic() - t
    method = f"{name}:{found.strategy}-split"
    if found.outcome == Outcome.FALSIFIED:
        return Result(Verdict.SAT, method, counterexample=found.counterexample, timings=timings, stats=stats)
    if found.outcome == Outcome.PROVEN:
        return Result(Verdict.UNSAT, method, timings=timings, stats=stats, message=refine_note if found.refined else "")
    return Result(Verdict.TIMEOUT if found.out_of_time else Verdict.UNKNOWN, method, timings=timings, stats=stats)


def first_attack(problem: Problem, options: VerifyOptions, deadline: Deadline, stats: dict, timings: dict,
                 name: str) -> Result | None:
    """The short attack before the search (``BaBSettings.attack_fraction`` of the budget, at least 1 s): a ``sat``
    result, or None."""
    settings = options.bab
    t = time.monotonic()
    budget = deadline.sub(max(1.0, settings.attack_fraction * deadline.total))
    cex = pgd_attack(problem.graph, problem.spec, options.attack, budget, problem.reference,
                     rounds=settings.attack_rounds, stats=stats)
    timings["attack"] = timings.get("attack", 0.0) + time.monotonic() - t
    if cex is None:
        return None
    return Result(Verdict.SAT, name + ":attack", counterexample=cex, timings=timings, stats=stats)


def plan_for(problem: Problem, options: VerifyOptions, stats: dict, timings: dict) -> Plan:
    t = time.monotonic()
    features = problem_features(problem)
    plan = make_plan(features, options.plan, options.bab.input_split_max_dim)
    timings["plan"] = time.monotonic() - t
    stats["features"] = features.describe()
    stats["plan"] = plan.describe()
    log.info("features: %s", stats["features"])
    log.info("plan: %s", stats["plan"])
    return plan


def run_plan(problem: Problem, proven: list[bool], options: VerifyOptions, deadline: Deadline, stats: dict,
             timings: dict, name: str, refine_note: str = "") -> Result:
    """The complete phase of ``auto`` on a ReLU network (``proven``: the disjuncts CROWN already proved): the
    first attack, then the plan's steps; in a race the attack opens the local side while the MILP starts."""
    plan = plan_for(problem, options, stats, timings)
    attack = options.bab.attack_first

    def step(kind: str, budget: Deadline, threads: int | None = None) -> Result:
        t = time.monotonic()
        if kind == "milp":
            # the solver's own log stays off: -v shows the plan and the search's progress
            r = run_backend("milp", problem, replace(options, solver=plan.solver), budget, threads=threads,
                            verbose=False)
            timings["milp"] = timings.get("milp", 0.0) + time.monotonic() - t
            r.method = f"{name}:milp"
            return r
        return search_result(problem, proven, options, budget, stats, timings, name, STRATEGIES[kind], refine_note)

    steps = list(plan.steps)
    if plan.race:
        first, second = steps[0], steps[1]

        def local(d: Deadline) -> Result:
            sat = first_attack(problem, options, d, stats, timings, name) if attack else None
            if sat is not None or d.expired():
                return sat or Result(Verdict.TIMEOUT, name, timings=timings, stats=stats)
            return step(second, d if len(steps) == 2 else d.share(plan.shares[1]))

        result = race(problem, local, lambda d: step(first, d, threads=1), deadline, (second, first), stats)
        log.info("race: %s", stats.get("race"))
        if result.verdict in DECIDED or deadline.expired() or len(steps) == 2:
            return _finish(result, timings, stats)
        steps = steps[2:]
        shares = plan.shares[2:]
    else:
        shares = plan.shares
        sat = first_attack(problem, options, deadline, stats, timings, name) if attack else None
        if sat is not None:
            return sat
    result = Result(Verdict.TIMEOUT, name, timings=timings, stats=stats)
    for k, kind in enumerate(steps):
        if deadline.expired():
            break
        budget = deadline if k == len(steps) - 1 else deadline.share(shares[k])
        result = step(kind, budget)
        if result.verdict in DECIDED or deadline.expired():
            break
        log.info("%s left the spec open (%s); next step", kind, result.verdict)
    return _finish(result, timings, stats)


def _finish(result: Result, timings: dict, stats: dict) -> Result:
    result.timings = {**timings, **result.timings}
    result.stats = {**stats, **result.stats}
    return result
