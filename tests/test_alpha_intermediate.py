"""Slope optimisation: gradients through every operator, and alpha-CROWN with intermediate slopes.

- the gradient of a CROWN bound with respect to the ReLU slopes equals finite differences,
  for fully connected, convolutional and residual networks (a convolution once passed
  coefficients back without their gradient, so alpha-CROWN could not improve conv nets);
- the intermediate bounds that alpha-CROWN returns contain every sampled value of their node;
- optimising the intermediate slopes is never looser than optimising the objective's only,
  and tighter somewhere.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import ZOO

from frontends.onnx.loader import graph_from_onnx
from verifier.bounds import intermediate_bounds, objective_bounds
from verifier.bounds.alpha_intermediate import IntermediateSlopes
from verifier.bounds.crown import backward_lower, pre_activation_nodes
from verifier.ir.ops import ReLU
from verifier.settings import BoundSettings

F64 = torch.float64


def problem(kind, seed, radius=0.5, k=4):
    model = ZOO[kind](seed)
    g = graph_from_onnx(model, kind, dtype=F64)
    rng = np.random.default_rng(seed + 11)
    c = rng.uniform(-1, 1, g.n_inputs)
    x_lo = torch.tensor(c - radius).reshape(1, -1)
    x_hi = torch.tensor(c + radius).reshape(1, -1)
    C = torch.tensor(rng.standard_normal((k, g.n_outputs)))
    return g, x_lo, x_hi, C, rng


@pytest.mark.parametrize("kind", ["fc", "conv", "residual"])
def test_slope_gradient_matches_finite_differences(kind):
    g, x_lo, x_hi, C, rng = problem(kind, 0)
    pre = intermediate_bounds(g, x_lo, x_hi, "crown")
    A0 = C[:1].reshape(1, 1, *g.output_shape)
    alphas = {}
    for n in g.nonlinear_nodes():
        lo, hi = pre[n.inputs[0]]
        # interior slopes, so that a small step stays inside [0, 1] and away from kinks
        alphas[n.name] = torch.tensor(rng.uniform(0.2, 0.8, (1, 1, *lo.shape[1:]))).requires_grad_(True)
    lb = backward_lower(g, g.output_name, A0, x_lo, x_hi, pre, alphas)
    lb.sum().backward()
    checked = 0
    for name, a in alphas.items():
        lo, hi = pre[g.by_name[name].inputs[0]]
        unstable = ((lo < 0) & (hi > 0)).reshape(-1)
        for j in torch.nonzero(unstable).flatten()[:5].tolist():
            with torch.no_grad():
                shifted = {k: v.detach().clone() for k, v in alphas.items()}
                h = 1e-6
                shifted[name].view(-1)[j] += h
                up = backward_lower(g, g.output_name, A0, x_lo, x_hi, pre, shifted)
                shifted[name].view(-1)[j] -= 2 * h
                down = backward_lower(g, g.output_name, A0, x_lo, x_hi, pre, shifted)
            fd = float((up - down) / (2 * h))
            grad = float(a.grad.view(-1)[j])
            assert abs(fd - grad) <= 1e-5 * (1 + abs(fd)), f"{name}[{j}]: autograd {grad}, finite differences {fd}"
            checked += 1
    assert checked > 0, "no unstable neuron: the box is too small to test slopes"


@pytest.mark.parametrize("kind", ["fc", "conv", "residual"])
def test_optimised_intermediate_bounds_contain_samples(kind):
    g, x_lo, x_hi, C, rng = problem(kind, 1)
    d = torch.zeros(C.shape[0], dtype=F64)
    ob = objective_bounds(g, C, d, x_lo, x_hi, BoundSettings("alpha-crown", alpha_iters=20))
    crown = intermediate_bounds(g, x_lo, x_hi, "crown")
    X = x_lo + torch.tensor(rng.random((4000, g.n_inputs))) * (x_hi - x_lo)
    with torch.no_grad():
        vals = g.forward_all(X)
    for p in pre_activation_nodes(g):
        lo, hi = ob.pre[p]
        v = vals[p].reshape(len(X), -1)
        assert torch.all(v >= lo.reshape(1, -1) - 1e-9) and torch.all(v <= hi.reshape(1, -1) + 1e-9), p
        # never looser than the CROWN bounds the optimisation starts from
        assert torch.all(lo >= crown[p][0] - 1e-12) and torch.all(hi <= crown[p][1] + 1e-12), p


def test_intermediate_slopes_tighten_the_objective():
    gain = 0.0
    for seed in range(3):
        for kind in ("fc", "conv"):
            g, x_lo, x_hi, C, _ = problem(kind, seed, radius=0.8, k=6)
            d = torch.zeros(C.shape[0], dtype=F64)
            only_out = objective_bounds(g, C, d, x_lo, x_hi,
                                        BoundSettings("alpha-crown", alpha_iters=30, intermediate_alpha=False))
            full = objective_bounds(g, C, d, x_lo, x_hi, BoundSettings("alpha-crown", alpha_iters=30))
            crown = objective_bounds(g, C, d, x_lo, x_hi, BoundSettings("crown"))
            assert torch.all(full.lower >= crown.lower - 1e-12)
            gain += float((full.lower - only_out.lower).sum())
    assert gain > 1e-3


def test_intermediate_slopes_cover_every_earlier_relu():
    g, x_lo, x_hi, C, _ = problem("fc", 2, radius=0.8)
    pre = intermediate_bounds(g, x_lo, x_hi, "crown")
    inter = IntermediateSlopes(g, x_lo, x_hi, pre)
    relus = [n.name for n in g.nonlinear_nodes() if isinstance(n.op, ReLU)]
    pnodes = pre_activation_nodes(g)
    assert len(pnodes) >= 2 and inter.alphas, "the test network needs two ReLU layers with unstable neurons"
    for k, p in enumerate(pnodes):
        if p in inter.alphas:
            # the node after the k-th ReLU layer has slopes for the k ReLU layers before it
            assert sorted(inter.alphas[p]) == sorted(relus[:k])
            m = inter.rows[p].numel()
            assert all(a.shape[1] == 2 * m for a in inter.alphas[p].values())


def test_slope_count_matches_what_is_allocated():
    """The size guard counts exactly the slopes IntermediateSlopes allocates (so the guard is meaningful)."""
    from verifier.bounds.alpha_intermediate import intermediate_slope_count

    for kind in ("fc", "conv", "residual"):
        g, x_lo, x_hi, C, _ = problem(kind, 2, radius=0.8)
        pre = intermediate_bounds(g, x_lo, x_hi, "crown")
        inter = IntermediateSlopes(g, x_lo, x_hi, pre)
        allocated = sum(a.numel() for a in inter.parameters())
        assert allocated > 0 and intermediate_slope_count(g, pre) == allocated, kind


@pytest.mark.parametrize("kind", ["fc", "conv", "residual"])
def test_root_intermediate_slopes_on_sub_boxes_contain_samples(kind):
    """ReLU splitting re-derives a domain's intermediate bounds with the root's optimised slopes
    (``ObjectiveBounds.inter_slopes``): on sub-boxes (here: halves of the root box, a stand-in for a
    domain) the bounds contain every sampled value, are never looser than the root's, and the root's
    slopes were used (CROWN's own slopes give other bounds somewhere)."""
    g, x_lo, x_hi, C, rng = problem(kind, 2)
    d = torch.zeros(C.shape[0], dtype=F64)
    ob = objective_bounds(g, C, d, x_lo, x_hi, BoundSettings("alpha-crown", alpha_iters=20))
    assert ob.inter_slopes, "no intermediate slopes came back"
    differs = False
    for dim in range(min(3, g.n_inputs)):
        for side in (0, 1):
            lo, hi = x_lo.clone(), x_hi.clone()
            mid = (lo[0, dim] + hi[0, dim]) / 2
            if side:
                lo[0, dim] = mid
            else:
                hi[0, dim] = mid
            with torch.no_grad():
                b = intermediate_bounds(g, lo, hi, "crown", fixed=ob.pre, slopes=ob.inter_slopes)
                plain = intermediate_bounds(g, lo, hi, "crown", fixed=ob.pre)
                vals = g.forward_all(lo + torch.tensor(rng.random((3000, g.n_inputs))) * (hi - lo))
            for p in pre_activation_nodes(g):
                v = vals[p].reshape(3000, -1)
                blo, bhi = (t.reshape(1, -1) for t in b[p])
                assert torch.all(v >= blo - 1e-9) and torch.all(v <= bhi + 1e-9), (kind, dim, side, p)
                assert torch.all(b[p][0] >= ob.pre[p][0]) and torch.all(b[p][1] <= ob.pre[p][1])
                differs |= not (torch.equal(b[p][0], plain[p][0]) and torch.equal(b[p][1], plain[p][1]))
    assert differs, "the root's slopes changed no bound: were they used?"
