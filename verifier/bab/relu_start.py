"""The start of a ReLU-splitting search: the root bound (CROWN, then alpha-CROWN with the run's bound settings),
the choices made once per search (whether intermediate bounds are re-derived, the alpha/beta steps, the branching
score), the domain caps, and the search state (``ReluSearch``) with the root as its one open domain."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from verifier.bab.common import Outcome, RegionOutcome, RegionTask, Rows
from verifier.bab.domains import Region
from verifier.bab.relu_bounding import BoundSteps
from verifier.bab.relu_queue import WARM_DTYPE, DomainQueue, RootBounds
from verifier.bounds.crown import pre_activation_nodes
from verifier.bounds.objective import objective_bounds
from verifier.ir.deadline import Deadline
from verifier.settings import BaBSettings

MEMORY_BUDGET_BYTES = 4 * 2**30


def relu_neurons(graph) -> int:
    """How many neurons feed a ReLU (the size of a domain's bounds)."""
    return sum(torch.Size(graph.shape_of(p)).numel() for p in pre_activation_nodes(graph))


def recomputes(graph, settings: BaBSettings) -> bool:
    """Whether each domain's intermediate bounds are re-derived by CROWN (by default: nets of at most 2048 ReLUs)."""
    if settings.relu_recompute is not None:
        return settings.relu_recompute
    return relu_neurons(graph) <= 2048


def alpha_iters(graph, settings: BaBSettings) -> int:
    """alpha/beta steps per domain (``BaBSettings.relu_alpha_iters``; by default 64 where intermediate bounds
    are re-derived, 8 elsewhere)."""
    if settings.relu_alpha_iters is not None:
        return settings.relu_alpha_iters
    return 64 if recomputes(graph, settings) else 8


def branching(graph, settings: BaBSettings) -> str:
    """The branching score (``BaBSettings.relu_branching``; by default "babsr" where intermediate bounds are
    re-derived per domain, "gradient" elsewhere)."""
    if settings.relu_branching is not None:
        return settings.relu_branching
    return "babsr" if recomputes(graph, settings) else "gradient"


@dataclass
class ReluSearch:
    """One ReLU-splitting search: its region (the rows of the disjuncts still open at the root), how it bounds
    its domains, and its queue of open domains."""

    task: RegionTask
    deadline: Deadline
    stats: dict
    region: Region
    steps: BoundSteps
    queue: DomainQueue
    refined: bool  # it started from MILP-refined root bounds

    def give_up(self, stopped: str, extra_open: int = 0, here: float | None = None) -> RegionOutcome:
        """OPEN (``Stop`` ``stopped``), with the open domains (stored, and ``extra_open`` taken ones whose worst
        bound is ``here``), which also go into the statistics."""
        n_open = len(self.queue) + extra_open
        self.stats["open_domains"] = self.stats.get("open_domains", 0) + n_open
        worst = self.queue.worst() if len(self.queue) else float("inf")
        worst = worst if here is None else min(here, worst)
        self.stats["worst_open_bound"] = worst
        return RegionOutcome(Outcome.OPEN, stopped=stopped, open_domains=n_open, worst_bound=worst)


def start_search(task: RegionTask, deadline: Deadline, stats: dict, root_pre: dict | None = None):
    """Bound the root (CROWN, then alpha-CROWN; from ``root_pre``, sound bounds of every node, when given);
    a PROVEN ``RegionOutcome`` there, else the search with the root as its one domain."""
    problem, settings = task.problem, task.settings
    graph, spec = problem.graph, problem.spec
    dev, dt = graph.device, graph.dtype
    rows = Rows(spec, task.idx, dev, dt)
    x_lo = torch.tensor(task.lo, dtype=dt, device=dev).reshape(1, -1)
    x_hi = torch.tensor(task.hi, dtype=dt, device=dev).reshape(1, -1)
    t = time.monotonic()
    method = "alpha-crown" if settings.root_alpha else "crown"
    ob = objective_bounds(graph, rows.C, rows.d, x_lo, x_hi, replace(task.bounds, method=method), groups=rows.groups,
                          deadline=deadline, pre=root_pre)
    stats["root_bound"] = float(rows.group_best(ob.lower).min())
    stats["root_time"] = time.monotonic() - t
    grp_ok = rows.group_ok(ob.lower, ob.tol, torch.zeros(1, len(rows.groups), dtype=torch.bool, device=dev))
    refined = root_pre is not None
    if bool(grp_ok.all()):
        return RegionOutcome(Outcome.PROVEN, refined=refined)
    recompute = recomputes(graph, settings)
    stats["recompute_intermediate"] = recompute
    # disjuncts proven at the root stay proven on every domain: the search bounds the others' rows only
    open_g = [g for g in range(len(rows.groups)) if not bool(grp_ok[0, g])]
    keep_rows = [r for g in open_g for r in rows.groups[g]]
    rows = Rows(spec, [rows.idx[g] for g in open_g], dev, dt)
    kr = torch.tensor(keep_rows, device=dev)
    root = RootBounds(ob.pre, {k: v[:, kr] for k, v in ob.alphas.items()} if ob.alphas else None,
                      ob.lower[:, kr], ob.tol[:, kr])
    cap, warm_cap = _caps(graph, settings, recompute, len(keep_rows), stats)
    stats["search_rows"] = len(keep_rows)
    n_alpha = alpha_iters(graph, settings)
    warm = n_alpha > 0 and warm_cap > 0
    queue = DomainQueue(graph, rows, root, recompute, warm, warm_cap, cap)
    # the root's optimised intermediate slopes: the CROWN re-derivation of a domain's bounds starts from them
    steps = BoundSteps(n_alpha, recompute, deadline, ob.inter_slopes if settings.relu_root_slopes else None,
                       coefficients=branching(graph, settings) == "babsr")
    return ReluSearch(task, deadline, stats, Region(graph, rows, x_lo, x_hi), steps, queue, refined)


def _caps(graph, settings: BaBSettings, recompute: bool, n_rows: int, stats: dict) -> tuple[int, int]:
    """(the most domains stored, the most stored with their warm starts) within ``MEMORY_BUDGET_BYTES``."""
    neurons = relu_neurons(graph)
    # stored per domain: the split signs, and where bounds are re-derived the bounds (elsewhere a domain's bounds
    # are the root's with its splits clamped in, rebuilt from the signs when it is taken)
    per_domain = neurons * ((2 * (8 if graph.dtype == torch.float64 else 4) if recompute else 0) + 1) + 64
    cap = int(min(settings.max_domains, MEMORY_BUDGET_BYTES // per_domain))
    stats["domain_cap"] = cap
    # warm starts (a slope and a multiplier per open row and neuron) are stored while they fit
    # beside the bounds; past that many domains the children restart from the root's slopes
    warm_bytes = 2 * neurons * n_rows * WARM_DTYPE.itemsize
    warm_cap = int(min(cap, MEMORY_BUDGET_BYTES // (per_domain + warm_bytes)))
    if settings.relu_warm_domains is not None:
        warm_cap = min(warm_cap, settings.relu_warm_domains)
    return cap, warm_cap
