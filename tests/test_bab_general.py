"""Input splitting for networks with other nonlinearities than ReLU (``verifier.bab.general``,
``verifier.bab.input_split``): tiny nets built with onnx.helper (Sigmoid, Tanh, Sin, a bilinear product, Exp,
MaxPool) and specs on which CROWN on the whole box is too loose. A dense grid (refined by gradient steps from its
best points) sets the thresholds: a true property with a margin must come out ``unsat`` by splitting, a false one
``sat`` with a counterexample validated by onnxruntime."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import Builder

from frontends.onnx.loader import graph_from_onnx
from verifier.api import verify
from verifier.api.run import load_problem
from verifier.bab.common import Outcome, RegionTask, Rows
from verifier.bab.input_split import Boxes, _clip_boxes, bound_boxes, input_split_region
from verifier.bounds import objective_bounds
from verifier.ir.deadline import Deadline
from verifier.ir.lower_piecewise import lower_piecewise
from verifier.ir.spec import Disjunct, Spec
from verifier.settings import BoundSettings, VerifyOptions

F64 = torch.float64


def _c(b: Builder, v) -> str:
    return b.const(np.asarray(v, dtype=np.float32))


def _layer(b: Builder, x, n_in, n_out, scale):
    w = (b.rng.standard_normal((n_out, n_in)) * scale).astype(np.float32)
    bias = (b.rng.standard_normal(n_out) * 0.5).astype(np.float32)
    return b.node("Gemm", [x, b.const(w, "W"), b.const(bias, "b")], transB=1)


def _smooth(op, seed, n_in=2, width=8, scale=2.0):
    """``Gemm -> op -> Gemm -> op -> Gemm(1)`` with weights large enough that the op is far from linear."""
    b = Builder(seed, [1, n_in])
    h = b.node(op, [_layer(b, b.in_name, n_in, width, scale)])
    h = b.node(op, [_layer(b, h, width, width, scale / np.sqrt(width) * 2)])
    return b.model(_layer(b, h, width, 1, 1.0), [1, 1])


def _sin(seed, n_in=2, width=6):
    b = Builder(seed, [1, n_in])
    h = b.node("Sin", [_layer(b, b.in_name, n_in, width, 2.5)])
    return b.model(_layer(b, h, width, 1, 1.0), [1, 1])


def _exp(seed, n_in=3, width=6):
    b = Builder(seed, [1, n_in])
    h = b.node("Exp", [_layer(b, b.in_name, n_in, width, 1.0)])
    h = b.node("Tanh", [_layer(b, h, width, width, 0.6)])
    return b.model(_layer(b, h, width, 1, 1.0), [1, 1])


def _bilinear(seed, n_in=2, width=4):
    """Two affine maps of the input multiplied elementwise (a Mul of two variables), then a Gemm."""
    b = Builder(seed, [1, n_in])
    p = _layer(b, b.in_name, n_in, width, 1.5)
    q = _layer(b, b.in_name, n_in, width, 1.5)
    h = b.node("Mul", [p, q])
    return b.model(_layer(b, b.node("Sigmoid", [h]), width, 1, 1.0), [1, 1])


def _maxpool(seed, n_in=4):
    """``Gemm(8) -> Reshape(1, 2, 2, 2) -> MaxPool 2x2 -> Flatten -> Gemm(1)``: no linear relaxation."""
    b = Builder(seed, [1, n_in])
    h = b.reshape(_layer(b, b.in_name, n_in, 8, 1.5), [1, 2, 2, 2])
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    return b.model(_layer(b, b.flatten(h), 2, 1, 1.0), [1, 1])


NETS = {"sigmoid": lambda: _smooth("Sigmoid", 1), "tanh": lambda: _smooth("Tanh", 2), "sin": lambda: _sin(3),
        "bilinear": lambda: _bilinear(4), "exp": lambda: _exp(5), "maxpool": lambda: _maxpool(6)}


def _sampled_min(g, lo, hi, pts: int) -> tuple[float, np.ndarray]:
    """The least output on a dense grid of the box, refined by projected gradient steps from the 16 best grid
    points (float64); and the point reaching it."""
    n = g.n_inputs
    axes = [np.linspace(lo[i], hi[i], pts) for i in range(n)]
    grid = torch.tensor(np.stack(np.meshgrid(*axes), -1).reshape(-1, n))
    with torch.no_grad():
        y = g.forward(grid).reshape(-1)
    x = grid[torch.argsort(y)[:16]].clone().requires_grad_(True)
    lo_t, hi_t = torch.tensor(lo), torch.tensor(hi)
    step = (hi_t - lo_t) / pts
    for _ in range(300):
        out = g.forward(x).reshape(-1)
        (gr,) = torch.autograd.grad(out.sum(), x)
        with torch.no_grad():
            x -= step * gr.sign() * 0.2
            x.copy_(torch.maximum(torch.minimum(x, hi_t), lo_t))
    with torch.no_grad():
        xs = torch.cat([grid, x.detach()])
        ys = g.forward(xs).reshape(-1)
    k = int(ys.argmin())
    return float(ys[k]), xs[k].numpy()


def _crown_lower(g, lo, hi) -> float:
    ob = objective_bounds(g, torch.tensor([[1.0]], dtype=F64), torch.zeros(1, dtype=F64),
                          torch.tensor(lo).reshape(1, -1), torch.tensor(hi).reshape(1, -1), BoundSettings("crown"))
    return float(ob.lower[0, 0])


def _files(tmp_path, case, model, lo, hi, thr):
    """The model and the spec ``lo <= X <= hi and Y_0 <= thr`` (unsafe: the output at most ``thr``)."""
    path = tmp_path / f"{case}.onnx"
    path.write_bytes(model.SerializeToString())
    spec = tmp_path / f"{case}_{thr:.6f}.vnnlib"
    head = "".join(f"(declare-const X_{i} Real)\n(assert (>= X_{i} {float(lo[i])!r}))\n"
                   f"(assert (<= X_{i} {float(hi[i])!r}))\n" for i in range(len(lo)))
    spec.write_text(head + f"(declare-const Y_0 Real)\n(assert (<= Y_0 {float(thr)!r}))\n")
    return path, spec


def _setup(case):
    model = NETS[case]()
    g = graph_from_onnx(model, case, dtype=F64)
    n = g.n_inputs
    lo, hi = -np.ones(n), np.ones(n)
    low, x_low = _sampled_min(g, lo, hi, {2: 201, 3: 41, 4: 21}[n])
    return model, g, lo, hi, low, x_low


def _ort_output(model, x) -> float:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return float(sess.run(None, {"x": np.asarray(x, dtype=np.float32).reshape(1, -1)})[0].reshape(-1)[0])


@pytest.mark.parametrize("case", ["sigmoid", "tanh", "sin", "bilinear", "exp"])
def test_a_true_property_crown_cannot_prove_is_proven_by_input_splitting(tmp_path, case):
    """The output stays above a threshold 0.05 below its sampled minimum, which lies well above CROWN's bound on the
    whole box: ``auto`` proves it by input splitting (before: ``timeout``, CROWN + attack only)."""
    model, g, lo, hi, low, _ = _setup(case)
    thr = low - 0.05
    crown = _crown_lower(g, lo, hi)
    assert crown < thr - 0.05, (case, crown, thr)  # CROWN alone cannot prove it
    path, spec = _files(tmp_path, case, model, lo, hi, thr)
    r = verify(path, spec, method="auto", timeout=20)
    assert r.verdict.value == "unsat", (case, r.verdict, r.method, r.message)
    assert r.method == "auto:input-split" and r.stats["domains"] > 1, (r.method, r.stats)
    assert "ReLU" not in r.message


@pytest.mark.parametrize("case", ["sigmoid", "bilinear"])
def test_a_false_property_is_sat_with_a_validated_counterexample(tmp_path, case):
    """A threshold just above the sampled minimum: a violating point exists (checked on onnxruntime); ``auto`` answers
    sat with a counterexample that onnxruntime confirms."""
    model, g, lo, hi, low, x_low = _setup(case)
    thr = low + 0.01
    assert _ort_output(model, x_low) <= thr  # the property is false
    path, spec = _files(tmp_path, case, model, lo, hi, thr)
    r = verify(path, spec, method="auto", timeout=20)
    assert r.verdict.value == "sat", (case, r.verdict, r.method, r.message)
    cex = r.counterexample
    assert cex is not None and cex.validated
    x = np.asarray(cex.x, dtype=np.float64)
    assert np.all(x >= lo - 1e-9) and np.all(x <= hi + 1e-9)
    assert _ort_output(model, x) <= thr


def test_maxpool_goes_through_interval_bounds_and_is_proven_by_splitting(tmp_path):
    """MaxPool has no linear relaxation: CROWN refuses, the interval pass bounds every box (``ibp_boxes``), and
    splitting the 4 inputs proves a property the interval bound on the whole box does not."""
    model, g, lo, hi, low, _ = _setup("maxpool")
    thr = low - 0.5
    ob = objective_bounds(g, torch.tensor([[1.0]], dtype=F64), torch.zeros(1, dtype=F64),
                          torch.tensor(lo).reshape(1, -1), torch.tensor(hi).reshape(1, -1), BoundSettings("ibp"))
    assert float(ob.lower[0, 0]) < thr - 1.0
    path, spec = _files(tmp_path, "maxpool", model, lo, hi, thr)
    r = verify(path, spec, method="auto", timeout=20)
    assert r.verdict.value == "unsat", (r.verdict, r.method, r.message)
    assert r.method == "auto:input-split" and r.stats.get("ibp_boxes", 0) > 1, (r.method, r.stats)


def _children_contain_samples(g, lo, hi, rng):
    """Bound a box, split it in four, bound the children from the parent's kept bounds: every bound holds at
    sampled points of each child. Returns the parent's kept bounds."""
    C, d = torch.tensor([[1.0]], dtype=F64), torch.zeros(1, dtype=F64)
    done = torch.zeros(1, 1, dtype=torch.bool)
    root = Boxes(torch.tensor(lo).reshape(1, -1), torch.tensor(hi).reshape(1, -1), done)
    _, _, _, pre = bound_boxes(g, C, d, root)
    mid = (lo + hi) / 2
    kids_lo = torch.tensor([[lo[0], lo[1]], [mid[0], lo[1]], [lo[0], mid[1]], [mid[0], mid[1]]])
    kids_hi = torch.tensor([[mid[0], mid[1]], [hi[0], mid[1]], [mid[0], hi[1]], [hi[0], hi[1]]])
    kids = Boxes(kids_lo, kids_hi, done.expand(4, 1), {k: (v[0].expand(4, *v[0].shape[1:]),
                                                           v[1].expand(4, *v[1].shape[1:])) for k, v in pre.items()})
    lb, _, _, kid_pre = bound_boxes(g, C, d, kids)
    for b in range(4):
        x = kids_lo[b] + (kids_hi[b] - kids_lo[b]) * torch.tensor(rng.random((500, 2)))
        with torch.no_grad():
            y = g.forward(x).reshape(-1)
        assert float(y.min()) >= float(lb[b, 0]) - 1e-9, (b, float(y.min()), float(lb[b, 0]))
        for k, (klo, khi) in kid_pre.items():  # no worse than the parent's bounds, which they start from
            assert bool((klo[b] >= pre[k][0][0] - 1e-12).all() and (khi[b] <= pre[k][1][0] + 1e-12).all()), k
    return pre


