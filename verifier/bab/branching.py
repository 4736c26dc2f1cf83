"""Branching scores of ReLU splitting: which unstable neuron a domain is split on.

Both scores are (B, total neurons) over the concatenated pre-activation nodes of ``layout``, >= 0 on
unstable neurons and -1 on stable ones (which cannot be split):

* ``gradient_scores`` (``BaBSettings.relu_branching = "gradient"``, the default where intermediate
  bounds are not re-derived per domain): a first-order estimate of the worse child's gain. A split
  changes only its neuron's relaxation (the optimised lower slope or the upper chord becomes slope 1
  for ``z >= 0``, slope 0 for ``z <= 0``, with no constant), i.e. the coefficient ``A_j`` that the
  domain's bound pass (its optimised slopes and split multipliers) puts on the pre-activation neuron,
  and a constant. The bound is piecewise linear in ``A_j``, so ``d lb / d A_j`` (one extra pass with
  autograd, for every neuron at once) times the change of ``A_j``, plus the change of the constant,
  estimates each child's bound. Unlike the BaBSR score it sees the slopes and multipliers actually
  used and how a coefficient travels down to the input.
* ``babsr_scores`` (the default where intermediate bounds are re-derived per domain: a split there also
  tightens the later layers' bounds, which the estimate above does not see): the BaBSR-like
  ``|A_j| * (-l_j u_j / (u_j - l_j))`` (the objective's coefficient on the neuron times the area of its
  relaxation), from a plain CROWN pass.

Either only picks the neuron (or the candidates of filtered smart branching); every child is bounded
afterwards as usual, so the choice never affects soundness.
"""
from __future__ import annotations

import torch

from verifier.bab.domains import Domains, Region
from verifier.bounds.crown import backward_lower


def row_weights(lb, rows, grp_ok):
    """(B, K): 1 on the best row (highest bound) of each open group of each domain, 0 elsewhere."""
    gbest = torch.stack([torch.tensor(r, device=lb.device)[lb[:, r].argmax(1)] for r in rows.groups], 1)  # (B, G)
    w = torch.zeros_like(lb)
    w.scatter_add_(1, gbest, (~grp_ok).to(lb.dtype))
    return w


def _area(l, u):
    """The area term ``-l u / (u - l)`` of unstable neurons (0 elsewhere), and the unstable mask."""
    unstable = (l < 0) & (u > 0)
    return torch.where(unstable, -l * u / (u - l).clamp(min=1e-12), torch.zeros_like(l)), unstable


def babsr_scores(region: Region, domains: Domains):
    """(B, total neurons) BaBSR-like scores from the CROWN pass's coefficients ``domains.record`` on the rows of
    the open groups (``domains.ok``), with the (node, flat size) layout."""
    graph, pre, record, lb = region.graph, domains.pre, domains.record, domains.lb
    B = lb.shape[0]
    w = row_weights(lb, region.rows, domains.ok)
    parts, layout = [], []
    for node in graph.nonlinear_nodes():
        p = node.inputs[0]
        l, u = (t.reshape(B, -1) for t in pre[p])
        A = record[node.name].reshape(B, lb.shape[1], -1)  # (B, K, n)
        coef = (A.abs() * w.unsqueeze(-1)).sum(1)  # (B, n)
        area, unstable = _area(l, u)
        parts.append(torch.where(unstable, coef * area + 1e-9 * area, torch.full_like(l, -1.0)))
        layout.append((p, parts[-1].shape[1]))
    return torch.cat(parts, 1), layout


