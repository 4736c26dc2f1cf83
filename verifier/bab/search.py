"""Top level of the complete search: each input region of the spec searched in turn, by input splitting
(few inputs) or ReLU splitting; the first counterexample ends it.

``search_regions`` is what the ``bab`` and ``auto`` methods (``verifier.methods.bab``) call once the cheap
bounds and the first attack have not decided the spec.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from verifier.attack import pgd_attack
from verifier.bab.common import Outcome
from verifier.bab.input_split import input_split_region
from verifier.bab.relu_split import relu_split_portfolio
from verifier.ir.deadline import Deadline
from verifier.ir.problem import Problem
from verifier.ir.result import Counterexample
from verifier.settings import AttackSettings, BaBSettings

log = logging.getLogger("verifier.bab")


@dataclass
class SearchOutcome:
    """How a search ended: ``outcome`` (``Outcome.PROVEN``, ``FALSIFIED`` or ``OPEN``), the strategy, the
    validated counterexample of a falsified spec, whether an open search stopped for lack of time, and
    whether a proof relied on MILP-refined intermediate bounds (Gurobi's tolerances)."""

    outcome: str
    strategy: str
    counterexample: Counterexample | None = None
    out_of_time: bool = False
    refined: bool = False
    stats: dict = field(default_factory=dict)


def choose_strategy(problem: Problem, settings: BaBSettings) -> str:
    return "input" if problem.graph.n_inputs <= settings.input_split_max_dim else "relu"


def search_regions(problem: Problem, proven: list[bool], settings: BaBSettings, deadline: Deadline,
                   stats: dict) -> SearchOutcome:
    """Branch and bound on every input region with a disjunct that ``proven`` (per disjunct) leaves open."""
    strategy = choose_strategy(problem, settings)
    stats["strategy"] = strategy
    all_proven = True
    for (lo, hi, idx) in problem.spec.regions():
        if all(proven[j] for j in idx):
            continue
        open_idx = [j for j in idx if not proven[j]]
        if strategy == "input" and settings.input_portfolio:
            outcome, cex = _portfolio(problem, lo, hi, open_idx, settings, deadline, stats)
        elif strategy == "input":
            outcome, cex = input_split_region(problem, lo, hi, open_idx, settings, deadline, stats)
        else:
            outcome, cex = relu_split_portfolio(problem, lo, hi, open_idx, settings, deadline, stats)
        if outcome == Outcome.FALSIFIED:
            return SearchOutcome(Outcome.FALSIFIED, strategy, cex, stats=stats)
        if outcome == Outcome.OPEN:
            all_proven = False
            if deadline.expired() or stats.get("out_of_time"):
                break
    if all_proven:
        return SearchOutcome(Outcome.PROVEN, strategy, refined=bool(stats.get("refine_solves")), stats=stats)
    return SearchOutcome(Outcome.OPEN, strategy, out_of_time=deadline.expired() or bool(stats.get("out_of_time")),
                         stats=stats)


def _portfolio(problem, lo, hi, idx, settings: BaBSettings, deadline: Deadline, stats: dict):
    """Input splitting with each configuration of ``settings.input_portfolio`` in turn.

    The last configuration resumes from the boxes the first one left open when its time ran out
    (when it did), so the longest search is not thrown away."""
    outcome, cex = Outcome.OPEN, None
    first_frontier: dict = {}
    for k, (branching, iters, alpha_ax, share) in enumerate(settings.input_portfolio):
        last = k == len(settings.input_portfolio) - 1
        budget = deadline if last else deadline.share(share)
        cfg = replace(settings, input_branching=branching, input_alpha_iters=iters, input_alpha_ax=alpha_ax)
        frontier = first_frontier if (k == 0 or last) else None
        outcome, cex = input_split_region(problem, lo, hi, idx, cfg, budget, stats, frontier=frontier)
        stats["portfolio_runs"] = k + 1
        if outcome != Outcome.OPEN or deadline.expired():
            break
        log.info("input split: configuration %d left %d boxes open; restarting with the next", k + 1,
                 stats.get("open_domains", 0))
        if k == 0:  # a hard instance: give the attack a real chance before searching on
            budget = deadline.sub(max(1.0, settings.attack_fraction * deadline.left()))
            cex = pgd_attack(problem.graph, problem.spec, AttackSettings(seed=7), budget, problem.reference,
                             rounds=50, box=(lo, hi))
            if cex is not None:
                return Outcome.FALSIFIED, cex
    return outcome, cex
