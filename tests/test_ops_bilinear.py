"""Products of network values and Softmax (issue 21): Mul and Div of two network values, MatMul of two network
values, Softmax (``verifier/ir/ops/bilinear.py``, ``frontends/onnx/handlers_bilinear.py``).

Forward passes against onnxruntime; the McCormick planes and the interval product against x * y on a dense 2-D grid
of random boxes (and the exact range at the corners); Reciprocal's and Exp's lines and intervals against a dense
1-D grid; interval and CROWN bounds of small nets where two branches of one input are multiplied (divided, matrix
multiplied, passed through Softmax) against sampled and PGD values, at every node and on the objective; the
exact minimum of x * y and x * x on tiny boxes; ``auto`` deciding both sides of a sampled optimum (its PGD finds
the ``sat`` side); and the passes that do not handle the ops refusing them with ``UnsupportedError``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import Builder, ort_run_batch, ort_session
from op_specs import check_auto_both_sides
from test_bounds import F64, boxes, check_nodes, check_sound, objective_values, sample_inputs
from test_onnx_loader import compare_with_ort

from frontends.onnx.loader import graph_from_onnx
from verifier.bounds import intermediate_bounds, objective_bounds
from verifier.bounds.crown import backward_lower
from verifier.bounds.exact import exact_net
from verifier.bounds.forward import forward_bounds
from verifier.ir.errors import UnsupportedError
from verifier.ir.ops.bilinear import SOFTMAX_EXP_CAP, CappedExp, FlooredReciprocal, Mul
from verifier.ir.ops.smooth import Exp, Reciprocal
from verifier.settings import BoundSettings

F32 = np.float32


def _lin(b, x, n_in, n_out, scale=None):
    return b.node("MatMul", [x, b.const(b.rand(n_in, n_out, scale=scale), "W")])


def _mul_branches(b, x):  # (1, 3) -> two Linear branches of width 4, multiplied
    return b.node("Mul", [_lin(b, x, 3, 4), _lin(b, x, 3, 4)])


def _mul_broadcast(b, x):  # (1, 3, 1) * (1, 1, 4) -> (1, 3, 4)
    u = b.node("Reshape", [_lin(b, x, 3, 3), b.const(np.array([1, 3, 1], np.int64))])
    v = b.node("Reshape", [_lin(b, x, 3, 4), b.const(np.array([1, 1, 4], np.int64))])
    return b.node("Mul", [u, v])


def _square(b, x):
    y = _lin(b, x, 3, 4)
    return b.node("Mul", [y, y])


def _positive(b, x, n):  # y * y + 1.5 > 0
    y = _lin(b, x, 3, n)
    return b.node("Add", [b.node("Mul", [y, y]), b.const(np.full((1, n), 1.5, F32))])


def _div_values(b, x):
    return b.node("Div", [_lin(b, x, 3, 4), _positive(b, x, 4)])


def _div_const_by_value(b, x):
    return b.node("Div", [b.const(np.array([[1.0, -2.0, 0.5, 3.0]], F32)), _positive(b, x, 4)])


def _matmul_values(b, x):  # (1, 2, 3, 2) @ (1, 2, 2, 4)
    u = b.node("Reshape", [_lin(b, x, 3, 12), b.const(np.array([1, 2, 3, 2], np.int64))])
    v = b.node("Reshape", [_lin(b, x, 3, 16), b.const(np.array([1, 2, 2, 4], np.int64))])
    return b.node("MatMul", [u, v])


def _matmul_broadcast(b, x):  # (1, 3, 2) @ (1, 1, 2, 2): the leading axes broadcast
    u = b.node("Reshape", [_lin(b, x, 3, 6), b.const(np.array([1, 3, 2], np.int64))])
    v = b.node("Reshape", [_lin(b, x, 3, 4), b.const(np.array([1, 1, 2, 2], np.int64))])
    return b.node("MatMul", [u, v])


def _softmax(axis):
    def build(b, x):
        y = b.node("Reshape", [_lin(b, x, 3, 12, scale=1.0), b.const(np.array([1, 3, 4], np.int64))])
        return b.node("Softmax", [y], axis=axis)
    return build


def _attention(b, x):  # softmax(Q K^T) V of one head, Q, K, V linear in the input
    def proj(n):
        return b.node("Reshape", [_lin(b, x, 3, n), b.const(np.array([1, 3, n // 3], np.int64))])
    q, k, v = proj(6), proj(6), proj(6)
    kt = b.node("Transpose", [k], perm=[0, 2, 1])
    return b.node("MatMul", [b.node("Softmax", [b.node("MatMul", [q, kt])], axis=-1), v])


CASES = {
    "mul_branches": _mul_branches, "mul_broadcast": _mul_broadcast, "square": _square, "div_values": _div_values,
    "div_const_by_value": _div_const_by_value, "matmul_values": _matmul_values, "matmul_broadcast": _matmul_broadcast,
    "softmax_last": _softmax(-1), "softmax_axis1": _softmax(1), "attention": _attention,
}


def _model(case, seed=0, opset=None):
    b = Builder(seed, [1, 3])
    out = CASES[case](b, b.in_name)
    m = b.model(b.node("Flatten", [out]))
    if opset is not None:
        m.opset_import[0].version = opset
    return m


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_matches_onnxruntime(case):
    model = _model(case)
    graph = graph_from_onnx(model, case)
    xs = np.random.default_rng(1).uniform(-2, 2, (16, 3))
    assert compare_with_ort(graph, ort_session(model), xs) <= 1e-5


def test_softmax_of_opset_11_flattens_from_its_axis():
    """Opsets 1-12: Softmax(axis=1) of a (1, 3, 4) value normalises over all 12 elements, not over axis 1 alone."""
    model = _model("softmax_axis1", opset=11)
    graph = graph_from_onnx(model, "s11")
    xs = np.random.default_rng(2).uniform(-2, 2, (8, 3))
    assert compare_with_ort(graph, ort_session(model), xs) <= 1e-5
    y = graph.forward(torch.tensor(xs, dtype=torch.float32))
    assert torch.allclose(y.sum(1), torch.ones(8), atol=1e-5)


def _boxes2(rng, n=400):
    """Random boxes of (x, y): mixed signs, one-signed, points and boxes touching 0."""
    a, b = rng.uniform(-2, 2, (2, n, 2))
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    lo[:40, 0] = hi[:40, 0]  # x a point
    lo[40:80], hi[40:80] = np.abs(lo[40:80]), np.abs(lo[40:80]) + np.abs(hi[40:80])  # positive
    lo[80:120], hi[80:120] = -np.abs(hi[80:120]) - np.abs(lo[80:120]), -np.abs(hi[80:120])  # negative
    lo[120:140, 1] = 0.0
    lo, hi = lo.astype(F32).astype(np.float64), hi.astype(F32).astype(np.float64)  # the same boxes in float32
    return [(torch.tensor(lo[:, k:k + 1], dtype=F64), torch.tensor(hi[:, k:k + 1], dtype=F64)) for k in (0, 1)]


def test_mcCormick_planes_enclose_the_product_and_touch_it():
    (lx, ux), (ly, uy) = _boxes2(np.random.default_rng(0))
    t = torch.linspace(0, 1, 61, dtype=F64)
    n = lx.shape[0]
    gx = (lx.reshape(n, 1, 1) + (ux - lx).reshape(n, 1, 1) * t.reshape(1, -1, 1)).expand(n, 61, 61).reshape(n, -1)
    gy = (ly.reshape(n, 1, 1) + (uy - ly).reshape(n, 1, 1) * t.reshape(1, 1, -1)).expand(n, 61, 61).reshape(n, -1)
    xy = gx * gy
    op = Mul()
    for dt in (torch.float32, F64):
        bx, by = (lx.to(dt), ux.to(dt)), (ly.to(dt), uy.to(dt))
        a_l, b_l, c_l, a_u, b_u, c_u = (v.double() for v in op.planes(bx, by, 1))
        assert torch.all(a_l * gx + b_l * gy + c_l <= xy), "lower plane above x y"
        assert torch.all(a_u * gx + b_u * gy + c_u >= xy), "upper plane below x y"
        # McCormick planes are exact at (at least) two corners: the gap at the best corner is ~0
        gap_l = (xy - (a_l * gx + b_l * gy + c_l)).min(1).values
        gap_u = ((a_u * gx + b_u * gy + c_u) - xy).min(1).values
        scale = 1 + (xy.abs().max(1).values)
        assert torch.all(gap_l <= 1e-5 * scale) and torch.all(gap_u <= 1e-5 * scale)
        lo, hi = op.ibp(bx, by)
        corners = torch.cat([lx * ly, lx * uy, ux * ly, ux * uy], 1)
        assert torch.all(lo.double() <= xy.min(1, keepdim=True).values)
        assert torch.all(hi.double() >= xy.max(1, keepdim=True).values)
        assert torch.allclose(lo.double(), corners.min(1, keepdim=True).values, rtol=1e-6, atol=1e-6)
        assert torch.allclose(hi.double(), corners.max(1, keepdim=True).values, rtol=1e-6, atol=1e-6)


def _intervals(rng, positive, n=300):
    a, b = rng.uniform(0.05, 4.0, (2, n))
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    lo[:20] = hi[:20]  # points
    if not positive:
        lo[n // 2:], hi[n // 2:] = -hi[n // 2:], -lo[n // 2:]
    lo, hi = lo.astype(F32).astype(np.float64), hi.astype(F32).astype(np.float64)
    return torch.tensor(lo, dtype=F64).reshape(-1, 1), torch.tensor(hi, dtype=F64).reshape(-1, 1)


@pytest.mark.parametrize("name", ["reciprocal", "exp", "capped_exp"])
def test_lines_and_intervals_of_reciprocal_and_exp(name):
    """Softmax's pieces: Reciprocal and Exp (``verifier.ir.ops.smooth``) and exp(min(x, cap)) (``CappedExp``, here
    with the cap inside many of the intervals)."""
    op = {"reciprocal": Reciprocal(), "exp": Exp(), "capped_exp": CappedExp(1.5)}[name]
    lo, hi = _intervals(np.random.default_rng(3), positive=False)
    if name != "reciprocal":
        lo, hi = ((3 * t).float().double() for t in (lo, hi))  # exponents in [-12, 12], float32 values
    grid = lo + (hi - lo) * torch.linspace(0, 1, 2001, dtype=F64).reshape(1, -1)
    y = op.forward(grid)
    for dt in (torch.float32, F64):
        ilo, ihi = (v.double() for v in op.ibp((lo.to(dt), hi.to(dt))))
        assert torch.all(ilo <= y.min(1, keepdim=True).values) and torch.all(ihi >= y.max(1, keepdim=True).values)
        assert torch.allclose(ilo, y.min(1, keepdim=True).values, rtol=1e-6)  # monotone: the ends
        assert torch.allclose(ihi, y.max(1, keepdim=True).values, rtol=1e-6)
        a_l, b_l, a_u, b_u = (v.double() for v in op.relax(lo.to(dt), hi.to(dt)))
        assert torch.all(a_l * grid + b_l <= y), "lower line above the function"
        assert torch.all(a_u * grid + b_u >= y), "upper line below the function"
        pt = (lo == hi).flatten()  # a point: both lines meet the value
        assert torch.allclose((a_l * lo + b_l)[pt], op.forward(lo)[pt], rtol=1e-5)
        assert torch.allclose((a_u * lo + b_u)[pt], op.forward(lo)[pt], rtol=1e-5)


def test_reciprocal_refuses_a_divisor_whose_bounds_contain_zero():
    op = Reciprocal("'d' (Div)")
    lo, hi = torch.tensor([[0.5, -1.0]]), torch.tensor([[1.0, 2.0]])
    with pytest.raises(UnsupportedError, match=r"node 'd' \(Div\).*contain 0"):
        op.ibp((lo, hi))
    with pytest.raises(UnsupportedError, match="contain 0"):
        op.relax(lo, hi)
    floored = FlooredReciprocal(1.0, "s")  # Softmax's divisor: at least 1 by construction
    top = floored.ibp((lo, hi))[1]
    assert torch.all(top >= 1.0) and torch.all(top <= 1.0 + 1e-5)


def _net(case, seed=0):
    """``Gemm(3) -> case -> Flatten -> Gemm(2)`` on a (1, 3) input: the op's factors are two branches of one
    input."""
    b = Builder(seed, [1, 3])
    y = b.node("Flatten", [CASES[case](b, b.gemm(b.in_name, 3, 3, relu=False))])
    n = int(np.prod(graph_from_onnx(b.model(y), case).output_shape))
    return b.model(b.gemm(y, n, 2, relu=False))


@pytest.mark.parametrize("case", sorted(CASES))
def test_bounds_of_a_net_with_the_op_contain_samples(case):
    model = _net(case)
    g32, g64 = graph_from_onnx(model, case), graph_from_onnx(model, case, dtype=F64)
    rng = np.random.default_rng(2)
    c = rng.uniform(-1, 1, 3)
    lo, hi = c - 0.4, c + 0.4
    C = torch.tensor(rng.standard_normal((3, 2)))
    d = torch.tensor(rng.standard_normal(3))
    X = sample_inputs(g64, C, lo, hi, rng, n_uniform=1500, starts=8, steps=30)
    obs, vmin, vmax = check_sound(g32, g64, C, d, lo, hi, X, methods=("ibp", "crown"))
    check_nodes(g32, g64, lo, hi, X, methods=("ibp", "crown"))
    crown, ibp = obs[("crown", "f64")], obs[("ibp", "f64")]
    assert torch.all(crown.lower >= ibp.lower - 1e-9)  # the better of the two is kept
    # the linear bound itself (no interval intersection at the end) holds too
    x_lo, x_hi = boxes(lo, hi)
    pre = intermediate_bounds(g64, x_lo, x_hi, "crown")
    A0 = C.reshape(1, 3, 2)
    lb = backward_lower(g64, g64.output_name, A0, x_lo, x_hi, pre)[0].numpy()
    ub = -backward_lower(g64, g64.output_name, -A0, x_lo, x_hi, pre)[0].numpy()
    vals = objective_values(g64, C, torch.zeros(3), X)
    assert np.all(lb <= vals.min(0) + 1e-9) and np.all(ub >= vals.max(0) - 1e-9)


def test_softmax_bounds_lie_in_the_unit_interval_and_contain_samples():
    model = _model("softmax_last")
    g = graph_from_onnx(model, "s", dtype=F64)
    lo, hi = np.full(3, -0.5), np.full(3, 0.5)
    X = lo + np.random.default_rng(4).random((3000, 3)) * (hi - lo)
    b = intermediate_bounds(g, *boxes(lo, hi), "crown")
    ylo, yhi = (t.reshape(-1) for t in b[g.output_name])
    y = g.forward(torch.tensor(X, dtype=F64))
    assert torch.all(ylo <= y.min(0).values) and torch.all(yhi >= y.max(0).values)
    assert torch.all(ylo >= 0) and torch.all(yhi <= 1 + 1e-12)
    assert torch.all(yhi - ylo <= 0.9)  # not the trivial [0, 1]


def _single_mul_graph(square: bool):
    b = Builder(0, [1, 2])
    x0 = b.node("Slice", [b.in_name, b.const(np.array([0], np.int64)), b.const(np.array([1], np.int64)),
                          b.const(np.array([1], np.int64))])
    x1 = x0 if square else b.node("Slice", [b.in_name, b.const(np.array([1], np.int64)),
                                            b.const(np.array([2], np.int64)), b.const(np.array([1], np.int64))])
    return graph_from_onnx(b.model(b.node("Mul", [x0, x1])), "m", dtype=F64)


@pytest.mark.parametrize("box,exact_min", [(((1.0, 2.0), (1.0, 2.0)), 1.0), (((-2.0, -1.0), (-3.0, -1.0)), 1.0),
                                            (((-1.0, 2.0), (-1.0, 3.0)), -3.0), (((-1.0, 1.0), (-1.0, 1.0)), -1.0)])
def test_crown_bound_of_x_times_y_is_the_exact_minimum(box, exact_min):
    """The product of two inputs on a 2-D grid: the minimum lies at a corner; the lower plane chosen per element
    is exact there (one McCormick plane touches the function at three corners, the mix at the two others)."""
    g = _single_mul_graph(square=False)
    lo, hi = np.array([box[0][0], box[1][0]]), np.array([box[0][1], box[1][1]])
    t = np.linspace(0, 1, 201)
    grid = np.stack(np.meshgrid(lo[0] + t * (hi[0] - lo[0]), lo[1] + t * (hi[1] - lo[1])), -1).reshape(-1, 2)
    assert abs(np.prod(grid, 1).min() - exact_min) < 1e-12
    ob = objective_bounds(g, torch.ones(1, 1), torch.zeros(1), *boxes(lo, hi), BoundSettings("crown"))
    assert float(ob.lower[0, 0]) <= exact_min and float(ob.lower[0, 0]) >= exact_min - 1e-6


def test_crown_bound_of_x_squared_holds_and_beats_the_interval():
    """x * x on [-1, 2] (one value multiplied by itself): exact range [0, 4]; the interval product of two independent
    factors would give [-2, 4], the square's rule [0, 4]; CROWN's tangent at the midpoint gives -1.25."""
    g = _single_mul_graph(square=True)
    lo, hi = np.array([-1.0, 0.0]), np.array([2.0, 0.0])
    x = np.linspace(-1, 2, 3001)
    assert x.dot(x) > 0 and (x * x).min() == 0.0
    ob = objective_bounds(g, torch.ones(1, 1), torch.zeros(1), *boxes(lo, hi), BoundSettings("crown"),
                          need_upper=True)
    ib = objective_bounds(g, torch.ones(1, 1), torch.zeros(1), *boxes(lo, hi), BoundSettings("ibp"))
    assert float(ib.lower[0, 0]) == pytest.approx(0.0, abs=1e-12) and float(ib.lower[0, 0]) <= 0.0
    x_lo, x_hi = boxes(lo, hi)
    pre = intermediate_bounds(g, x_lo, x_hi, "crown")
    lb = float(backward_lower(g, g.output_name, torch.ones(1, 1, 1), x_lo, x_hi, pre)[0, 0])
    assert lb == pytest.approx(-1.25, abs=1e-6) and lb <= -1.25
    assert float(ob.lower[0, 0]) <= 0.0 and float(ob.upper[0, 0]) >= 4.0


@pytest.mark.parametrize("case", ["mul_branches", "div_values", "softmax_last"])
def test_auto_decides_both_sides_of_the_sampled_optimum(tmp_path, case):
    check_auto_both_sides(_net(case, seed=3), case, tmp_path, n_uniform=2000, starts=8, steps=30)


def test_passes_that_do_not_handle_products_refuse_them():
    from backends.dual import dual_network_bound
    from backends.encoding import encode_network

    model = _net("mul_branches")
    g = graph_from_onnx(model, "m", dtype=F64)
    x_lo, x_hi = boxes(np.full(3, -0.3), np.full(3, 0.3))
    pre = intermediate_bounds(g, x_lo, x_hi, "crown")
    for mode in ("milp", "lp"):
        with pytest.raises(UnsupportedError, match=r"only, not node '[^']*' \(Mul\)$"):
            encode_network(g, pre, x_lo[0].numpy(), x_hi[0].numpy(), mode)
    with pytest.raises(UnsupportedError, match="2 inputs"):
        forward_bounds(g, x_lo, x_hi)
    assert exact_net(g) is None  # the rational-arithmetic check declines (the float answer stands)
    with pytest.raises(UnsupportedError, match="dual network supports ReLU only"):
        dual_network_bound(g, torch.ones(1, 2, dtype=F64), torch.zeros(1, dtype=F64), x_lo, x_hi, pre)
    with pytest.raises(UnsupportedError, match="ReLU only"):
        objective_bounds(g, torch.ones(1, 2), torch.zeros(1), x_lo, x_hi, BoundSettings("alpha-crown"))


def test_division_by_a_value_across_zero_is_refused_when_bounded():
    """Div(x, y) with y's interval across 0: the forward pass is fine, the bounds are refused naming the node."""
    b = Builder(0, [1, 3])
    y = b.node("Div", [_lin(b, b.in_name, 3, 2), _lin(b, b.in_name, 3, 2)], node_name="the_div")
    g = graph_from_onnx(b.model(y), "d")
    with pytest.raises(UnsupportedError, match=r"'the_div' \(Div\).*contain 0"):
        intermediate_bounds(g, torch.full((1, 3), -1.0), torch.ones(1, 3), "crown")


