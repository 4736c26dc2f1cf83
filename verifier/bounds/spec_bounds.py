"""Bounds of a whole spec: every disjunct's rows bounded on its own input box."""
from __future__ import annotations

import numpy as np
import torch

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


def bound_spec(problem: Problem, settings: BoundSettings, deadline: Deadline | None = None):
    """Bound every disjunct of the spec on its own box.

    Returns (proven: list[bool] per disjunct, best: list[float] per disjunct = max over its rows
    of the row's lower bound of C y - d).
    """
    graph, spec = problem.graph, problem.spec
    proven = [False] * len(spec.disjuncts)
    best = [-np.inf] * len(spec.disjuncts)
    for lo, hi, idx in spec.regions():
        if deadline is not None and deadline.expired():
            break
        C, d, groups = stacked_rows(spec, idx)
        x_lo = torch.tensor(lo).reshape(1, -1)
        x_hi = torch.tensor(hi).reshape(1, -1)
        ob = objective_bounds(graph, C, d, x_lo, x_hi, settings, groups=groups, deadline=deadline)
        pr = ob.proven()[0]
        for j, g in zip(idx, groups):
            proven[j] = bool(pr[g].any())
            best[j] = float(ob.lower[0, g].max())
    return proven, best
