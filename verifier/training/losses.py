"""Training losses: natural cross-entropy, and the certified (IBP, CROWN-IBP) losses built on this project's
bound code: the model's bound graph (``verifier.training.plan.bound_graph``, the graph the verifier loads from
the exported ONNX) bounded by ``Graph.ibp`` and ``verifier.bounds.crown.backward_lower``, differentiably.

A certified loss is the cross-entropy of the negated lower bounds of the margins ``y_label - y_j`` over the input
box: the logits of the worst case the bound allows (Wong & Kolter, Gowal et al.)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from verifier.bounds.crown import backward_lower
from verifier.ir.graph import Graph


def margin_rows(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """C (B, K, K): row j of example b is ``e_{y_b} - e_j`` (row ``y_b`` is zero), so ``C y`` are the margins."""
    eye = torch.eye(n_classes)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def input_box(x: torch.Tensor, eps: float, domain: tuple[float, float]):
    """The l_inf box of radius ``eps`` around each example, clipped to the domain, flat (B, n)."""
    flat = x.reshape(x.shape[0], -1)
    return (flat - eps).clamp(*domain), (flat + eps).clamp(*domain)


def ibp_margin_bounds(graph: Graph, x_lo: torch.Tensor, x_hi: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Lower bounds (B, K) of ``C y`` from the interval bounds of the output (``Graph.ibp``)."""
    b = graph.ibp(x_lo, x_hi)
    lo, hi = (t.reshape(t.shape[0], -1) for t in b[graph.output_name])
    return (C.clamp(min=0) * lo.unsqueeze(1) + C.clamp(max=0) * hi.unsqueeze(1)).sum(-1)


def crown_ibp_margin_bounds(graph: Graph, x_lo, x_hi, C: torch.Tensor, pre=None) -> torch.Tensor:
    """Lower bounds (B, K) of ``C y``: CROWN's backward pass from the output with interval bounds of the
    intermediate layers (CROWN-IBP, Zhang et al.)."""
    pre = graph.ibp(x_lo, x_hi) if pre is None else pre
    B, K = C.shape[:2]
    A0 = C.reshape(B, K, *graph.output_shape)
    return backward_lower(graph, graph.output_name, A0, x_lo, x_hi, pre)


def worst_case_loss(lower_margins: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the logits ``-lower_margins`` (the label's own entry is 0)."""
    return F.cross_entropy(-lower_margins, y)


def certified_loss(graph: Graph, x, y, eps: float, domain, n_classes: int, mode: str, beta: float = 0.0):
    """The IBP (``mode='ibp'``) or CROWN-IBP (``beta * crown_ibp + (1 - beta) * ibp`` of the margin bounds)
    loss on the l_inf boxes of radius ``eps``."""
    x_lo, x_hi = input_box(x, eps, domain)
    C = margin_rows(y, n_classes).to(x_lo.dtype)
    pre = graph.ibp(x_lo, x_hi)
    lo, hi = (t.reshape(t.shape[0], -1) for t in pre[graph.output_name])
    ibp = (C.clamp(min=0) * lo.unsqueeze(1) + C.clamp(max=0) * hi.unsqueeze(1)).sum(-1)
    if mode == "ibp" or beta <= 0:
        return worst_case_loss(ibp, y)
    crown = crown_ibp_margin_bounds(graph, x_lo, x_hi, C, pre)
    return worst_case_loss(beta * crown + (1 - beta) * ibp, y)