def test_softmax_of_far_apart_logits_is_bounded_without_overflow():
    """Logit differences far beyond exp's float32 range (here up to ~300): the exponents are clamped at
    ``SOFTMAX_EXP_CAP``, which moves the value by less than exp(-cap); the bounds allow for it, contain every sample
    and stay finite, and the forward pass still matches onnxruntime."""
    b = Builder(5, [1, 3])
    y = b.node("MatMul", [b.in_name, b.const(b.rand(3, 6, scale=60.0), "W")])
    model = b.model(b.node("Softmax", [y], axis=-1))
    g = graph_from_onnx(model, "far")
    xs = np.random.default_rng(6).uniform(-1, 1, (16, 3))
    assert compare_with_ort(g, ort_session(model), xs) <= 1e-5
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    X = np.concatenate([xs, lo + np.random.default_rng(7).random((3000, 3)) * (hi - lo)])
    vals = torch.tensor(ort_run_batch(ort_session(model), X))
    diff = next(n.name for n in g.nodes if n.name.endswith("__diff2"))
    for method in ("ibp", "crown"):
        b = intermediate_bounds(g, *(t.float() for t in boxes(lo, hi)), method)
        assert float(b[diff][1].max()) > 2 * SOFTMAX_EXP_CAP  # the clamp acts
        bl, bh = (t.reshape(-1).double() for t in b[g.output_name])
        assert torch.all(torch.isfinite(bl)) and torch.all(torch.isfinite(bh))
        assert torch.all(bl <= vals.min(0).values) and torch.all(bh >= vals.max(0).values)
        assert torch.all(bl >= -1e-6) and torch.all(bh <= 1 + 1e-6)
