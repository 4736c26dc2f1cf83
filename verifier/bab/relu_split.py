"""Branch and bound by splitting unstable ReLUs (for image-sized inputs).

A domain is a set of split decisions ``z_j >= 0`` / ``z_j <= 0`` on pre-activation
neurons, stored as per-node clamp tensors. The root is bounded by alpha-CROWN with
every layer's slopes optimised; disjuncts proven there are dropped, and the search
bounds the remaining rows only. A batch of domains is bounded at once: the clamps are
intersected into the interval bounds of their node, CROWN refines each domain's layers after
its new split (nets of at most 2048 neurons; the earlier layers would give the parent's
bounds again) with the root's optimised intermediate slopes, and the objective gets alpha/beta-CROWN
steps (64 where the layers are re-bounded, 8 elsewhere; fewer once every row is proven) (beta:
multipliers of the split constraints) warm-started from the parent's optimised slopes and
multipliers (kept per domain in float16 while the memory budget allows, the root's slopes after
that), on the rows of the disjuncts still open in the domain only. A child keeps its parent's
bound where that is better (the parent's bound holds on the child). A domain whose bounds
become empty (lower > upper for some neuron) holds no input and is closed; one with no
unstable neuron left is decided by an exact LP, and, with
``BaBSettings.relu_milp_max_unstable``, one with few unstable neurons by a small MILP
(both in ``exact_domains``).

Branching (``branching``; the scores are in ``branching.py``): where intermediate bounds are not
re-derived, a first-order estimate of the worse child's bound gain per unstable neuron, from the
gradient of the domain's own bound (its slopes and multipliers) with respect to each pre-activation
coefficient; the top one is split. Where they are re-derived, the BaBSR-like score
``|A_j| * (-l_j u_j / (u_j - l_j))`` (the objective's coefficient on the neuron times the area of its
relaxation) picks ``relu_fsb`` candidates (searches with 4 and then 12 in turn:
``portfolio.relu_split_portfolio``), and a one-pass bound of both children of each with the parent's slopes
and multipliers (filtered smart branching; each child's pass starts at its split's ReLU from the
parent's coefficients there) picks the neuron. Every open domain's bound-minimising
input is evaluated as a counterexample, and seeds the periodic PGD (within ``attack_share`` of the
search time). Where the searches run in turn, the root's intermediate bounds are refined by MILP
between the first and the second (``refine.py``). Domains are taken worst bound first from a
``DomainQueue`` (``relu_queue``: a ``DomainStore`` of slots, a batch copies its own domains only); the stored
domains are capped (``BaBSettings.max_domains`` and a memory budget) and the search reports ``open`` rather
than grow past it. Deadline: the alpha/beta steps stop
at it, a bounding it cut short ends the search, the branching estimate is skipped when it
cannot finish, and a batch whose other work cannot finish in time is not started.

The modules: ``relu_start`` (the root bound, the choices made once per search, the caps), ``relu_bounding``
(bounding a batch of domains), ``branching`` (the scores), ``smart_branching`` (split copies, filtered smart
branching), ``relu_queue`` (the open domains), ``exact_domains`` (LP and MILP decisions); this one holds the
search loop.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

import torch

from verifier.attack import pgd_attack
from verifier.bab.branching import babsr_scores, gradient_scores
from verifier.bab.common import Outcome, RegionOutcome, RegionTask, Stop, falsify
from verifier.bab.domains import Domains, priority
from verifier.bab.exact_domains import solve_domain_milp, solve_linear_domain
from verifier.bab.relu_bounding import bound_domains
from verifier.bab.relu_start import ReluSearch, branching, start_search
from verifier.bab.smart_branching import fsb_choose
from verifier.ir.deadline import Deadline
from verifier.ir.result import Counterexample
from verifier.settings.options import AttackSettings

log = logging.getLogger("verifier.bab")


@dataclass
class _Pace:
    """The clocks of one search loop: its iterations, when the current batch started and the seconds of its
    alpha/beta steps (which stop at the deadline), the seconds of the last branching estimate, of the attacks,
    and the time of the last progress line."""

    it: int = 0
    t_start: float = field(default_factory=time.monotonic)
    t_batch: float | None = None
    alpha_s: float = 0.0
    last_fsb: float = 0.0
    t_attack: float = 0.0
    last_log: float = field(default_factory=time.monotonic)

    def next_batch(self, deadline: Deadline) -> bool:
        """Start the next batch; False where the deadline has passed, or where the previous batch's work other
        than its alpha/beta steps would not finish in the time left."""
        last_batch = 0.0 if self.t_batch is None else time.monotonic() - self.t_batch - self.alpha_s
        if deadline.expired() or deadline.left() < last_batch:
            return False
        self.t_batch = time.monotonic()
        self.it += 1
        return True


@dataclass
class _Branched:
    """What branching a bounded batch did: a counterexample found by an exact decision, whether some LP could
    not decide its domain, and whether any domain was split (its children stored)."""

    counterexample: Counterexample | None = None
    unresolved: bool = False
    split: bool = False


def relu_split_region(task: RegionTask, deadline: Deadline, stats: dict, root_pre: dict | None = None) -> RegionOutcome:
    """ReLU splitting on one input box (see the module's docstring), from the root bounds ``root_pre`` when
    given (sound bounds of every node, e.g. refined by MILP); statistics go into ``stats``."""
    s = start_search(task, deadline, stats, root_pre)
    if isinstance(s, RegionOutcome):
        return s
    settings, rows, queue = task.settings, s.region.rows, s.queue
    score_kind = stats["branching"] = branching(task.problem.graph, settings)
    fsb = settings.relu_fsb if settings.relu_fsb is not None else (1 if score_kind == "gradient" else 12)
    batch = settings.relu_batch if s.steps.recompute else 4 * settings.relu_batch
    pace = _Pace()
    first, unresolved = True, False
    while len(queue) > 0:
        if not pace.next_batch(deadline):
            return s.give_up(Stop.DEADLINE)
        cur = _bound_batch(s, min(batch, len(queue)), first, pace)
        first = False
        open_ = ~cur.ok.all(1)
        if not bool(open_.any()):
            continue
        if deadline.expired():  # the bounding stopped at the deadline: its open domains stay open
            return s.give_up(Stop.DEADLINE, int(open_.sum()), float(priority(rows, cur.lb[open_], cur.ok[open_]).min()))
        cur = cur.select(torch.nonzero(open_).flatten())
        with torch.no_grad():  # the input that minimises each open row's linear bound, and the box centre
            n = len(cur)
            cex = falsify(task.problem, rows, s.region.x_lo.expand(n, -1), s.region.x_hi.expand(n, -1), cur.Ax, cur.ok)
        if cex is not None:
            return RegionOutcome(Outcome.FALSIFIED, cex)
        step = _branch(s, cur, score_kind, fsb, pace)
        if step.counterexample is not None:
            return RegionOutcome(Outcome.FALSIFIED, step.counterexample)
        unresolved |= step.unresolved
        if not step.split:
            continue
        if len(queue) > queue.cap:
            stats["memory_cap_hit"] = True
            log.warning("branch and bound: %d domains exceed the cap of %d; giving up on this region", len(queue),
                        queue.cap)
            return s.give_up(Stop.MEMORY)
        if settings.attack_every and pace.it % settings.attack_every == 0 and \
                pace.t_attack <= settings.attack_share * (time.monotonic() - pace.t_start):
            # PGD within its share of the search time (every bound-minimising input is tried as a
            # counterexample anyway)
            t_a = time.monotonic()
            cex = _search_attack(s, cur.Ax, pace.it)
            pace.t_attack += time.monotonic() - t_a
            stats["search_attacks"] = stats.get("search_attacks", 0) + 1
            if cex is not None:
                return RegionOutcome(Outcome.FALSIFIED, cex)
        if time.monotonic() - pace.last_log > settings.log_every:
            pace.last_log = time.monotonic()
            log.info("relu split: %d domains, %d bounded, worst bound %.4g, %.1fs left",
                     len(queue), stats["domains"], queue.worst() if len(queue) else float("nan"), deadline.left())
    if unresolved:
        return RegionOutcome(Outcome.OPEN, stopped=Stop.UNRESOLVED)
    return RegionOutcome(Outcome.PROVEN, refined=s.refined)


def _bound_batch(s: ReluSearch, take: int, first: bool, pace: _Pace) -> Domains:
    """Take the ``take`` worst domains and bound them (the root, ``first``, with its own bounds as they are)."""
    taken = s.queue.take(take)
    steps = replace(s.steps, recompute=False) if first else s.steps
    with torch.no_grad():
        cur, pace.alpha_s = bound_domains(s.region, taken, steps, s.queue.crown_only(taken))
    s.stats["bound_calls"] = s.stats.get("bound_calls", 0) + 1
    s.stats["domains"] = s.stats.get("domains", 0) + take
    return cur


def _branch(s: ReluSearch, cur: Domains, score_kind: str, fsb: int, pace: _Pace) -> _Branched:
    """Score the open domains ``cur``, decide those with no (or, with ``relu_milp_max_unstable``, few) unstable
    neurons exactly, and store both children of the others, split on the top score or by filtered smart
    branching (``fsb`` > 1 candidates, skipped when its last run would not finish in the time left)."""
    with torch.no_grad():
        scores, layout = babsr_scores(s.region, cur) if score_kind == "babsr" else gradient_scores(s.region, cur)
    best = scores.max(1)
    keep = best.values >= 0
    unresolved = False
    if s.task.settings.relu_milp_max_unstable > 0 or not bool(keep.all()):
        cex, unresolved = _decide_exactly(s, scores, keep, cur)
        if cex is not None or not bool(keep.any()):
            return _Branched(cex, unresolved)
        if not bool(keep.all()):
            cur = cur.select(keep)
    best_idx = best.indices[keep]
    if fsb > 1 and s.deadline.left() > 1.5 * pace.last_fsb:  # else the top score alone
        t_fsb = time.monotonic()
        with torch.no_grad():
            best_idx = fsb_choose(s.region, cur, scores[keep], layout, fsb)
        s.stats["fsb_calls"] = s.stats.get("fsb_calls", 0) + 1
        pace.last_fsb = time.monotonic() - t_fsb
    dropped = s.queue.add_children(cur, best_idx, layout)
    s.stats["max_domains"] = max(s.stats.get("max_domains", 0), len(s.queue))
    if dropped:
        s.stats["warm_start_dropped_at"] = len(s.queue)
        log.info("relu split: %d domains; no longer storing each domain's slopes (memory)", len(s.queue))
    return _Branched(None, unresolved, True)


def _decide_exactly(s: ReluSearch, scores, keep, cur: Domains):
    """Domains decided without splitting: with ``relu_milp_max_unstable``, those with few unstable ReLUs by a
    small MILP; those with none by an exact LP. Updates ``keep`` (still to split) and ``cur.ok`` in place.
    Returns (a counterexample or None, unresolved: some LP could not decide its domain)."""
    problem, region, stats, settings = s.task.problem, s.region, s.stats, s.task.settings
    pnodes, ok = s.queue.pnodes, cur.ok
    one = lambda b: {p: (cur.pre[p][0][b:b + 1], cur.pre[p][1][b:b + 1]) for p in pnodes}  # noqa: E731
    if settings.relu_milp_max_unstable > 0:
        n_unst = (scores >= 0).sum(1)
        for b in torch.nonzero(keep & (n_unst <= settings.relu_milp_max_unstable)).flatten().tolist():
            stats["milp_domains"] = stats.get("milp_domains", 0) + 1
            verdict, cex = solve_domain_milp(problem, region, one(b), ok[b], s.deadline)
            if verdict == Outcome.FALSIFIED:
                return cex, False
            if verdict == Outcome.PROVEN:
                keep[b] = False  # closed; not split, not sent to the LP
                ok[b] = True
    unresolved = False
    # no unstable neuron left: the network is linear on the domain, so one LP over the box and the split
    # constraints decides it exactly (proven, or a counterexample); domains the MILP closed are skipped
    for b in torch.nonzero(~keep & ~ok.all(1)).flatten().tolist():
        stats["lp_domains"] = stats.get("lp_domains", 0) + 1
        verdict, cex = solve_linear_domain(problem, region, one(b), {p: cur.sgn[p][b:b + 1] for p in pnodes}, ok[b])
        if verdict == Outcome.FALSIFIED:
            return cex, unresolved
        if verdict == Outcome.OPEN:
            unresolved = True
            stats["unresolved_domains"] = stats.get("unresolved_domains", 0) + 1
    return None, unresolved


def _search_attack(s: ReluSearch, Ax, it: int):
    """PGD started from the worst domains' bound-minimising vertices (and random points)."""
    x_lo, x_hi = s.region.x_lo, s.region.x_hi
    starts = torch.where(Ax[:8] > 0, x_lo.unsqueeze(1), x_hi.unsqueeze(1)).reshape(-1, x_lo.shape[1])
    return pgd_attack(s.task.problem.graph, s.task.problem.spec, AttackSettings(restarts=32, steps=50, seed=it),
                      s.deadline.sub(2.0), s.task.problem.reference, rounds=3, starts=starts.double().cpu().numpy())
