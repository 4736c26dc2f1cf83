"""The complete search for networks with other nonlinearities than ReLU (Sigmoid, Tanh, Sin, products, MaxPool, ...):
input splitting (``verifier.bab.input_split``) interleaved with PGD, for any input dimension.

ReLU splitting does not apply to such networks, so splitting the input is the only complete method there (what
alpha-beta-CROWN's input split does for the lsnc and ml4acopf benchmarks). Each input region of the spec with open
disjuncts is searched in turn. The search of a region runs in slices of ``SEARCH_SHARE`` of the time left; between
two slices PGD gets ``ATTACK_SHARE`` of it (on the region, a new seed each time), and the next slice resumes from the
boxes the last one left open, so no bounding is thrown away. The dimension to split is chosen by the smear scores
(``BaBSettings.input_branching``; ``"best"``, whose boxes cannot be resumed, is replaced by ``"smear-all"``).
The cap on stored boxes and the batch follow the network's size (``STORE_BYTES``, ``BATCH_ELEMENTS``): each box
keeps the bounds of every nonlinear node's input.
"""
from __future__ import annotations

import logging
from dataclasses import replace

from verifier.attack import pgd_attack
from verifier.bab.common import Outcome, RegionOutcome, RegionTask
from verifier.bab.input_split import box_elements, input_split_region
from verifier.bab.search import SearchOutcome
from verifier.ir.deadline import Deadline
from verifier.ir.problem import Problem
from verifier.settings import AttackSettings, BaBSettings, BoundSettings

log = logging.getLogger("verifier.bab")

SEARCH_SHARE = 0.6  # share of the time left for each slice of the search ...
ATTACK_SHARE = 0.1  # ... and for the attack after a slice that ran out of its time
MIN_SLICE_S = 3.0  # with less than this many seconds left the search takes the rest in one slice
STORE_BYTES = 4e9  # stored boxes (with the bounds they hand to their children) take at most about this much memory
BATCH_ELEMENTS = 2e7  # boxes bounded per round: at most this many stored numbers (and ``BaBSettings.batch``)
ATTACK_EVERY = 100  # rounds between the search's own short PGD runs (``BaBSettings.attack_every``, 20, is for ReLU
# nets: on lsnc's controllers those took 30 % of the time, the attacks between slices are there as well)


def search_general(problem: Problem, proven: list[bool], settings: BaBSettings, bounds: BoundSettings,
                   attack: AttackSettings, deadline: Deadline, stats: dict) -> SearchOutcome:
    """Input splitting interleaved with PGD on every input region with a disjunct that ``proven`` leaves open. The
    outcome's strategy is ``"input"``, or ``"attack"`` where an attack between two slices found the
    counterexample."""
    if settings.input_branching == "best":
        settings = replace(settings, input_branching="smear-all")
    if settings.attack_every:
        settings = replace(settings, attack_every=max(settings.attack_every, ATTACK_EVERY))
    # a box of a large network stores the bounds of every nonlinear node's input (ReLU-only input splitting runs
    # on small networks only): the cap on stored boxes and the batch follow the network's size
    per_box = box_elements(problem.graph)
    box_bytes = per_box * problem.graph.dtype.itemsize
    settings = replace(settings, max_domains=max(64, min(settings.max_domains, int(STORE_BYTES / box_bytes))),
                       batch=max(1, min(settings.batch, int(BATCH_ELEMENTS / per_box))))
    stats["max_boxes"] = settings.max_domains
    stats["strategy"] = "input"
    last_open: RegionOutcome | None = None
    for lo, hi, idx in problem.spec.regions():
        if all(proven[j] for j in idx):
            continue
        task = RegionTask(problem, lo, hi, [j for j in idx if not proven[j]], settings, bounds)
        found, by = _interleaved(task, attack, deadline, stats)
        if found.status == Outcome.FALSIFIED:
            return SearchOutcome(Outcome.FALSIFIED, by, found.counterexample, stats=stats)
        if found.status == Outcome.OPEN:
            last_open = found
            if deadline.expired() or found.out_of_time:
                break
    if last_open is None:
        return SearchOutcome(Outcome.PROVEN, "input", stats=stats)
    return SearchOutcome(Outcome.OPEN, "input", out_of_time=deadline.expired() or last_open.out_of_time,
                         stats=stats, stopped=last_open.stopped)


def _interleaved(task: RegionTask, attack: AttackSettings, deadline: Deadline,
                 stats: dict) -> tuple[RegionOutcome, str]:
    """One region: slices of input splitting (each resuming from the last one's open boxes) with PGD between them.
    Returns the outcome and what answered ("input" or "attack")."""
    problem = task.problem
    resume = None
    k = 0
    while True:
        last = deadline.left() * SEARCH_SHARE < MIN_SLICE_S
        budget = deadline if last else deadline.share(SEARCH_SHARE)
        counted = stats.get("open_domains", 0)
        found = input_split_region(task, budget, stats, resume=resume)
        if found.status != Outcome.OPEN or last or not found.out_of_time or deadline.expired():
            return found, "input"
        stats["open_domains"] = counted  # the boxes are searched on: the last slice counts them
        resume = found.open_boxes
        k += 1
        stats["search_slices"] = k
        log.info("input split: slice %d left %d boxes open; attack, then resume", k, found.open_domains)
        cex = pgd_attack(problem.graph, problem.spec, replace(attack, seed=attack.seed + 101 * k),
                         deadline.share(ATTACK_SHARE), problem.reference, box=(task.lo, task.hi))
        if cex is not None:
            return RegionOutcome(Outcome.FALSIFIED, cex), "attack"
        if resume is None:  # nothing to resume from (cannot happen with the smear branchings): start over
            log.info("input split: no open boxes handed over; the region is searched from the start")
