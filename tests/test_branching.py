"""Branching scores of ReLU splitting (verifier.bab.branching).

The gradient score is a first-order estimate of the worse child's bound gain. Where the bound is linear
in the split neuron's coefficient (one hidden layer, a point input: the pass below the split is a fixed
linear map) the estimate must equal the gain of the children bounded exactly with the same slopes and
split multipliers; anywhere, stable and split neurons must score -1 and unstable ones >= 0.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import box_vnnlib, make_fc, save

from frontends.load import load_problem
from frontends.onnx.loader import graph_from_onnx
from verifier.bab.branching import babsr_scores, child_gains, gradient_scores
from verifier.bab.common import Rows
from verifier.bab.domains import Domains, Region, Splits
from verifier.bab.smart_branching import fsb_child_bounds
from verifier.bounds.crown import backward_lower, intermediate_bounds, pre_activation_nodes

F64 = torch.float64


def _setup(tmp_path, sizes, seed):
    model = make_fc(seed, sizes=sizes)
    g = graph_from_onnx(model, dtype=F64)
    n = g.n_inputs
    C = np.zeros((2, sizes[-1]))
    C[0, 0], C[0, 1], C[1, 0], C[1, -1] = 1.0, -1.0, -1.0, 0.5
    spec_path = tmp_path / "rows.vnnlib"
    spec_path.write_text(box_vnnlib(-np.ones(n), np.ones(n), C=C, d=[0.1, -0.2]))
    spec = load_problem(save(model, tmp_path / "m.onnx"), spec_path).spec
    (_, _, idx), = list(spec.regions())
    return g, Rows(spec, idx, g.device, F64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_score_is_the_exact_gain_where_the_bound_is_linear(tmp_path, seed):
    g, rows = _setup(tmp_path, (3, 8, 3), seed)
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.rand(1, 3, generator=gen, dtype=F64) * 2 - 1
    (p,) = [q for q in pre_activation_nodes(g) if q != g.input_name]
    relu = g.nonlinear_nodes()[0].name
    z0 = intermediate_bounds(g, x0, x0, "ibp")[p][0]
    B, K = 2, rows.C.shape[0]
    # wide pre-activation bounds around the point's value: every neuron unstable, then one split per domain
    l = (-(z0.abs() + 0.1) - torch.rand(B, *z0.shape[1:], generator=gen, dtype=F64))
    u = (z0.abs() + 0.1) + torch.rand(B, *z0.shape[1:], generator=gen, dtype=F64)
    sg = torch.zeros(l.shape, dtype=torch.int8)
    l.view(B, -1)[0, 0], sg.view(B, -1)[0, 0] = 0.0, 1  # domain 0: neuron 0 split active
    u.view(B, -1)[1, 1], sg.view(B, -1)[1, 1] = 0.0, -1  # domain 1: neuron 1 split inactive
    pre = {p: (l, u)}
    alphas = {relu: torch.rand(B, K, *z0.shape[1:], generator=gen, dtype=F64)}
    betas = {p: torch.rand(B, K, *z0.shape[1:], generator=gen, dtype=F64)}
    xl = xh = x0
    A0 = rows.C.reshape(1, K, *g.output_shape).expand(B, K, *g.output_shape)
    lb = backward_lower(g, g.output_name, A0, xl.expand(B, -1), xh.expand(B, -1), pre, alphas,
                        extra={p: -betas[p] * sg.unsqueeze(1).to(F64)}) - rows.d
    grp_ok = torch.zeros(B, len(rows.groups), dtype=torch.bool)
    region = Region(g, rows, xl, xh)
    scores, layout = gradient_scores(region, Domains(pre, {p: sg}, alphas, betas, lb, ok=grp_ok))
    n = scores.shape[1]
    assert layout == [(p, n)]
    assert scores[0, 0] == -1 and scores[1, 1] == -1  # split neurons are stable: not candidates
    # the children of every unstable neuron, bounded by full passes with the same slopes and multipliers
    cand = [(b, j) for b in range(B) for j in range(n) if scores[b, j] >= 0]
    dom = torch.tensor([b for b, _ in cand for _ in (0, 1)])
    flat = torch.tensor([j for _, j in cand for _ in (0, 1)])
    active = torch.tensor([True, False]).repeat(len(cand))
    child = fsb_child_bounds(region, Domains(pre, {p: sg}, alphas, betas, ok=grp_ok), layout, Splits(dom, flat, active),
                             partial=False).reshape(len(cand), 2, K)
    gains = child - lb[dom[::2]].unsqueeze(1)  # (candidates, child, rows)
    # each child's estimated gain, on every row, is its exact gain
    bi = torch.tensor([b for b, _ in cand for _ in range(K)])
    ki = torch.arange(K).repeat(len(cand))
    est = child_gains(region, Domains(pre, {p: sg}, alphas, betas), bi, ki)[p]
    jj = torch.tensor([j for _, j in cand for _ in range(K)])
    rr = torch.arange(len(cand) * K)
    for side in (0, 1):
        e = est[side][rr, jj].reshape(len(cand), K)
        assert torch.allclose(e, gains[:, side], rtol=1e-7, atol=1e-9), (side, e, gains[:, side])
    assert bool((gains > 1e-6).any()) and bool((gains < -1e-6).any())  # not a comparison between zeros
    # the score sums, over each open group's best row, the worse child's gain
    best_rows = [[r[int(lb[b, r].argmax())] for r in rows.groups] for b, _ in cand]
    truth = torch.tensor([sum(float(gains[i, :, r].min()) for r in best_rows[i]) for i in range(len(cand))],
                         dtype=F64)
    score = torch.stack([scores[b, j] for b, j in cand])
    lf, uf = l.reshape(B, -1), u.reshape(B, -1)
    area = torch.stack([-lf[b, j] * uf[b, j] / (uf[b, j] - lf[b, j]) for b, j in cand])
    assert bool((truth > 1e-6).any())
    assert torch.allclose(score, truth.clamp(min=0) + 1e-9 * area, rtol=1e-7, atol=1e-9), (score, truth)


@pytest.mark.parametrize("seed", [0, 1])
def test_scores_mark_exactly_the_unstable_neurons(tmp_path, seed):
    """On a deeper net over a box (where the estimate is only first order) both scores are >= 0 exactly on the
    unstable neurons, and the gradient score is finite."""
    g, rows = _setup(tmp_path, (4, 10, 10, 10, 3), seed)
    xl, xh = -0.5 * torch.ones(1, 4, dtype=F64), 0.5 * torch.ones(1, 4, dtype=F64)
    pre = intermediate_bounds(g, xl, xh, "crown")
    pnodes = [q for q in pre_activation_nodes(g) if q != g.input_name]
    pre = {q: pre[q] for q in pnodes}
    K = rows.C.shape[0]
    record: dict = {}
    A0 = rows.C.reshape(1, K, *g.output_shape)
    lb = backward_lower(g, g.output_name, A0, xl, xh, pre, record=record) - rows.d
    grp_ok = torch.zeros(1, len(rows.groups), dtype=torch.bool)
    unstable = torch.cat([((pre[q][0] < 0) & (pre[q][1] > 0)).reshape(1, -1) for q in pnodes], 1)
    assert bool(unstable.any()) and not bool(unstable.all())
    region = Region(g, rows, xl, xh)
    gs, layout = gradient_scores(region, Domains(pre, {}, {}, {}, lb, ok=grp_ok))
    bs, layout_b = babsr_scores(region, Domains(pre, {}, lb=lb, ok=grp_ok, record=record))
    assert layout == layout_b
    for s in (gs, bs):
        assert torch.equal(s >= 0, unstable) and bool(torch.isfinite(s).all())
        assert bool((s[~unstable] == -1).all())
