"""The state of ReLU-splitting domains as the bound passes see it.

``Region``: what every domain of one search shares (the network, the rows of the disjuncts still open, the
input box). ``Domains``: a batch of domains (their bounds, split signs, slopes and split multipliers, and once
bounded their row bounds), with ``select`` for a sub-batch. ``Splits``: copies of domains, each with one more
neuron split (the children of a branching, or filtered smart branching's candidates).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from verifier.bab.common import Rows
from verifier.ir.graph import Graph


@dataclass(frozen=True)
class Region:
    """The constants of one ReLU-split search: the network, the rows still to prove, the input box (1, n)."""

    graph: Graph
    rows: Rows
    x_lo: torch.Tensor
    x_hi: torch.Tensor


def _pick(d: dict | None, idx) -> dict | None:
    return None if d is None else {k: v[idx] for k, v in d.items()}


@dataclass
class Domains:
    """B domains. ``pre``: the bounds of every pre-activation node (node -> (lo, hi), each (B, *shape)); ``sgn``:
    the split signs (node -> (B, *shape): 1 for ``z >= 0``, -1 for ``z <= 0``, 0 unsplit); ``alphas`` (ReLU
    node -> (B, K, *shape)) and ``betas`` (pre-activation node -> (B, K, *shape)): each row's slopes and split
    multipliers ({} or None: CROWN's slopes, no multipliers; taken from the store they are the warm starts,
    possibly the root's broadcast from batch 1). ``lb``, ``tol`` (B, K): each row's lower bound and its
    rounding allowance; ``ok`` (B, G): the groups proven; taken from the store, the parent's. Once bounded:
    ``Ax`` (B, K, n) the input coefficients of each row's best linear bound, ``record`` the CROWN pass's
    per-ReLU objective coefficients (BaBSR score only). ``split_layer`` (B,): where the store keeps it, the
    position among the pre-activation nodes of the split that made each domain."""

    pre: dict
    sgn: dict
    alphas: dict | None = None
    betas: dict | None = None
    lb: torch.Tensor | None = None
    tol: torch.Tensor | None = None
    ok: torch.Tensor | None = None
    Ax: torch.Tensor | None = None
    record: dict = field(default_factory=dict)
    split_layer: torch.Tensor | None = None

    def __len__(self) -> int:
        return next(iter(self.pre.values()))[0].shape[0]

    def select(self, idx) -> Domains:
        """The sub-batch ``idx`` (a (B,) mask or indices); every per-domain field must hold B domains."""
        opt = lambda t: None if t is None else t[idx]  # noqa: E731
        return Domains({p: (lo[idx], hi[idx]) for p, (lo, hi) in self.pre.items()}, _pick(self.sgn, idx),
                       _pick(self.alphas, idx), _pick(self.betas, idx), opt(self.lb), opt(self.tol), opt(self.ok),
                       opt(self.Ax), _pick(self.record, idx), opt(self.split_layer))


@dataclass(frozen=True)
class Splits:
    """M copies of domains, each with one more split: copy ``m`` of domain ``parent[m]`` has neuron ``flat[m]``
    (an index into the concatenated pre-activation nodes of a (node, flat size) layout) clamped to ``z >= 0``
    where ``active[m]``, else ``z <= 0``."""

    parent: torch.Tensor
    flat: torch.Tensor
    active: torch.Tensor

    @classmethod
    def children(cls, best_idx: torch.Tensor) -> Splits:
        """Both children of each of n domains split on ``best_idx`` (n,): the n active copies, then the n
        inactive ones."""
        dev, n = best_idx.device, best_idx.numel()
        return cls(torch.arange(n, device=dev).repeat(2), best_idx.repeat(2), torch.arange(2 * n, device=dev) < n)

    @classmethod
    def candidates(cls, top: torch.Tensor) -> Splits:
        """Both children of each of B domains' k candidate neurons ``top`` (B, k): domain by domain, candidate by
        candidate, the active copy first."""
        B, k = top.shape
        dev = top.device
        return cls(torch.arange(B, device=dev).repeat_interleave(2 * k), top.repeat_interleave(2, dim=1).reshape(-1),
                   torch.tensor([True, False], device=dev).repeat(B * k))


def priority(rows: Rows, lb, ok):
    """(B,) a domain's place in the queue: its worst open group's best row bound (smaller: bounded sooner)."""
    return rows.group_best(lb).masked_fill(ok, float("inf")).min(1).values
