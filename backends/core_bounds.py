"""The core bounds every backend starts from: per input region of the spec, the CROWN pre-activation bounds
and the CROWN lower bounds of each disjunct's rows (``compute_core_bounds``). A disjunct counts as proven by
them when a row's bound refutes it (``verifier.bounds.proof.refutes``: strict rows by ``lb >= tol``), or, for a
disjunct with a strict row whose bound is within rounding of zero, when the exact check refutes it
(``verifier.bounds.exact``)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from backends.box import box_tensors
from verifier.bounds import intermediate_bounds, objective_bounds
from verifier.bounds.exact import settle_near_zero
from verifier.bounds.proof import refutes
from verifier.ir.graph import Graph
from verifier.ir.spec import Spec
from verifier.settings import BoundSettings


@dataclass
class RegionBounds:
    """One input box of the spec with the disjuncts on it and the core's bounds there."""

    lo: np.ndarray  # (n_inputs,)
    hi: np.ndarray
    disjuncts: list[int]
    pre: dict  # node name -> (lo, hi) tensors (1, *shape), float64
    row_lower: dict[int, np.ndarray]  # disjunct -> CROWN lower bounds of its rows of C y - d
    row_tol: dict[int, np.ndarray]  # disjunct -> rounding allowance of those bounds
    row_strict: dict[int, np.ndarray | None] | None = None  # disjunct -> its strict rows (None: none)
    exact: frozenset = frozenset()  # the disjuncts the exact check refuted

    def crown_value(self, j: int) -> float:
        """CROWN lower bound of ``min_x max_i (C y - d)_i`` for disjunct ``j``."""
        r = self.row_lower[j]
        return float(np.max(r)) if r.size else -math.inf

    def crown_proven(self, j: int) -> bool:
        strict = None if self.row_strict is None else self.row_strict.get(j)
        return j in self.exact or bool(np.any(refutes(self.row_lower[j], self.row_tol[j], strict)))


@dataclass
class CoreBounds:
    regions: list[RegionBounds]
    method: str = "crown"
    time_s: float = 0.0

    def region_of(self, j: int) -> RegionBounds:
        for r in self.regions:
            if j in r.disjuncts:
                return r
        raise KeyError(j)


def compute_core_bounds(graph: Graph, spec: Spec, method: str = "crown") -> CoreBounds:
    """CROWN (or IBP) intermediate bounds and objective row bounds per input region, in the graph's dtype."""
    t0 = time.perf_counter()
    regions = []
    for lo, hi, idx in spec.regions():
        xl, xh = box_tensors(graph, lo, hi)
        with torch.no_grad():
            pre = intermediate_bounds(graph, xl, xh, method)
        rows = [spec.disjuncts[j] for j in idx]
        C = np.concatenate([dj.C for dj in rows], 0)
        d = np.concatenate([dj.d for dj in rows], 0)
        row_lower, row_tol = {}, {}
        if C.shape[0]:
            ob = objective_bounds(graph, torch.tensor(C), torch.tensor(d), xl, xh,
                                  BoundSettings(method if method in ("ibp", "crown") else "crown"), pre=pre)
            lower = ob.lower[0].detach().cpu().numpy()
            tol = ob.tol[0].detach().cpu().numpy()
        else:
            lower = tol = np.zeros(0)
        k = 0
        row_strict, exact = {}, set()
        for j, dj in zip(idx, rows):
            m = dj.C.shape[0]
            row_lower[j], row_tol[j], row_strict[j] = lower[k:k + m], tol[k:k + m], dj.strict
            k += m
            if m and not np.any(refutes(row_lower[j], row_tol[j], dj.strict)) and \
                    settle_near_zero(graph, dj, row_lower[j], row_tol[j]):
                exact.add(j)
        regions.append(RegionBounds(np.asarray(lo, np.float64), np.asarray(hi, np.float64), list(idx), pre,
                                    row_lower, row_tol, row_strict, frozenset(exact)))
    return CoreBounds(regions, method, time.perf_counter() - t0)
