"""What the searches share: one region to search (``RegionTask``), how a region search ended (``Outcome``,
``Stop``, ``RegionOutcome``), the spec's rows of one region grouped by disjunct (``Rows``), and the cheap
falsification of open domains (``falsify``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from verifier.attack.validate import validate_candidate
from verifier.bounds.proof import refutes
from verifier.bounds.spec_bounds import stacked_rows, stacked_strict
from verifier.ir.problem import Problem
from verifier.ir.result import Counterexample
from verifier.settings import BaBSettings, BoundSettings


class Outcome:
    PROVEN, FALSIFIED, OPEN = "proven", "falsified", "open"


class Stop:
    """Why a search stopped with its region open."""

    DEADLINE = "deadline"  # its time ran out
    MEMORY = "memory"  # the stored domains passed their cap
    UNSPLITTABLE = "unsplittable"  # a box too thin to halve (input splitting)
    UNRESOLVED = "unresolved"  # an exact LP could not decide some domain (ReLU splitting)


@dataclass(frozen=True)
class RegionTask:
    """One input region of the spec to search: the box ``lo``..``hi``, the disjuncts ``idx`` still open there,
    and the run's branch-and-bound and bound settings."""

    problem: Problem
    lo: np.ndarray
    hi: np.ndarray
    idx: list
    settings: BaBSettings
    bounds: BoundSettings


@dataclass(frozen=True)
class RegionOutcome:
    """How the search of one region ended: ``status`` (``Outcome``), the validated counterexample of a falsified
    region, and for an open one why it stopped (``Stop``), the domains it left open and the worst bound among
    them (where the search knows it). ``refined``: a proof on MILP-refined intermediate bounds (Gurobi's
    tolerances). ``open_boxes``: input splitting's open boxes when its time ran out (a later search resumes
    from them)."""

    status: str
    counterexample: Counterexample | None = None
    stopped: str | None = None
    open_domains: int = 0
    worst_bound: float | None = None
    refined: bool = False
    open_boxes: Any = None

    @property
    def out_of_time(self) -> bool:
        return self.stopped == Stop.DEADLINE


class Rows:
    """Row/disjunct bookkeeping of one region: the stacked rows ``C``, ``d`` of the disjuncts ``idx``, the rows of
    each (``groups``), which rows are strict (``strict``, (K,) bool, or None) and the disjuncts themselves."""

    def __init__(self, spec, idx, dev, dt):
        C, d, groups = stacked_rows(spec, idx)
        self.C, self.d, self.groups = C.to(dev, dt), d.to(dev, dt), groups
        strict = stacked_strict(spec, idx)
        self.strict = None if strict is None else torch.as_tensor(strict, dtype=torch.bool, device=dev)
        self.disjuncts = [spec.disjuncts[j] for j in idx]
        # (G,): the disjuncts with a strict row or an open input side (the exact check may decide them)
        self.has_strict = torch.tensor([dj.has_strict for dj in self.disjuncts], dtype=torch.bool, device=dev)
        sizes = torch.tensor([len(r) for r in groups], device=dev)
        # (K,): the group of each row (the groups are consecutive runs of rows). A dense (K, G) membership matrix
        # would take K * G bytes: 8 GB for 90,000 one-row disjuncts
        self.row_group = torch.repeat_interleave(torch.arange(len(groups), device=dev), sizes)
        m = max(len(r) for r in groups)
        self.gidx = torch.tensor([r + [r[0]] * (m - len(r)) for r in groups], device=dev)  # (G, m)
        self.idx = idx

    def group_any(self, flags):
        """(B, G): whether any row of each group is flagged (``flags`` (B, K) bool)."""
        B, G = flags.shape[0], len(self.groups)
        hits = torch.zeros(B, G, dtype=torch.int32, device=flags.device)
        return hits.index_add_(1, self.row_group, flags.to(torch.int32)) > 0

    def group_ok(self, lb, tol, done):
        """(B, G): the groups done, or with a row that its bound refutes (strict rows by ``lb >= tol``)."""
        return done | self.group_any(refutes(lb, tol, self.strict))

    def rows_open(self, grp_done):
        """(B, K): the rows whose group is not done (``grp_done`` (B, G))."""
        return ~grp_done[:, self.row_group]

    def group_best(self, lb):
        """(B, G): the best (highest) row lower bound of each group (-inf for a group without rows)."""
        best = torch.full((lb.shape[0], len(self.groups)), -float("inf"), dtype=lb.dtype, device=lb.device)
        return best.scatter_reduce_(1, self.row_group.expand(lb.shape[0], -1), lb, "amax")


def falsify(problem, rows: Rows, lo, hi, Ax, grp_ok):
    """Evaluate the centre and the bound-minimising vertices; return a validated counterexample or None."""

    graph = problem.graph
    B, n = lo.shape
    K = rows.C.shape[0]
    vert = torch.where(Ax > 0, lo.unsqueeze(1), hi.unsqueeze(1))  # (B, K, n)
    pts = torch.cat([((lo + hi) / 2).unsqueeze(1), vert], 1).reshape(-1, n)
    y = graph.forward(pts).reshape(B, K + 1, -1)
    vals = torch.einsum("ko,bpo->bpk", rows.C, y) - rows.d  # (B, P, K)
    gl = vals[:, :, rows.gidx].max(-1).values  # (B, P, G)
    gl = gl.masked_fill(grp_ok.unsqueeze(1), float("inf"))
    hit = gl <= 0
    if not bool(hit.any()):
        return None
    for b, p, g in torch.nonzero(hit)[:16].tolist():
        x = pts.reshape(B, K + 1, n)[b, p].double().cpu().numpy()
        cex = validate_candidate(problem.reference, problem.spec, x, disjuncts=[rows.idx[g]])
        if cex is not None:
            return cex
    return None
