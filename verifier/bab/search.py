"""Top level of the complete search: each input region of the spec searched in turn, by input splitting
(few inputs) or ReLU splitting; the first counterexample ends it.

``search_regions`` is what the ``bab`` and ``auto`` methods (``verifier.methods.bab``) call once the cheap
bounds and the first attack have not decided the spec. Each region's search returns a ``RegionOutcome``; the
statistics only report.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from verifier.bab.common import Outcome, RegionOutcome, RegionTask
from verifier.bab.input_split import input_split_region
from verifier.bab.portfolio import input_split_portfolio, relu_split_portfolio
from verifier.ir.deadline import Deadline
from verifier.ir.problem import Problem
from verifier.ir.result import Counterexample
from verifier.settings import BaBSettings, BoundSettings


@dataclass
class SearchOutcome:
    """How a search ended: ``outcome`` (``Outcome.PROVEN``, ``FALSIFIED`` or ``OPEN``), the strategy, the
    validated counterexample of a falsified spec, whether an open search stopped for lack of time (and why it
    stopped: a ``Stop``, for the last region searched), and whether a proof relied on MILP-refined intermediate
    bounds (Gurobi's tolerances)."""

    outcome: str
    strategy: str
    counterexample: Counterexample | None = None
    out_of_time: bool = False
    refined: bool = False
    stats: dict = field(default_factory=dict)
    stopped: str | None = None


def choose_strategy(problem: Problem, settings: BaBSettings) -> str:
    return "input" if problem.graph.n_inputs <= settings.input_split_max_dim else "relu"


def search_region(task: RegionTask, strategy: str, deadline: Deadline, stats: dict) -> RegionOutcome:
    """One region by ``strategy`` ("input": the input portfolio where one is set, "relu")."""
    if strategy == "input" and task.settings.input_portfolio:
        return input_split_portfolio(task, deadline, stats)
    if strategy == "input":
        return input_split_region(task, deadline, stats)
    return relu_split_portfolio(task, deadline, stats)


def search_regions(problem: Problem, proven: list[bool], settings: BaBSettings, bounds: BoundSettings,
                   deadline: Deadline, stats: dict, strategy: str | None = None) -> SearchOutcome:
    """Branch and bound on every input region with a disjunct that ``proven`` (per disjunct) leaves open, with
    the run's branch-and-bound and bound settings, by ``strategy`` ("input" or "relu"; None: ``choose_strategy``)."""
    strategy = strategy or choose_strategy(problem, settings)
    stats["strategy"] = strategy
    refined = False
    last_open: RegionOutcome | None = None
    for (lo, hi, idx) in problem.spec.regions():
        if all(proven[j] for j in idx):
            continue
        open_idx = [j for j in idx if not proven[j]]
        found = search_region(RegionTask(problem, lo, hi, open_idx, settings, bounds), strategy, deadline, stats)
        if found.status == Outcome.FALSIFIED:
            return SearchOutcome(Outcome.FALSIFIED, strategy, found.counterexample, stats=stats)
        refined |= found.refined
        if found.status == Outcome.OPEN:
            last_open = found
            if deadline.expired() or found.out_of_time:
                break
    if last_open is None:
        return SearchOutcome(Outcome.PROVEN, strategy, refined=refined, stats=stats)
    return SearchOutcome(Outcome.OPEN, strategy, out_of_time=deadline.expired() or last_open.out_of_time,
                         stats=stats, stopped=last_open.stopped)
