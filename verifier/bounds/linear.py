"""Small pieces shared by the bound passes: the linear objective over a box (``LinearObjective``), an
optimisation schedule (``Steps``), warm starts and best-found slopes (``SlopeMemory``), concretising a linear
bound on a box, and the ReLU slopes (alphas) that alpha-CROWN optimises (their start, the best kept per row)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from verifier.bounds.crown import rel_tol
from verifier.ir.graph import Graph
from verifier.ir.ops import ReLU


@dataclass
class LinearObjective:
    """The rows ``A0 . y - d`` of ``graph``'s output ``y`` to bound from below over the boxes ``x_lo``..``x_hi``
    (``(B, n)``; ``A0`` ``(B, K, *output shape)``, ``d`` ``(K,)`` or ``(B, K)``), with ``pre`` the known bounds of
    every node's input (the nonlinear nodes' relaxations are built on them)."""

    graph: Graph
    A0: torch.Tensor
    d: torch.Tensor
    x_lo: torch.Tensor
    x_hi: torch.Tensor
    pre: dict


@dataclass(frozen=True)
class Steps:
    """An optimisation schedule: ``iters`` projected Adam steps with learning rate ``lr``, times ``decay`` a step."""

    iters: int
    lr: float
    decay: float = 1.0


@dataclass
class SlopeMemory:
    """Warm starts and results of a slope optimisation, node -> broadcastable to ``(B, K, *shape)``: ``init_alphas``
    / ``init_betas`` are the starting slopes and split multipliers (a parent's optimum) instead of CROWN's slopes
    and zeros; ``best_alphas`` / ``best_betas``, when given, receive those of each row's best bound."""

    init_alphas: dict | None = None
    init_betas: dict | None = None
    best_alphas: dict | None = None
    best_betas: dict | None = None


def concretize_lower(Ax, bias, x_lo, x_hi, d, dtype, bias_abs=None):
    """Lower bound of ``Ax x + bias - d`` on the box in float64, and its rounding allowance."""
    Ax, bias = Ax.double(), bias.double()
    lo, hi = x_lo.double().unsqueeze(1), x_hi.double().unsqueeze(1)
    lb = (Ax.clamp(min=0) * lo).sum(-1) + (Ax.clamp(max=0) * hi).sum(-1) + bias - d.double()
    mag = (Ax.abs() * torch.maximum(lo.abs(), hi.abs())).sum(-1) + bias.abs() + d.double().abs()
    if bias_abs is not None:
        mag = mag + bias_abs.double()
    return lb, rel_tol(dtype) * mag


def start_alphas(node, pre, B: int, K: int, init: dict | None = None) -> torch.Tensor:
    """The starting lower slopes (B, K, *shape) of ReLU ``node``: ``init``'s, else CROWN's adaptive ones."""
    lo, hi = pre[node.inputs[0]]
    if init is not None and node.name in init:
        a = init[node.name].to(lo.dtype)
        return a.expand(B, K, *lo.shape[1:]).clone()
    return ReLU.default_alpha(lo, hi).unsqueeze(1).expand(B, K, *lo.shape[1:]).clone()


def keep_best(best: dict | None, alphas: dict, better: torch.Tensor):
    """Copy into ``best`` the slopes of the rows whose bound just improved (``better``: (B, K))."""
    if best is None:
        return
    for k, a in alphas.items():
        m = better.reshape(*better.shape, *([1] * (a.dim() - 2)))
        best[k] = torch.where(m, a.detach(), best[k]) if k in best else a.detach().clone()
