"""Small pieces shared by the bound passes: concretising a linear bound on a box, and the ReLU slopes
(alphas) that alpha-CROWN optimises (their start and the best kept per row)."""
from __future__ import annotations

import torch

from verifier.bounds.crown import rel_tol
from verifier.ir.ops import ReLU


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
