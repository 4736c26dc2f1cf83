"""Searches of one region run in turn with other settings, each with its share of the time left: the best
heuristic is erratic from instance to instance, and a restart with another one often finishes quickly.

``input_split_portfolio``: the configurations of ``BaBSettings.input_portfolio``, the last resuming from the
boxes the first left open. ``relu_split_portfolio``: the branching widths of ``BaBSettings.relu_fsb_portfolio``,
with the root's intermediate bounds refined by MILP between the first and the second (``refine``).
"""
from __future__ import annotations

import logging
from dataclasses import replace

from verifier.attack import pgd_attack
from verifier.bab.common import Outcome, RegionOutcome, RegionTask
from verifier.bab.input_split import input_split_region
from verifier.bab.refine import refine_root
from verifier.bab.relu_split import relu_split_region
from verifier.bab.relu_start import recomputes
from verifier.ir.deadline import Deadline
from verifier.settings.options import AttackSettings

log = logging.getLogger("verifier.bab")


def input_split_portfolio(task: RegionTask, deadline: Deadline, stats: dict) -> RegionOutcome:
    """Input splitting with each configuration of ``settings.input_portfolio`` in turn.

    The last configuration resumes from the boxes the first one left open when its time ran out
    (when it did), so the longest search is not thrown away."""
    settings = task.settings
    runs = settings.input_portfolio
    first_open = None
    for k, (branching, iters, alpha_ax, share) in enumerate(runs):
        last = k == len(runs) - 1
        budget = deadline if last else deadline.share(share)
        cfg = replace(settings, input_branching=branching, input_alpha_iters=iters, input_alpha_ax=alpha_ax)
        found = input_split_region(replace(task, settings=cfg), budget, stats, resume=first_open if last else None)
        stats["portfolio_runs"] = k + 1
        if found.status != Outcome.OPEN or deadline.expired():
            break
        log.info("input split: configuration %d left %d boxes open; restarting with the next", k + 1,
                 found.open_domains)
        if k == 0:  # a hard instance: give the attack a real chance before searching on
            first_open = found.open_boxes
            budget = deadline.sub(max(1.0, settings.attack_fraction * deadline.left()))
            cex = pgd_attack(task.problem.graph, task.problem.spec, AttackSettings(seed=7), budget,
                             task.problem.reference, rounds=50, box=(task.lo, task.hi))
            if cex is not None:
                return RegionOutcome(Outcome.FALSIFIED, cex)
    return found


def relu_split_portfolio(task: RegionTask, deadline: Deadline, stats: dict) -> RegionOutcome:
    """ReLU splitting; where intermediate bounds are re-derived and ``relu_fsb`` is not set, one search per
    width of ``relu_fsb_portfolio`` in turn, each with its share of the time left (the last: the rest), each
    from the root: the best branching width there is erratic from instance to instance. A search that ran out
    of its share is followed by the next; one that ended otherwise (proven, falsified, open for another
    reason) ends the region. Between the first and the second search the root's intermediate bounds are
    refined by MILP (``relu_refine_share`` of the time left, ``bab/refine.py``) and the later searches start
    from them."""
    settings = task.settings
    if settings.relu_fsb is not None or not settings.relu_fsb_portfolio or \
            not recomputes(task.problem.graph, settings):
        return _reported(relu_split_region(task, deadline, stats), stats)
    runs = settings.relu_fsb_portfolio
    root_pre = None
    for k, (width, share) in enumerate(runs):
        last = k == len(runs) - 1
        budget = deadline if last else deadline.share(share)
        found = relu_split_region(replace(task, settings=replace(settings, relu_fsb=width)), budget, stats,
                                  root_pre=root_pre)
        stats["portfolio_runs"] = k + 1
        if found.status != Outcome.OPEN or last or deadline.expired() or not found.out_of_time:
            break
        log.info("relu split: branching width %d left %d domains open; restarting with width %d", width,
                 found.open_domains, runs[k + 1][0])
        stats.pop("open_domains", None)  # the share ran out, not the whole budget: the next search reports
        if k == 0 and settings.relu_refine_share > 0:
            root_pre = refine_root(task.problem, task.lo, task.hi, task.idx, settings,
                                   deadline.share(settings.relu_refine_share), stats)
    return _reported(found, stats)


def _reported(found: RegionOutcome, stats: dict) -> RegionOutcome:
    """The statistics say whether the (last) search ran out of time."""
    if found.out_of_time:
        stats["out_of_time"] = True
    return found
