"""Top level of the complete search: attack first, then input or ReLU splitting per region."""
from __future__ import annotations

import logging
import time
from dataclasses import replace

from ..attack import pgd_attack
from ..bounds import BoundSettings
from ..core_methods import bound_spec
from ..errors import UnsupportedError
from ..methods import register_method
from ..ops import ReLU
from ..options import AttackSettings, VerifyOptions
from ..problem import Deadline, Problem
from ..result import Result, Verdict
from .input_split import Outcome, input_split_region
from .refine import MARGIN_ABS, MARGIN_REL
from .settings import BaBSettings

log = logging.getLogger("verifier.bab")


def choose_strategy(problem: Problem, settings: BaBSettings) -> str:
    return "input" if problem.graph.n_inputs <= settings.input_split_max_dim else "relu"


def run_bab(problem: Problem, options: VerifyOptions, deadline: Deadline, settings: BaBSettings,
            name: str = "bab", attack_first: bool = True) -> Result:
    """Quick CROWN bound, then an attack, then the branch and bound region by region."""
    stats: dict = {}
    timings: dict[str, float] = {}
    fast = _lipschitz_fast_path(problem)
    if fast is not None:
        return fast
    other = sorted({n.op.kind for n in problem.graph.nonlinear_nodes() if not isinstance(n.op, ReLU)})
    if other:
        return _non_relu(problem, options, deadline, name, other)
    t = time.monotonic()
    proven, best = bound_spec(problem, BoundSettings("crown"), deadline)
    timings["crown"] = time.monotonic() - t
    stats["crown_bound"] = min(best) if best else None
    if all(proven):
        return Result(Verdict.UNSAT, f"{name}:crown", bound=stats["crown_bound"], timings=timings, stats=stats)
    if attack_first:
        t = time.monotonic()
        budget = Deadline(min(deadline.left(), max(1.0, settings.attack_fraction * options.timeout)))
        cex = pgd_attack(problem.graph, problem.spec, options.attack, budget, problem.reference,
                         rounds=settings.attack_rounds, stats=stats)
        timings["attack"] = time.monotonic() - t
        if cex is not None:
            return Result(Verdict.SAT, name + ":attack", counterexample=cex, timings=timings, stats=stats)
    strategy = choose_strategy(problem, settings)
    stats["strategy"] = strategy
    t = time.monotonic()
    if strategy == "relu":
        from .relu_split import relu_split_portfolio as search_region
    else:
        search_region = input_split_region
    all_proven = True
    spec = problem.spec
    for (lo, hi, idx) in spec.regions():
        if all(proven[j] for j in idx):
            continue
        open_idx = [j for j in idx if not proven[j]]
        if strategy == "input" and settings.input_portfolio:
            outcome, cex = _portfolio(problem, lo, hi, open_idx, settings, deadline, stats)
        else:
            outcome, cex = search_region(problem, lo, hi, open_idx, settings, deadline, stats)
        if outcome == Outcome.FALSIFIED:
            timings["search"] = time.monotonic() - t
            return Result(Verdict.SAT, f"{name}:{strategy}-split", counterexample=cex, timings=timings, stats=stats)
        if outcome == Outcome.OPEN:
            all_proven = False
            if deadline.expired() or stats.get("out_of_time"):
                break
    timings["search"] = time.monotonic() - t
    if all_proven:
        msg = REFINE_NOTE if stats.get("refine_solves") else ""
        return Result(Verdict.UNSAT, f"{name}:{strategy}-split", timings=timings, stats=stats, message=msg)
    verdict = Verdict.TIMEOUT if deadline.expired() or stats.get("out_of_time") else Verdict.UNKNOWN
    return Result(verdict, f"{name}:{strategy}-split", timings=timings, stats=stats)


REFINE_NOTE = ("the intermediate bounds were refined by MILP: unsat relies on Gurobi's feasibility tolerances "
               "there (margin {:g} + {:g} |bound|)".format(MARGIN_ABS, MARGIN_REL))


def _lipschitz_fast_path(problem: Problem) -> Result | None:
    """The Lipschitz certificate for plain robustness specs (milliseconds); None when it does not apply."""
    try:
        from ..lipschitz_fastpath import lipschitz_fast_path

        r = lipschitz_fast_path(problem.graph, problem.spec)
    except Exception as e:  # never let the fast path break the search
        log.debug("Lipschitz fast path skipped: %s", e)
        return None
    if r is not None and r.verdict is Verdict.UNSAT:
        return r
    return None


def _portfolio(problem, lo, hi, idx, settings: BaBSettings, deadline: Deadline, stats: dict):
    """Input splitting with each configuration of ``settings.input_portfolio`` in turn.

    The last configuration resumes from the boxes the first one left open when its time ran out
    (when it did), so the longest search is not thrown away."""
    outcome, cex = Outcome.OPEN, None
    first_frontier: dict = {}
    for k, (branching, iters, alpha_ax, share) in enumerate(settings.input_portfolio):
        last = k == len(settings.input_portfolio) - 1
        budget = deadline if last else Deadline(max(0.0, deadline.left() * share))
        cfg = replace(settings, input_branching=branching, input_alpha_iters=iters, input_alpha_ax=alpha_ax)
        frontier = first_frontier if (k == 0 or last) else None
        outcome, cex = input_split_region(problem, lo, hi, idx, cfg, budget, stats, frontier=frontier)
        stats["portfolio_runs"] = k + 1
        if outcome != Outcome.OPEN or deadline.expired():
            break
        log.info("input split: configuration %d left %d boxes open; restarting with the next", k + 1,
                 stats.get("open_domains", 0))
        if k == 0:  # a hard instance: give the attack a real chance before searching on
            budget = Deadline(min(deadline.left(), max(1.0, settings.attack_fraction * deadline.left())))
            cex = pgd_attack(problem.graph, problem.spec, AttackSettings(seed=7), budget, problem.reference,
                             rounds=50, box=(lo, hi))
            if cex is not None:
                return Outcome.FALSIFIED, cex
    return outcome, cex


def _non_relu(problem: Problem, options: VerifyOptions, deadline: Deadline, name: str, kinds: list[str]) -> Result:
    """Networks with other nonlinearities (Sigmoid, Tanh, MaxPool): CROWN (or interval) bounds, then the attack."""
    t = time.monotonic()
    bmethod = "crown"
    try:
        proven, best = bound_spec(problem, BoundSettings("crown"), deadline)
    except UnsupportedError:  # e.g. MaxPool has no linear relaxation
        bmethod = "ibp"
        proven, best = bound_spec(problem, BoundSettings("ibp"), deadline)
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
    return Result(verdict, f"{name}:{bmethod}+attack", bound=bound, timings=timings, stats=stats,
                  message=f"branch and bound supports ReLU networks only (this one has {', '.join(kinds)})")


def bab_method(problem: Problem, options: VerifyOptions, deadline: Deadline) -> Result:
    return run_bab(problem, options, deadline, BaBSettings(), "bab")


def auto_method(problem: Problem, options: VerifyOptions, deadline: Deadline) -> Result:
    return run_bab(problem, options, deadline, BaBSettings(), "auto")


register_method("bab", bab_method, "branch and bound (input or ReLU splitting) with attacks: sat / unsat")
register_method("auto", auto_method, "default: attack, then branch and bound chosen by the input size")
