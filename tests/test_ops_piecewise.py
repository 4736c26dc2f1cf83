"""The piecewise-linear element-wise operators of issue 21: LeakyRelu, Abs, Sign, Clip, Max / Min with constants
and of two network values (the latter lowered to ReLU).

Forward passes against onnxruntime; each op's interval rule against the exact range and its linear relaxation
against the function on a dense 1-D grid (kinks and 0 included); interval and CROWN bounds of small nets with the
op against sampled and PGD values; the MILP encoding's optimum on tiny nets: never above a sampled value and
attained at the MILP's own input point (so it is the true minimum), and, for Sign, equal to the minimum found by
enumerating the pieces of a 1-D input.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import Builder, ort_session
from test_bounds import F64, check_nodes, check_sound, objective_values, sample_inputs
from test_onnx_loader import compare_with_ort, single_op_model

from frontends.onnx.loader import graph_from_onnx
from verifier.ir.errors import ModelError
from verifier.ir.ops import ReLU
from verifier.ir.ops.piecewise import Abs, Clip, LeakyRelu, Sign

TOL = 1e-5
F32 = np.float32


def _c(b, v):
    return b.const(np.asarray(v, F32))


CASES = {
    "leaky_relu": (lambda b, x: b.node("LeakyRelu", [x], alpha=0.1), [1, 5]),
    "leaky_relu_default": (lambda b, x: b.node("LeakyRelu", [x]), [1, 5]),
    "leaky_relu_steep": (lambda b, x: b.node("LeakyRelu", [x], alpha=2.5), [1, 5]),
    "leaky_relu_negative": (lambda b, x: b.node("LeakyRelu", [x], alpha=-0.4), [1, 5]),
    "abs": (lambda b, x: b.node("Abs", [x]), [1, 2, 3]),
    "sign": (lambda b, x: b.node("Sign", [x]), [1, 5]),
    "clip_both": (lambda b, x: b.node("Clip", [x, _c(b, -0.5), _c(b, 0.7)]), [1, 6]),
    "clip_min_only": (lambda b, x: b.node("Clip", [x, _c(b, 0.2)]), [1, 6]),
    "clip_max_only": (lambda b, x: b.node("Clip", [x, "", _c(b, 0.3)]), [1, 6]),
    "clip_min_above_max": (lambda b, x: b.node("Clip", [x, _c(b, 0.5), _c(b, -0.2)]), [1, 3]),
    "clip_none": (lambda b, x: b.node("Clip", [x]), [1, 3]),
    "max_const": (lambda b, x: b.node("Max", [x, _c(b, 0.25)]), [1, 4]),
    "min_const_tensor": (lambda b, x: b.node("Min", [_c(b, [0.1, -0.2, 0.3, 1.0, -0.5]), x]), [1, 5]),
    "max_two_values": (lambda b, x: b.node("Max", [x, b.node("Neg", [x])]), [1, 4]),
    "min_two_values": (lambda b, x: b.node("Min", [x, b.node("Mul", [x, _c(b, [2, -1, 0.5])])]), [1, 3]),
    "max_three_and_const": (lambda b, x: b.node("Max", [x, b.node("Neg", [x]), _c(b, 0.5),
                                                          b.node("Mul", [x, _c(b, 3.0)])]), [1, 3]),
    "min_single": (lambda b, x: b.node("Min", [x]), [1, 3]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case):
    build, in_shape = CASES[case]
    model = single_op_model(build, in_shape)
    graph = graph_from_onnx(model, case)
    xs = np.random.default_rng(1).uniform(-2, 2, (16, graph.n_inputs))
    xs[0] = 0.0  # Sign(0) = 0; kinks at 0
    assert compare_with_ort(graph, ort_session(model), xs) <= TOL


def test_max_min_of_two_values_become_relu_nodes():
    graph = graph_from_onnx(single_op_model(*CASES["max_two_values"]), "m")
    assert [type(n.op) for n in graph.nonlinear_nodes()] == [ReLU]


OPS = {
    "leaky_relu": LeakyRelu(0.1), "leaky_relu_steep": LeakyRelu(2.5), "leaky_relu_negative": LeakyRelu(-0.4),
    "abs": Abs(), "sign": Sign(),
    "clip": Clip(torch.tensor(-0.3, dtype=F64), torch.tensor(0.5, dtype=F64)),
    "max_const": Clip(torch.tensor(0.2, dtype=F64), None), "min_const": Clip(None, torch.tensor(-0.1, dtype=F64)),
}


def _intervals(rng, n=300):
    a, b = rng.uniform(-2, 2, n), rng.uniform(-2, 2, n)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    lo[:20], hi[:20] = 0.0, np.abs(hi[:20])  # touching 0 from one side
    lo[20:40], hi[20:40] = -np.abs(lo[20:40]) - 0.1, 0.0
    lo[40:60] = hi[40:60]  # points
    lo[60:70], hi[60:70] = -0.3, 0.5  # exactly the Clip kinks
    return torch.tensor(lo, dtype=F64).reshape(-1, 1), torch.tensor(hi, dtype=F64).reshape(-1, 1)


@pytest.mark.parametrize("name", sorted(OPS))
def test_interval_rule_is_the_exact_range_and_lines_enclose_the_function(name):
    op = OPS[name]
    lo, hi = _intervals(np.random.default_rng(0))
    grid = lo + (hi - lo) * torch.linspace(0, 1, 2001, dtype=F64).reshape(1, -1)
    special = torch.tensor([0.0, -0.3, 0.5, 0.2, -0.1], dtype=F64).reshape(1, -1)
    inside = (special >= lo) & (special <= hi)
    grid = torch.cat([grid, torch.where(inside, special, lo)], 1)
    y = op.forward(grid)
    ilo, ihi = op.ibp((lo, hi))
    assert torch.all(ilo <= y.min(1, keepdim=True).values) and torch.all(ihi >= y.max(1, keepdim=True).values)
    assert torch.allclose(ilo, y.min(1, keepdim=True).values, atol=1e-12)  # the ends and kinks are on the grid
    assert torch.allclose(ihi, y.max(1, keepdim=True).values, atol=1e-12)
    a_l, b_l, a_u, b_u = op.relax(lo, hi)
    b_l = 0.0 if b_l is None else b_l
    assert torch.all(a_l * grid + b_l <= y + 1e-12), "lower line above the function"
    assert torch.all(a_u * grid + b_u >= y - 1e-12), "upper line below the function"
    if name != "sign":  # continuous: on a point interval both lines meet the value
        pt = (lo == hi).flatten()
        assert torch.allclose((a_l * lo + b_l)[pt], op.forward(lo)[pt], atol=1e-9)


def _in_net(case, seed=0, n_in=3, width=5):
    """``Gemm(width) -> op -> Gemm(width) -> Relu -> Gemm(2)`` on a (1, n_in) input."""
    build, _ = CASES[case]
    b = Builder(seed, [1, n_in])
    y = build(b, b.gemm(b.in_name, n_in, width, relu=False))
    return b.model(b.gemm(b.gemm(y, width, width), width, 2, relu=False))


NET_CASES = ["leaky_relu", "leaky_relu_steep", "leaky_relu_negative", "abs", "sign", "clip_both", "clip_min_only",
             "clip_max_only", "max_const", "min_const_tensor", "max_two_values", "max_three_and_const"]


@pytest.mark.parametrize("case", NET_CASES)
def test_bounds_of_a_net_with_the_op_contain_samples(case):
    model = _in_net(case)
    g32, g64 = graph_from_onnx(model, case), graph_from_onnx(model, case, dtype=F64)
    rng = np.random.default_rng(2)
    c = rng.uniform(-1, 1, g32.n_inputs)
    lo, hi = c - 0.8, c + 0.8
    C = torch.tensor(rng.standard_normal((3, g32.n_outputs)))
    d = torch.tensor(rng.standard_normal(3))
    X = sample_inputs(g64, C, lo, hi, rng, n_uniform=1500, starts=8, steps=30)
    methods = ("ibp", "crown", "alpha-crown") if case.startswith("max_two") else ("ibp", "crown")
    obs, vmin, vmax = check_sound(g32, g64, C, d, lo, hi, X, methods=methods)
    check_nodes(g32, g64, lo, hi, X, methods=("ibp", "crown"))
    if case != "sign":  # CROWN is not looser than intervals here (the nets are shallow; a step's lines are loose)
        assert torch.all(obs[("crown", "f64")].lower >= obs[("ibp", "f64")].lower - 1e-9)


def _milp_min(g64, lo, hi, C):
    from backends.encoding import encode_network
    from backends.solvers import SolveStatus, make_solver
    from verifier.bounds import intermediate_bounds

    pre = intermediate_bounds(g64, torch.tensor(lo).reshape(1, -1), torch.tensor(hi).reshape(1, -1), "crown")
    enc = encode_network(g64, pre, lo, hi, "milp")
    out = make_solver("highs").solve(enc.with_objective(C.numpy(), np.zeros(1)), 60.0)
    assert out.status == SolveStatus.OPTIMAL
    lp = make_solver("highs").solve(encode_network(g64, pre, lo, hi, "lp").with_objective(C.numpy(), np.zeros(1)),
                                    60.0)
    assert lp.status == SolveStatus.OPTIMAL and lp.objective <= out.objective + 1e-7  # the LP relaxes the MILP
    return out.objective, out.x[enc.input_vars], enc


@pytest.mark.parametrize("case", ["leaky_relu", "leaky_relu_negative", "abs", "clip_both", "clip_max_only",
                                  "max_const", "min_const_tensor"])
def test_milp_optimum_is_the_true_minimum(case):
    g64 = graph_from_onnx(_in_net(case, seed=3, n_in=2, width=5), case, dtype=F64)
    rng = np.random.default_rng(4)
    lo, hi = np.array([-1.0, -0.7]), np.array([0.8, 1.1])
    C = torch.tensor(rng.standard_normal((1, g64.n_outputs)))
    best, x_star, enc = _milp_min(g64, lo, hi, C)
    assert enc.n_unstable > 0, "box too small: no kink inside it"
    g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], 161), np.linspace(lo[1], hi[1], 161)), -1).reshape(-1, 2)
    X = np.concatenate([g, sample_inputs(g64, C, lo, hi, rng, n_uniform=10, starts=16, steps=60)])
    vals = objective_values(g64, C, torch.zeros(1), X)[:, 0]
    assert best <= vals.min() + 1e-7  # sound: below every reachable value
    at_star = objective_values(g64, C, torch.zeros(1), x_star.reshape(1, -1))[0, 0]
    assert abs(at_star - best) <= 1e-6 * (1 + abs(best))  # and reached: the true minimum


def test_sign_milp_matches_enumeration_of_the_pieces():
    """1-D input: the value on every open piece between the hidden units' zeros and at every zero; the MILP's
    minimum is the least of them (at a zero it may take either neighbour's sign: still a limit of real values)."""
    b = Builder(6, [1, 1])
    h = b.node("Sign", [b.gemm(b.in_name, 1, 6, relu=False)])
    g64 = graph_from_onnx(b.model(b.gemm(h, 6, 1, relu=False)), "sign", dtype=F64)
    W = g64.nodes[0].op.weight.numpy().reshape(-1)
    bias = g64.nodes[0].op.bias.numpy().reshape(-1)
    lo, hi = np.array([-2.0]), np.array([2.0])
    zeros = np.sort([z for z in -bias / W if lo[0] < z < hi[0]])
    assert len(zeros) >= 2, "too few pieces in the box"
    cuts = np.concatenate([lo, zeros, hi])
    pts = np.concatenate([cuts, (cuts[1:] + cuts[:-1]) / 2])
    C = torch.ones(1, 1)
    vals = objective_values(g64, C, torch.zeros(1), pts.reshape(-1, 1))[:, 0]
    best, _, enc = _milp_min(g64, lo, hi, C)
    assert enc.n_unstable > 0
    assert abs(best - vals.min()) <= 1e-6


def test_unsupported_forms_name_the_node():
    b = Builder(0, [1, 3])
    y = b.node("Clip", [b.in_name, b.node("Relu", [b.in_name])], node_name="cl")
    with pytest.raises(ModelError, match=r"'cl' \(Clip\).*constant"):
        graph_from_onnx(b.model(y, out_shape=[1, 3]), "m.onnx")
    b = Builder(0, [1, 3])
    y = b.node("Max", [b.in_name, b.node("ReduceSum", [b.in_name], keepdims=1)], node_name="mx")
    with pytest.raises(ModelError, match=r"'mx' \(Max\).*broadcasting"):
        graph_from_onnx(b.model(y), "m.onnx")


@pytest.mark.parametrize("case", ["leaky_relu", "leaky_relu_negative", "abs", "clip_both", "clip_max_only",
                                  "max_const", "min_const_tensor"])
def test_lowered_to_relu_same_function_and_milp_optimum(case):
    """``lower_piecewise`` leaves ReLU the only nonlinearity, computes the same function, and its MILP optimum is
    the original's."""
    from verifier.ir.lower_piecewise import lower_piecewise

    g64 = graph_from_onnx(_in_net(case, seed=3, n_in=2, width=5), case, dtype=F64)
    low = lower_piecewise(g64)
    assert {type(n.op) for n in low.nonlinear_nodes()} == {ReLU}
    assert {type(n.op) for n in g64.nonlinear_nodes()} != {ReLU}
    X = torch.tensor(np.random.default_rng(0).uniform(-2, 2, (500, 2)))
    assert torch.allclose(low.forward(X), g64.forward(X), atol=1e-12)
    lo, hi = np.array([-1.0, -0.7]), np.array([0.8, 1.1])
    C = torch.tensor(np.random.default_rng(4).standard_normal((1, 2)))
    assert abs(_milp_min(low, lo, hi, C)[0] - _milp_min(g64, lo, hi, C)[0]) <= 1e-6
    # sound bounds on the lowered graph, alpha-CROWN included
    X = sample_inputs(low, C, lo, hi, np.random.default_rng(1), n_uniform=500, starts=4, steps=20)
    check_sound(lower_piecewise(graph_from_onnx(_in_net(case, seed=3, n_in=2, width=5), case)), low, C,
                torch.zeros(1), lo, hi, X)


@pytest.mark.parametrize("case", ["leaky_relu", "abs", "clip_both", "max_const"])
def test_auto_decides_both_sides_of_the_milp_optimum(tmp_path, case):
    """``auto`` on a net with the op (lowered to ReLU nodes for branch and bound): ``unsat`` just below the MILP's
    minimum of an output row, a validated ``sat`` just above it (the answers are fixed by the exact optimum)."""
    from verifier.api import verify
    from verifier.ir.lower_piecewise import lower_piecewise

    model = _in_net(case, seed=3, n_in=2, width=5)
    g64 = graph_from_onnx(model, case, dtype=F64)
    lo, hi = np.array([-1.0, -0.7]), np.array([0.8, 1.1])
    C = torch.tensor([[1.0, -1.0]])
    best, _, _ = _milp_min(lower_piecewise(g64), lo, hi, C)
    onnx_path = tmp_path / f"{case}.onnx"
    onnx_path.write_bytes(model.SerializeToString())
    head = "".join(f"(declare-const X_{i} Real)\n(assert (>= X_{i} {lo[i]}))\n(assert (<= X_{i} {hi[i]}))\n"
                   for i in range(2)) + "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
    for offset, expect in ((-0.05, "unsat"), (0.05, "sat")):
        spec = tmp_path / f"{case}_{expect}.vnnlib"
        spec.write_text(head + f"(assert (<= (- Y_0 Y_1) {best + offset}))\n")  # y0 - y1 at most the optimum + offset
        r = verify(onnx_path, spec, method="auto", timeout=30)
        assert r.verdict.value == expect, (case, offset, r.verdict, r.method, r.message)
        if expect == "sat":
            assert r.counterexample is not None and r.counterexample.validated
