"""The smooth element-wise operators of issue 21: Exp, Log, Sqrt, Reciprocal, Softplus, Pow with a constant exponent
(and a constant base), Sin, Cos, HardSigmoid (lowered to an affine node and a Clip); Sigmoid and Tanh against the
same checks.

Forward passes against onnxruntime; each op's interval rule against the exact range and its lines against the
function on a dense 1-D grid of many intervals (narrow, wide, negative, straddling 0, points; Sin / Cos over
several periods), in float64 and float32; interval, CROWN and forward bounds of small nets with the op against
sampled and PGD values; ``auto`` answering ``sat`` (its PGD) and ``unsat`` on a tiny net with each op; the forms
that are not defined on the input's bounds refused with ``UnsupportedError`` naming the node; the MILP / LP
encodings refusing the ops.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import Builder, ort_session
from op_specs import check_auto_both_sides
from test_bounds import F64, boxes, check_nodes, check_sound, sample_inputs
from test_onnx_loader import compare_with_ort, single_op_model

from frontends.onnx.loader import graph_from_onnx
from verifier.bounds import intermediate_bounds, objective_bounds
from verifier.ir.errors import ModelError, UnsupportedError
from verifier.ir.ops import Sigmoid, Tanh
from verifier.ir.ops.periodic import Cos, Sin
from verifier.ir.ops.smooth import Exp, Log, Pow, Reciprocal, Softplus, Sqrt
from verifier.settings import BoundSettings

F32 = np.float32


def _c(b, v):
    return b.const(np.asarray(v, F32))


def _unary(op, **attrs):
    return lambda b, x: b.node(op, [x], **attrs)


def _pow(p):
    return lambda b, x: b.node("Pow", [x, _c(b, p)])


# name -> (builder, input domain for the forward comparison)
CASES = {
    "exp": (_unary("Exp"), (-4, 4)),
    "log": (_unary("Log"), (0.05, 5)),
    "sqrt": (_unary("Sqrt"), (0.0, 5)),
    "reciprocal": (_unary("Reciprocal"), (0.2, 4)),
    "softplus": (_unary("Softplus"), (-30, 30)),
    "sin": (_unary("Sin"), (-12, 12)),
    "cos": (_unary("Cos"), (-12, 12)),
    "sigmoid": (_unary("Sigmoid"), (-8, 8)),
    "tanh": (_unary("Tanh"), (-4, 4)),
    "hard_sigmoid": (_unary("HardSigmoid"), (-4, 4)),
    "hard_sigmoid_attrs": (_unary("HardSigmoid", alpha=-0.7, beta=0.2), (-2, 2)),
    "pow2": (_pow(2.0), (-3, 3)),
    "pow3": (_pow(3.0), (-2, 2)),
    "pow_minus2": (_pow(-2.0), (0.3, 3)),
    "pow_half": (_pow(0.5), (0.0, 4)),
    "pow_1_5": (_pow(1.5), (0.0, 4)),
    "pow_tensor_exponent": (lambda b, x: b.node("Pow", [x, _c(b, [[2.0] * 5])]), (-2, 2)),
    "pow_one": (_pow(1.0), (-2, 2)),
    "pow_zero": (_pow(0.0), (-2, 2)),
    "pow_const_base": (lambda b, x: b.node("Pow", [_c(b, 2.0), x]), (-3, 3)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case):
    build, (a, b) = CASES[case]
    model = single_op_model(build, [1, 5])
    graph = graph_from_onnx(model, case)
    xs = np.random.default_rng(1).uniform(a, b, (16, graph.n_inputs))
    xs[0] = a  # an end of the domain (0 for Sqrt and x ** 0.5)
    assert compare_with_ort(graph, ort_session(model), xs) <= 1e-5


def test_hard_sigmoid_is_an_affine_node_and_a_clip_and_pow_zero_one_are_affine():
    kinds = lambda case: [n.op.kind for n in graph_from_onnx(single_op_model(CASES[case][0], [1, 5]), case).nodes]  # noqa: E731
    assert kinds("hard_sigmoid") == ["Scale", "Clip"]
    assert kinds("pow_one") == [] or all(k != "Pow" for k in kinds("pow_one"))
    assert kinds("pow_zero") == ["Scale"] and kinds("pow_const_base") == ["Scale", "Exp"]


# ----------------------------------------------------------------------------- the 1-D grid
# op -> (the op, the range the intervals are drawn from, points where the extremes may lie)
PI = math.pi
TRIG = [k * PI / 2 for k in range(-14, 15)]
OPS = {
    "exp": (Exp(), (-6, 6), []),
    "log": (Log(), (1e-3, 8), []),
    "sqrt": (Sqrt(), (0.0, 6), []),
    "reciprocal_pos": (Reciprocal(), (0.05, 4), []),
    "reciprocal_neg": (Reciprocal(), (-4, -0.05), []),
    "softplus": (Softplus(), (-12, 12), []),
    "sin": (Sin(), (-20, 20), TRIG),
    "cos": (Cos(), (-20, 20), TRIG),
    "sigmoid": (Sigmoid(), (-10, 10), []),
    "tanh": (Tanh(), (-5, 5), []),
    "pow2": (Pow(2), (-3, 3), [0.0]),
    "pow3": (Pow(3), (-3, 3), [0.0]),
    "pow4": (Pow(4), (-2, 2), [0.0]),
    "pow5": (Pow(5), (-2, 2), [0.0]),
    "pow_minus1_neg": (Pow(-1), (-3, -0.1), []),
    "pow_minus2_neg": (Pow(-2), (-3, -0.1), []),
    "pow_minus3_pos": (Pow(-3), (0.1, 3), []),
    "pow_half": (Pow(0.5), (0.0, 4), []),
    "pow_1_5": (Pow(1.5), (0.0, 4), []),
    "pow_minus_half": (Pow(-0.5), (0.01, 4), []),
    "pow_2_5": (Pow(2.5), (0.0, 3), []),
}


def _intervals(rng, a, b, n=240):
    """Random intervals in [a, b]: wide, narrow (width 1e-3 and 1e-7), points, touching the ends, and straddling 0
    where [a, b] does."""
    u, v = rng.uniform(a, b, n), rng.uniform(a, b, n)
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    lo[:30] = hi[:30] = rng.uniform(a, b, 30)  # points
    c = rng.uniform(a, b, 60)
    lo[30:60], hi[30:60] = c[:30], np.minimum(c[:30] + 1e-3, b)  # narrow
    lo[60:90], hi[60:90] = c[30:], np.minimum(c[30:] + 1e-7, b)
    lo[90:100], hi[90:100] = a, rng.uniform(a, b, 10)  # from the domain's end
    if a < 0 < b:
        lo[100:120], hi[100:120] = -rng.uniform(0, -a, 20), rng.uniform(0, b, 20)
    return torch.tensor(lo, dtype=F64).reshape(-1, 1), torch.tensor(hi, dtype=F64).reshape(-1, 1)


def _grid(lo, hi, special):
    g = torch.minimum(lo + (hi - lo) * torch.linspace(0, 1, 3001, dtype=F64).reshape(1, -1), hi)  # inside [lo, hi]
    if special:
        s = torch.tensor(special, dtype=F64).reshape(1, -1)
        g = torch.cat([g, torch.where((s >= lo) & (s <= hi), s, lo)], 1)
    return g


def _f64(op, x):
    return op.f(x) if hasattr(op, "f") else op.fn(x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_interval_rule_is_the_exact_range_and_lines_enclose_the_function(name, dtype):
    op, (a, b), special = OPS[name]
    lo, hi = _intervals(np.random.default_rng(0), a, b)
    lo, hi = lo.to(dtype), hi.to(dtype)  # the bounds as the graph holds them; the function is evaluated exactly
    grid = _grid(lo.double(), hi.double(), special)
    y = _f64(op, grid)
    ymin, ymax = y.min(1, keepdim=True).values, y.max(1, keepdim=True).values
    ilo, ihi = (t.double() for t in op.ibp((lo, hi)))
    assert ilo.dtype == F64 and bool(torch.all(ilo <= ymin)) and bool(torch.all(ihi >= ymax)), "interval too narrow"
    # the exact range: the ends and the stationary points are on the grid, so it is the grid's min / max
    scale = 1 + ymin.abs() + ymax.abs()
    rel = 1e-5 if dtype == torch.float32 else 1e-12
    sampled = not special and name in ("sin", "cos")
    assert bool(torch.all(ymin - ilo <= rel * scale)) or sampled, float((ymin - ilo).max())
    assert bool(torch.all(ihi - ymax <= rel * scale)) or sampled, float((ihi - ymax).max())
    a_l, b_l, a_u, b_u = (t.double() for t in op.relax(lo, hi))
    assert bool(torch.all(a_l * grid + b_l <= y)), "lower line above the function"
    assert bool(torch.all(a_u * grid + b_u >= y)), "upper line below the function"
    # and tight: on the narrow intervals and the points both lines are near the function
    gap = ((a_u - a_l) * grid + b_u - b_l).max(1).values
    narrow = (hi - lo).double().flatten() <= 1e-3
    assert bool(torch.all(gap[narrow] <= 1e-3 * (1 + y.abs().max(1).values[narrow]))), float(gap[narrow].max())


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_sin_cos_over_several_periods(name):
    """Intervals of 1 to 12 periods and far from 0: the interval rule gives [-1, 1] where a whole period fits, and
    the lines (slope 0 there) enclose the function on a dense grid."""
    op = OPS[name][0]
    rng = np.random.default_rng(3)
    lo = torch.tensor(rng.uniform(-1e4, 1e4, 60), dtype=F64).reshape(-1, 1)
    hi = lo + torch.tensor(rng.uniform(2 * PI, 24 * PI, 60), dtype=F64).reshape(-1, 1)
    ilo, ihi = op.ibp((lo, hi))
    assert torch.allclose(ilo, torch.full_like(ilo, -1.0), atol=1e-12) and bool(torch.all(ilo <= -1))
    assert torch.allclose(ihi, torch.ones_like(ihi), atol=1e-12) and bool(torch.all(ihi >= 1))
    grid = torch.minimum(lo + (hi - lo) * torch.linspace(0, 1, 20001, dtype=F64).reshape(1, -1), hi)
    y = op.f(grid)
    a_l, b_l, a_u, b_u = op.relax(lo, hi)
    assert bool(torch.all(a_l == 0)) and bool(torch.all(a_u == 0))
    assert bool(torch.all(a_l * grid + b_l <= y)) and bool(torch.all(a_u * grid + b_u >= y))
    # narrower than a period, anywhere: the stationary points of f(x) - k x come from the two progressions
    lo2 = torch.tensor(rng.uniform(-50, 50, 300), dtype=F64).reshape(-1, 1)
    hi2 = lo2 + torch.tensor(rng.uniform(0, 2 * PI, 300), dtype=F64).reshape(-1, 1)
    grid = torch.minimum(lo2 + (hi2 - lo2) * torch.linspace(0, 1, 4001, dtype=F64).reshape(1, -1), hi2)
    y = op.f(grid)
    a_l, b_l, a_u, b_u = op.relax(lo2, hi2)
    assert bool(torch.all(a_l * grid + b_l <= y)) and bool(torch.all(a_u * grid + b_u >= y))
    gap = ((a_u - a_l) * grid + b_u - b_l).max(1).values
    assert float(gap.max()) <= 2.0 + 1e-9  # never looser than the range [-1, 1]


def test_convex_ops_take_the_chord_above_and_the_tangent_below():
    """Exp on [0, 2]: the upper line is the chord through both ends, the lower one the tangent at 1."""
    lo, hi = torch.tensor([[0.0]], dtype=F64), torch.tensor([[2.0]], dtype=F64)
    a_l, b_l, a_u, b_u = Exp().relax(lo, hi)
    e = math.e
    assert float(a_u) == pytest.approx((e * e - 1) / 2, rel=1e-12) and float(b_u) == pytest.approx(1.0, rel=1e-9)
    assert float(a_l) == pytest.approx(e, rel=1e-12) and float(b_l) == pytest.approx(0.0, abs=1e-9)
    assert float(b_u) >= 1.0 and float(b_l) <= 0.0  # outward
    a_l, b_l, a_u, b_u = Log().relax(torch.tensor([[1.0]], dtype=F64), torch.tensor([[3.0]], dtype=F64))
    assert float(a_u) == pytest.approx(0.5, rel=1e-12) and float(a_l) == pytest.approx(math.log(3) / 2, rel=1e-12)


def test_relaxation_accepts_a_tangent_point():
    """``alpha`` (in [0, 1]) moves the tangent; every choice is sound."""
    op = Softplus()
    lo, hi = torch.full((5, 1), -2.0, dtype=F64), torch.full((5, 1), 3.0, dtype=F64)
    alpha = torch.linspace(0, 1, 5, dtype=F64).reshape(5, 1)
    a_l, b_l, _, _ = op.relax(lo, hi, alpha)
    grid = lo + (hi - lo) * torch.linspace(0, 1, 2001, dtype=F64).reshape(1, -1)
    assert bool(torch.all(a_l * grid + b_l <= op.f(grid)))
    assert torch.allclose(a_l.flatten(), torch.sigmoid(lo + alpha * (hi - lo)).flatten())


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("op,lo,hi,match", [
    (Log("'lg' (Log)"), -0.5, 2.0, r"'lg' \(Log\).*<= 0"),
    (Log("'lg' (Log)"), 0.0, 2.0, r"'lg' \(Log\).*<= 0"),
    (Sqrt("'sq' (Sqrt)"), -1e-3, 2.0, r"'sq' \(Sqrt\).*negative"),
    (Reciprocal("'r' (Reciprocal)"), -1.0, 2.0, r"'r' \(Reciprocal\).*contain 0"),
    (Reciprocal("'r' (Reciprocal)"), 0.0, 2.0, r"'r' \(Reciprocal\).*contain 0"),
    (Pow(1.5, "'p' (Pow)"), -1.0, 2.0, r"'p' \(Pow\).*Pow\(1.5\).*negative"),
    (Pow(-0.5, "'p' (Pow)"), 0.0, 2.0, r"'p' \(Pow\).*<= 0"),
    (Pow(-2, "'p' (Pow)"), -1.0, 1.0, r"'p' \(Pow\).*contain 0"),
    (Exp("'e' (Exp)"), 0.0, 100.0, r"'e' \(Exp\).*overflows float32"),
])
def test_forms_not_defined_on_the_bounds_are_refused_naming_the_node(op, lo, hi, match):
    lo_t, hi_t = torch.tensor([[lo]]), torch.tensor([[hi]])
    with pytest.raises(UnsupportedError, match=match):
        op.ibp((lo_t, hi_t))
    with pytest.raises(UnsupportedError, match=match):
        op.relax(lo_t, hi_t)


def test_loader_refuses_pow_forms_it_does_not_handle():
    b = Builder(0, [1, 3])
    y = b.node("Pow", [b.in_name, b.node("Relu", [b.in_name])], node_name="pw")
    with pytest.raises(ModelError, match=r"'pw' \(Pow\).*two network values"):
        graph_from_onnx(b.model(y, out_shape=[1, 3]), "m.onnx")
    b = Builder(0, [1, 3])
    y = b.node("Pow", [b.in_name, _c(b, [[2.0, 3.0, 2.0]])], node_name="pw")
    with pytest.raises(ModelError, match=r"'pw' \(Pow\).*not one value"):
        graph_from_onnx(b.model(y), "m.onnx")
    b = Builder(0, [1, 3])
    y = b.node("Pow", [_c(b, -2.0), b.in_name], node_name="pw")
    with pytest.raises(ModelError, match=r"'pw' \(Pow\).*base -2"):
        graph_from_onnx(b.model(y), "m.onnx")


# ----------------------------------------------------------------------------- nets
def _positive(b, x):
    """Softplus(x) + 0.3 > 0: an input for the ops defined on positive numbers."""
    return b.node("Add", [b.node("Softplus", [x]), _c(b, 0.3)])


NET_OPS = {
    "exp": lambda b, x: b.node("Exp", [x]),
    "log": lambda b, x: b.node("Log", [_positive(b, x)]),
    "sqrt_of_square": lambda b, x: b.node("Sqrt", [b.node("Add", [b.node("Pow", [x, _c(b, 2.0)]), _c(b, 0.1)])]),
    "reciprocal": lambda b, x: b.node("Reciprocal", [_positive(b, x)]),
    "softplus": lambda b, x: b.node("Softplus", [x]),
    "sin": lambda b, x: b.node("Sin", [x]),
    "cos": lambda b, x: b.node("Cos", [x]),
    "sigmoid": lambda b, x: b.node("Sigmoid", [x]),
    "tanh": lambda b, x: b.node("Tanh", [x]),
    "hard_sigmoid": lambda b, x: b.node("HardSigmoid", [x], alpha=0.4, beta=0.3),
    "pow2": lambda b, x: b.node("Pow", [x, _c(b, 2.0)]),
    "pow3": lambda b, x: b.node("Pow", [x, _c(b, 3.0)]),
    "pow_half": lambda b, x: b.node("Pow", [_positive(b, x), _c(b, 0.5)]),
}


def _net(case, seed=0, n_in=3, width=5):
    """``Gemm(width) -> op -> Gemm(width) -> Relu -> Gemm(2)`` on a (1, n_in) input."""
    b = Builder(seed, [1, n_in])
    y = NET_OPS[case](b, b.gemm(b.in_name, n_in, width, relu=False))
    return b.model(b.gemm(b.gemm(y, width, width), width, 2, relu=False))


@pytest.mark.parametrize("case", sorted(NET_OPS))
def test_bounds_of_a_net_with_the_op_contain_samples(case):
    model = _net(case)
    g32, g64 = graph_from_onnx(model, case), graph_from_onnx(model, case, dtype=F64)
    rng = np.random.default_rng(2)
    c = rng.uniform(-1, 1, g32.n_inputs)
    lo, hi = c - 0.7, c + 0.7
    C = torch.tensor(rng.standard_normal((3, g32.n_outputs)))
    d = torch.tensor(rng.standard_normal(3))
    X = sample_inputs(g64, C, lo, hi, rng, n_uniform=1000, starts=6, steps=25)
    obs, vmin, vmax = check_sound(g32, g64, C, d, lo, hi, X, methods=("ibp", "crown"))
    check_nodes(g32, g64, lo, hi, X, methods=("ibp", "crown", "forward"))
    # CROWN (the better of it and the interval bound per row) is never looser; on these nets it is tighter somewhere
    cr, ib = obs[("crown", "f64")], obs[("ibp", "f64")]
    assert torch.all(cr.lower >= ib.lower - 1e-9)
    assert bool((cr.lower > ib.lower + 1e-6).any() | (cr.upper < ib.upper - 1e-6).any()), case


def test_crown_refines_every_element_before_a_smooth_op():
    """The input of a smooth op is bounded by CROWN at every element, not only those across 0 (as ReLU needs)."""
    b = Builder(5, [1, 3])
    h = b.gemm(b.gemm(b.in_name, 3, 6), 6, 4, relu=False)  # after a ReLU: CROWN applies
    g = graph_from_onnx(b.model(b.node("Exp", [h])), "m", dtype=F64)
    x_lo, x_hi = boxes(np.full(3, 0.5), np.full(3, 1.5))
    ibp, crown = intermediate_bounds(g, x_lo, x_hi, "ibp"), intermediate_bounds(g, x_lo, x_hi, "crown")
    src = g.nonlinear_nodes()[-1].inputs[0]
    w_ibp, w_crown = (ibp[src][1] - ibp[src][0]), (crown[src][1] - crown[src][0])
    assert bool(torch.all(w_crown <= w_ibp + 1e-12)) and bool((w_crown < w_ibp - 1e-6).any())


@pytest.mark.parametrize("case", ["exp", "log", "sqrt_of_square", "reciprocal", "softplus", "sin", "cos",
                                  "hard_sigmoid", "pow2", "pow3", "pow_half", "sigmoid", "tanh"])
def test_auto_answers_sat_by_its_attack_and_unsat_by_its_bounds(tmp_path, case):
    check_auto_both_sides(_net(case, seed=3), case, tmp_path, n_uniform=1000, starts=6, steps=25, sat_by_attack=True)


def test_a_refused_domain_is_unknown_with_the_node_named(tmp_path):
    """Log of a value whose bounds reach below 0: ``crown`` and ``auto`` answer unknown (or timeout) and name the
    node (never a guess); ``auto`` gets there after running its attack (``...+attack``), not giving up at the bound."""
    from verifier.api import verify

    b = Builder(0, [1, 2])
    y = b.node("Log", [b.gemm(b.in_name, 2, 2, relu=False)], node_name="the_log")
    path = tmp_path / "log.onnx"
    path.write_bytes(b.model(y).SerializeToString())
    spec = tmp_path / "s.vnnlib"
    spec.write_text("".join(f"(declare-const X_{i} Real)\n(assert (>= X_{i} -1))\n(assert (<= X_{i} 1))\n"
                            for i in range(2)) + "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
                    "(assert (>= Y_0 100))\n")
    r = verify(path, spec, method="crown", timeout=20)
    assert r.verdict.value == "unknown" and "'the_log' (Log)" in r.message, (r.verdict, r.message)
    r = verify(path, spec, method="auto", timeout=5)
    assert r.verdict.value in ("unknown", "timeout") and "'the_log' (Log)" in r.message, (r.verdict, r.message)
    assert r.method.endswith("+attack") and "attack" in r.timings, (r.method, r.timings)


@pytest.mark.parametrize("case", ["exp", "sin", "pow2"])
def test_milp_and_lp_encodings_refuse_smooth_ops(case):
    from backends.encoding import encode_network

    g = graph_from_onnx(_net(case), case, dtype=F64)
    x_lo, x_hi = boxes(np.full(3, -0.3), np.full(3, 0.3))
    pre = intermediate_bounds(g, x_lo, x_hi, "crown")
    kind = {"exp": "Exp", "sin": "Sin", "pow2": "Pow"}[case]
    for mode in ("milp", "lp"):
        with pytest.raises(UnsupportedError, match=rf"piecewise-linear networks only, not node '[^']*' \({kind}\)$"):
            encode_network(g, pre, x_lo[0].numpy(), x_hi[0].numpy(), mode)
    with pytest.raises(UnsupportedError, match="ReLU only"):
        objective_bounds(g, torch.ones(1, 2), torch.zeros(1), x_lo, x_hi, BoundSettings("alpha-crown"))


@pytest.mark.parametrize("op,attrs", [("Exp", {}), ("Log", {}), ("Sqrt", {}), ("Reciprocal", {}), ("Softplus", {}),
                                      ("Sin", {}), ("Cos", {}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
                                      ("Pow", {})])
def test_ops_of_constants_are_folded(op, attrs):
    b = Builder(0, [1, 3])
    c = _c(b, [[0.5, 1.5, 2.5]])
    k = b.node(op, [c, _c(b, 3.0)] if op == "Pow" else [c], **attrs)
    model = b.model(b.node("Add", [b.in_name, k]))
    g = graph_from_onnx(model, op)
    assert [n.op.kind for n in g.nodes] == ["Scale"]  # x + a folded constant
    assert compare_with_ort(g, ort_session(model), np.random.default_rng(0).uniform(-1, 1, (4, 3))) <= 1e-6


@pytest.mark.parametrize("attrs,axes", [({"keepdims": 1}, [1]), ({"keepdims": 0}, [-1]), ({}, None),
                                        ({"noop_with_empty_axes": 1}, None)])
def test_reduce_sum_of_a_constant_is_folded(attrs, axes):
    """As in the lsnc nets (a ReduceSum of constants before the Sin / Cos dynamics)."""
    b = Builder(0, [1, 3])
    c = _c(b, np.arange(6, dtype=F32).reshape(2, 3))
    ins = [c] + ([b.const(np.array(axes, np.int64))] if axes is not None else [])
    k = b.node("ReduceSum", ins, **attrs)
    model = b.model(b.node("Add", [b.in_name, b.node("ReduceSum", [k], keepdims=1)]))
    g = graph_from_onnx(model, "rs")
    assert [n.op.kind for n in g.nodes] == ["Scale"]
    assert compare_with_ort(g, ort_session(model), np.random.default_rng(0).uniform(-1, 1, (3, 3))) <= 1e-6


def test_shape_arithmetic_of_equal_where_expand_is_folded_and_refused_on_network_values():
    """The ml4acopf nets' ``Expand(x, Where(Equal(c, s), ones, c))`` on constants folds; Where on a network value is
    refused, naming the node."""
    b = Builder(0, [1, 3])
    s = b.const(np.array([1, 3], np.int64))
    c = b.const(np.array([-1, 3], np.int64))
    w = b.node("Where", [b.node("Equal", [c, s]), b.const(np.array([1, 1], np.int64)), c])
    e = b.node("Expand", [_c(b, [[0.5, -1.0, 2.0]]), b.node("Mul", [w, b.const(np.array([-1, 1], np.int64))])])
    model = b.model(b.node("Add", [b.in_name, e]))
    g = graph_from_onnx(model, "m")
    assert [n.op.kind for n in g.nodes] == ["Scale"]
    assert compare_with_ort(g, ort_session(model), np.random.default_rng(0).uniform(-1, 1, (3, 3))) <= 1e-6
    b = Builder(0, [1, 3])
    y = b.node("Where", [b.const(np.array([True, False, True])), b.in_name, _c(b, [0.0, 1.0, 2.0])], node_name="wh")
    with pytest.raises(ModelError, match=r"'wh' \(Where\).*constant inputs"):
        graph_from_onnx(b.model(y), "m.onnx")
