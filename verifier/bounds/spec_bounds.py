"""Bounds of a whole spec: every disjunct's rows bounded on its own input box.

Strict rows are decided by ``verifier.bounds.proof.refutes``; a disjunct with a strict row (or an open input
side) whose float bound is within rounding of zero gets the exact check (``verifier.bounds.exact``). A disjunct
without rows is never proven here (every input of its box is unsafe; the methods answer it before bounding,
``verifier.methods.trivial``)."""
from __future__ import annotations

import numpy as np
import torch

from verifier.bounds.exact import settle_near_zero
from verifier.bounds.objective import objective_bounds
from verifier.ir.deadline import Deadline
from verifier.ir.problem import Problem
from verifier.settings import BoundSettings


def stacked_rows(spec, idx: list[int]):
    """Stack the rows of the disjuncts ``idx``: C (K, n_out), d (K,), and each disjunct's row indices."""
    Cs, ds, groups, k = [], [], [], 0
    for j in idx:
        C, d = spec.disjuncts[j].C, spec.disjuncts[j].d
        Cs.append(C)
        ds.append(d)
        groups.append(list(range(k, k + C.shape[0])))
        k += C.shape[0]
    return torch.tensor(np.concatenate(Cs)), torch.tensor(np.concatenate(ds)), groups


def stacked_strict(spec, idx: list[int]) -> np.ndarray | None:
    """(K,) bool: which of the stacked rows of the disjuncts ``idx`` (``stacked_rows``) are strict; None: none."""
    if not any(spec.disjuncts[j].strict is not None for j in idx):
        return None
    return np.concatenate([spec.disjuncts[j].strict_rows() for j in idx])


def bound_spec(problem: Problem, settings: BoundSettings, deadline: Deadline | None = None,
               stats: dict | None = None):
    """Bound every disjunct of the spec on its own box (the exact check where strict rows need it).

    Returns (proven: list[bool] per disjunct, best: list[float] per disjunct = max over its rows
    of the row's lower bound of C y - d; -inf for a disjunct without rows). ``stats``, when given, counts the
    disjuncts the exact check proved (``exact_proved``).
    """
    graph, spec = problem.graph, problem.spec
    proven = [False] * len(spec.disjuncts)
    best = [-np.inf] * len(spec.disjuncts)
    for lo, hi, idx in spec.regions():
        if deadline is not None and deadline.expired():
            break
        idx = [j for j in idx if spec.disjuncts[j].C.shape[0] > 0]
        if not idx:
            continue
        C, d, groups = stacked_rows(spec, idx)
        x_lo = torch.tensor(lo).reshape(1, -1)
        x_hi = torch.tensor(hi).reshape(1, -1)
        ob = objective_bounds(graph, C, d, x_lo, x_hi, settings, groups=groups, deadline=deadline,
                              strict=stacked_strict(spec, idx))
        row_group = torch.repeat_interleave(torch.arange(len(groups)), torch.tensor([len(g) for g in groups]))
        pr = torch.zeros(len(groups), dtype=torch.int32).index_add_(0, row_group, ob.proven()[0].to(torch.int32))
        top = torch.full((len(groups),), -np.inf, dtype=ob.lower.dtype)
        top = top.scatter_reduce_(0, row_group, ob.lower[0].detach(), "amax").tolist()
        # one tensor op per region, not one per disjunct (a spec may hold 90,000 disjuncts on one box)
        for j, g, ok, b in zip(idx, groups, (pr > 0).tolist(), top):
            proven[j], best[j] = ok, float(b)
            if not proven[j] and spec.disjuncts[j].has_strict and not (deadline is not None and deadline.expired()) \
                    and settle_near_zero(graph, spec.disjuncts[j], ob.lower[0, g], ob.tol[0, g]):
                proven[j], best[j] = True, max(best[j], 0.0)  # the refuted row's exact bound is at least 0
                if stats is not None:
                    stats["exact_proved"] = stats.get("exact_proved", 0) + 1
    return proven, best