def child_gains(region: Region, domains: Domains, bi, ki):
    """First-order estimates of both children's bound gains for items (domain ``bi``, row ``ki``): node ->
    (gain of the ``z >= 0`` child, gain of the ``z <= 0`` child), each (N, neurons of the node), 0 on stable
    neurons, with the domains' slopes and split multipliers (``domains.alphas``, ``domains.betas`` with the
    split signs ``domains.sgn``; empty: CROWN's slopes, none)."""
    graph, rows, x_lo, x_hi = region.graph, region.rows, region.x_lo, region.x_hi
    pre, alphas, betas, sgn = domains.pre, domains.alphas, domains.betas, domains.sgn
    dev, dt = x_lo.device, x_lo.dtype
    N = bi.numel()
    nodes = list(graph.nonlinear_nodes())
    pre_i = {p: (v[0][bi], v[1][bi]) for p, v in pre.items()}
    al = {n: a[bi, ki].unsqueeze(1) for n, a in alphas.items()} if alphas else None
    A0 = rows.C[ki].reshape(N, 1, *graph.output_shape).to(dt)
    record: dict = {}
    with torch.enable_grad():
        E = {n.inputs[0]: torch.zeros(N, 1, *graph.shape_of(n.inputs[0]), dtype=dt, device=dev, requires_grad=True)
             for n in nodes}
        extra = dict(E)
        for p, b in (betas or {}).items():  # the split constraints' terms, as in the domain's bound
            extra[p] = extra[p] - (b[bi, ki] * sgn[p][bi].to(b.dtype)).unsqueeze(1).to(dt)
        if N:
            cur = backward_lower(graph, graph.output_name, A0, x_lo.expand(N, -1), x_hi.expand(N, -1), pre_i, al,
                                 record=record, extra=extra)
            cur.sum().backward()
    out = {}
    for node in nodes:
        p = node.inputs[0]
        li, ui = (t.reshape(N, -1) for t in pre_i[p])
        zero = torch.zeros_like(li)
        if not N or node.name not in record or E[p].grad is None:
            out[p] = (zero, zero)
            continue
        g = E[p].grad.reshape(N, -1)  # d bound / d (coefficient on the pre-activation neuron)
        a = record[node.name].detach().reshape(N, -1)  # coefficient on the ReLU's output
        unst = (li < 0) & (ui > 0)
        den = torch.where(unst, ui - li, torch.ones_like(li))
        chord = torch.where(unst, ui / den, zero)
        const = torch.where(unst, -li * ui / den, zero)
        low = al[node.name].reshape(N, -1) if al else node.op.default_alpha(li, ui)
        slope = torch.where(a >= 0, low, chord)  # the relaxation line the pass used
        c = torch.where(a >= 0, zero, const)
        gain_active = torch.where(unst, g * a * (1 - slope) - a * c, zero)  # slope 1, no constant
        gain_inactive = torch.where(unst, -g * a * slope - a * c, zero)  # slope 0, no constant
        out[p] = (gain_active, gain_inactive)
    return out


def gradient_scores(region: Region, domains: Domains):
    """(B, total neurons) first-order estimates of the worse child's bound gain (see the module and
    ``child_gains``), summed over the best row (by ``domains.lb``) of each open group (``domains.ok``), with the
    (node, flat size) layout."""
    lb, pre = domains.lb, domains.pre
    B = lb.shape[0]
    w = row_weights(lb, region.rows, domains.ok)
    bi, ki = torch.nonzero(w > 0, as_tuple=True)
    gains = child_gains(region, domains, bi, ki)
    parts, layout = [], []
    for node in region.graph.nonlinear_nodes():
        p = node.inputs[0]
        l, u = (t.reshape(B, -1) for t in pre[p])
        area, unstable = _area(l, u)
        worse = torch.minimum(*gains[p])
        worse = torch.nan_to_num(worse, nan=0.0, posinf=0.0, neginf=0.0)
        est = torch.zeros_like(l).index_add_(0, bi, worse.to(l.dtype))
        parts.append(torch.where(unstable, est.clamp(min=0) + 1e-9 * area, torch.full_like(l, -1.0)))
        layout.append((p, parts[-1].shape[1]))
    return torch.cat(parts, 1), layout