def test_boxes_hand_every_factor_of_a_product_to_their_children():
    """A box keeps the bounds of both inputs of a product of two variables (its relaxation needs both), and the
    children's bounds started from them hold at sampled points."""
    model = NETS["bilinear"]()
    g = graph_from_onnx(model, "bilinear", dtype=F64)
    mul = next(n for n in g.nonlinear_nodes() if n.op.kind == "Mul")
    pre = _children_contain_samples(g, -np.ones(2), np.ones(2), np.random.default_rng(0))
    assert set(mul.inputs) <= set(pre), (mul.inputs, list(pre))


def test_a_box_no_bound_accepts_stays_open_while_the_others_are_bounded():
    """``Sqrt`` of ``x_0 - 0.5``: undefined on part of ``[-1, 1]``. A batch of boxes is halved until the refused
    box is alone: it gets a bound of -inf (never proven), the box right of 0.5 a finite sound bound."""
    b = Builder(0, [1, 2])
    h = b.node("Gemm", [b.in_name, _c(b, [[1.0, 0.0]]), _c(b, [-0.5])], transB=1)
    y = b.node("Add", [b.node("Sqrt", [h]), b.node("Gemm", [b.in_name, _c(b, [[0.0, 1.0]]), _c(b, [0.0])], transB=1)])
    g = graph_from_onnx(b.model(y, [1, 1]), "sqrt", dtype=F64)
    C, d = torch.tensor([[1.0]], dtype=F64), torch.zeros(1, dtype=F64)
    lo = torch.tensor([[-1.0, -1.0], [0.6, -1.0], [0.75, 0.0]], dtype=F64)
    hi = torch.tensor([[0.0, 1.0], [1.0, 1.0], [1.0, 1.0]], dtype=F64)
    stats: dict = {}
    lb, _, Ax, pre = bound_boxes(g, C, d, Boxes(lo, hi, torch.zeros(3, 1, dtype=torch.bool)), stats=stats)
    assert lb[0, 0] == -float("inf") and stats["refused_boxes"] == 1
    assert bool(torch.isfinite(lb[1:]).all()) and bool((Ax[0] == 0).all())
    assert float(lb[1, 0]) <= np.sqrt(0.1) - 1.0 + 1e-9 and float(lb[2, 0]) <= np.sqrt(0.25) + 1e-9
    assert float(lb[2, 0]) > 0.0  # the box right of 0.75 with x_1 >= 0 is bounded, not refused


@pytest.mark.parametrize("case", ["sigmoid", "bilinear"])
def test_clipping_keeps_every_point_where_an_open_disjunct_may_hold(case):
    """``_clip_boxes`` shrinks boxes by their linear bounds: every sampled point of a box where an open disjunct holds
    stays inside the shrunk box, a box dropped holds none, and a disjunct marked done holds nowhere on its box."""
    model = NETS[case]()
    g = graph_from_onnx(model, case)  # float32, as the search runs
    g64 = graph_from_onnx(model, case, dtype=F64)
    rng = np.random.default_rng(1)
    with torch.no_grad():
        y_all = g64.forward(torch.tensor(rng.uniform(-1, 1, (4000, 2)))).reshape(-1).numpy()
    q = np.quantile(y_all, [0.2, 0.5, 0.6])
    box = (-np.ones(2), np.ones(2))
    band = Disjunct(*box, np.array([[1.0], [-1.0]]), np.array([q[2], -q[1]]))  # q50 <= y <= q60
    low = Disjunct(*box, np.array([[1.0]]), np.array([q[0]]))  # y <= q20
    rows = Rows(Spec(2, 1, (band, low)), [0, 1], "cpu", torch.float32)
    B = 64
    c = rng.uniform(-1, 1, (B, 2))
    w = rng.uniform(0.05, 0.5, (B, 2))
    lo = torch.tensor(np.clip(c - w, -1, 1), dtype=torch.float32)
    hi = torch.tensor(np.clip(c + w, -1, 1), dtype=torch.float32)
    out: dict = {}
    lb, tol, Ax, _ = bound_boxes(g, rows.C, rows.d, Boxes(lo, hi, torch.zeros(B, 2, dtype=torch.bool)), out=out)
    ok = rows.group_ok(lb, tol, torch.zeros(B, 2, dtype=torch.bool))
    keep, lo2, hi2, ok2 = _clip_boxes(rows, lo, hi, Ax, *out["linear"], ok)
    assert bool((lo2 >= lo[keep]).all() and (hi2 <= hi[keep]).all())
    shrunk = ((hi2 - lo2) < (hi[keep] - lo[keep]) - 1e-6).any(1)
    assert int(shrunk.sum()) + int((~keep).sum()) > 0  # the test means something: some box was shrunk or dropped
    k_of = torch.cumsum(keep.long(), 0) - 1
    for b in range(B):
        x = lo[b].double() + (hi[b] - lo[b]).double() * torch.tensor(rng.random((3000, 2)))
        with torch.no_grad():
            y = g64.forward(x).reshape(-1, 1)
        holds = torch.stack([((y @ torch.tensor(dj.C.T)) <= torch.tensor(dj.d)).all(1) for dj in (band, low)], 1)
        assert not bool(holds[:, ok[b]].any()), b  # what the bounds proved (the test's own check of them)
        if not bool(keep[b]):
            assert not bool(holds.any()), b
            continue
        k = int(k_of[b])
        assert not bool(holds[:, ok2[k]].any()), b
        inside = ((x >= lo2[k].double()) & (x <= hi2[k].double())).all(1)
        assert bool(inside[holds.any(1)].all()), (b, lo2[k], hi2[k])


def test_the_search_alone_falsifies_at_box_centres_with_validation(tmp_path):
    """Input splitting without any PGD (``attack_every=0``) on a false property of the Sin net: the boxes' centres
    and bound-minimising vertices reach the violating region; the counterexample is validated on onnxruntime."""
    model, g, lo, hi, low, x_low = _setup("sin")
    thr = low + 0.02
    assert _ort_output(model, x_low) <= thr
    path, spec = _files(tmp_path, "sin", model, lo, hi, thr)
    opts = VerifyOptions()
    problem = load_problem(path, spec, opts)
    problem = replace(problem, graph=lower_piecewise(problem.graph))
    (rlo, rhi, idx), = list(problem.spec.regions())
    task = RegionTask(problem, rlo, rhi, idx, replace(opts.bab, attack_every=0), opts.bounds)
    found = input_split_region(task, Deadline(20), {})
    assert found.status == Outcome.FALSIFIED and found.counterexample.validated
    assert _ort_output(model, found.counterexample.x) <= thr
