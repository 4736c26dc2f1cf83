"""The Floor op and the attack through zero-gradient steps (Sign, Floor).

Floor: forward passes against onnxruntime (integers and values just off them included); the interval rule against
the exact range and the lines ``x - 1 <= floor(x) <= x`` against the function on a dense 1-D grid; interval and
CROWN bounds of a small net with Floor against sampled values; the MILP encoding refuses it by name; the
ml4acopf_2024 linear-residual nets (Floor inside their Sin) load and match onnxruntime.

The attack: on nets with a Sign or Floor layer whose violating region is a tiny corner of the box (the centre is
safe), PGD finds a counterexample only by moving, i.e. through the surrogate gradient (straight-through); the
same for a saturated Softmax (the log-probabilities' gradient); the surrogate forward pass is bit-for-bit the
exact one.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from conftest import BENCH, Builder, box_vnnlib, ort_run_batch, ort_session, rel_err, save
from test_bounds import F64, check_nodes, check_sound, sample_inputs
from test_onnx_loader import compare_with_ort, single_op_model

from backends.encoding import encode_network
from frontends.load import load_model, load_problem
from frontends.onnx.files import read_model_bytes
from frontends.onnx.loader import graph_from_onnx
from verifier.attack import pgd_attack
from verifier.attack.surrogate import attack_forward, has_surrogates, node_forward
from verifier.bounds import intermediate_bounds
from verifier.ir.deadline import Deadline
from verifier.ir.errors import UnsupportedError
from verifier.ir.ops.piecewise import Floor, Sign
from verifier.settings.options import AttackSettings

F32 = np.float32


# --------------------------------------------------------------------------- Floor: forward
def test_floor_matches_onnxruntime():
    model = single_op_model(lambda b, x: b.node("Floor", [x]), [1, 6])
    graph = graph_from_onnx(model, "floor")
    assert [n.op.kind for n in graph.nonlinear_nodes()] == ["Floor"]
    xs = np.random.default_rng(0).uniform(-3, 3, (16, 6))
    xs[0] = [-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]  # integers
    xs[1] = np.nextafter(xs[0].astype(F32), np.float32(-np.inf))  # just below them
    xs[2] = [-0.5, 0.5, -1e-7, 1e-7, 2.5, -2.5]
    assert compare_with_ort(graph, ort_session(model), xs) == 0.0  # floor is exact in float32


def _floor_net(seed=0, n_in=3, width=5, scale=2.0):
    """``Gemm(width) -> Floor -> Gemm(width) -> Relu -> Gemm(2)`` on a (1, n_in) input; the first layer's weights
    scaled so that the box spans several stairs."""
    b = Builder(seed, [1, n_in])
    h = b.node("Gemm", [b.in_name, b.const(b.rand(width, n_in, scale=scale)), b.const(b.rand(width))], transB=1)
    y = b.node("Floor", [h])
    return b.model(b.gemm(b.gemm(y, width, width), width, 2, relu=False))


def test_floor_net_matches_onnxruntime():
    model = _floor_net()
    graph = graph_from_onnx(model, "floor_net")
    xs = np.random.default_rng(1).uniform(-2, 2, (32, graph.n_inputs))
    assert compare_with_ort(graph, ort_session(model), xs) <= 1e-5


def test_constant_floor_is_folded():
    b = Builder(0, [1, 3])
    c = b.node("Floor", [b.const(np.array([[-1.5, 0.25, 2.0]], F32))])
    model = b.model(b.node("Add", [b.in_name, c]))
    graph = graph_from_onnx(model, "const_floor")
    assert not graph.nonlinear_nodes()
    xs = np.random.default_rng(2).uniform(-1, 1, (4, 3))
    assert compare_with_ort(graph, ort_session(model), xs) <= 1e-6


# --------------------------------------------------------------------------- Floor: interval rule and lines
def _intervals(rng, n=400):
    a, b = rng.uniform(-3, 3, n), rng.uniform(-3, 3, n)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    lo[:40] = hi[:40]  # points
    lo[40:80] = np.floor(lo[40:80])  # starting on an integer
    hi[80:120] = np.ceil(hi[80:120])  # ending on one
    lo[120:160] = np.floor(lo[120:160]) + 0.1  # on one stair
    hi[120:160] = lo[120:160] + 0.8
    return torch.tensor(lo, dtype=F64).reshape(-1, 1), torch.tensor(hi, dtype=F64).reshape(-1, 1)


def test_floor_interval_rule_is_the_exact_range_and_lines_enclose_it():
    op = Floor()
    lo, hi = _intervals(np.random.default_rng(0))
    grid = lo + (hi - lo) * torch.linspace(0, 1, 4001, dtype=F64).reshape(1, -1)
    ints = torch.arange(-3, 4, dtype=F64).reshape(1, -1)  # the jumps, where the interval holds them
    grid = torch.cat([grid, torch.where((ints >= lo) & (ints <= hi), ints, lo),
                      torch.where((ints - 1e-9 >= lo) & (ints - 1e-9 <= hi), ints - 1e-9, lo)], 1)
    y = op.forward(grid)
    ilo, ihi = op.ibp((lo, hi))
    assert torch.equal(ilo, y.min(1, keepdim=True).values) and torch.equal(ihi, y.max(1, keepdim=True).values)
    a_l, b_l, a_u, b_u = op.relax(lo, hi)
    assert torch.all(a_l * grid + b_l <= y), "lower line above the function"
    assert torch.all(a_u * grid + b_u >= y), "upper line below the function"
    flat = (torch.floor(lo) == torch.floor(hi)).flatten()
    assert flat[:40].all() and flat[120:160].all() and not flat.all()
    # on one stair both lines are the stair itself; elsewhere x - 1 and x
    assert torch.all(a_l[flat] == 0) and torch.all(b_l[flat] == torch.floor(lo)[flat])
    assert torch.all(b_u[flat] == b_l[flat])
    assert torch.all(a_l[~flat] == 1) and torch.all(b_l[~flat] == -1) and torch.all(b_u[~flat] == 0)


def test_bounds_of_a_net_with_floor_contain_samples():
    model = _floor_net(seed=3)
    g32, g64 = graph_from_onnx(model, "floor"), graph_from_onnx(model, "floor", dtype=F64)
    rng = np.random.default_rng(4)
    c = rng.uniform(-1, 1, g32.n_inputs)
    lo, hi = c - 0.6, c + 0.6
    C = torch.tensor(rng.standard_normal((3, g32.n_outputs)))
    d = torch.tensor(rng.standard_normal(3))
    X = sample_inputs(g64, C, lo, hi, rng, n_uniform=4000, starts=4, steps=5)
    obs, vmin, vmax = check_sound(g32, g64, C, d, lo, hi, X, methods=("ibp", "crown"))
    check_nodes(g32, g64, lo, hi, X, methods=("ibp", "crown"))
    # the box crosses stairs (the lines are not all constants) and the bounds are finite
    pre = intermediate_bounds(g64, *(torch.tensor(v).reshape(1, -1) for v in (lo, hi)), "ibp")
    src = g64.nonlinear_nodes()[0].inputs[0]
    assert torch.any(torch.floor(pre[src][0]) != torch.floor(pre[src][1]))
    for ob in obs.values():
        assert torch.all(torch.isfinite(ob.lower)) and torch.all(torch.isfinite(ob.upper))


def test_milp_encoding_refuses_floor():
    g64 = graph_from_onnx(_floor_net(), "floor", dtype=F64)
    lo, hi = -np.ones(g64.n_inputs), np.ones(g64.n_inputs)
    pre = intermediate_bounds(g64, torch.tensor(lo).reshape(1, -1), torch.tensor(hi).reshape(1, -1), "crown")
    for mode in ("milp", "lp"):
        with pytest.raises(UnsupportedError, match=r"piecewise-linear networks only.*\(Floor\)"):
            encode_network(g64, pre, lo, hi, mode)


# --------------------------------------------------------------------------- the attack through zero gradients
N_IN = 4


def _corner_net(step: str) -> onnx.ModelProto:
    """A net on ``[-1, 1]^4`` with one step layer (no mixing between inputs) and the output
    ``(sum of the steps, threshold)``; the property ``Y_0 < Y_1`` fails only in a tiny corner of the box:

    - Sign: ``sign(x_i - 0.99)``, sum 4 (threshold 3.5) only where every ``x_i > 0.99`` (volume share 6e-10);
    - Floor: ``floor(100 x_i)``, sum 400 (threshold 399.5) only at the corner ``x = 1`` itself.

    At the centre (and almost everywhere) the true gradient is 0.
    """
    b = Builder(0, [1, N_IN])
    eye = np.eye(N_IN, dtype=F32)
    if step == "Sign":
        h = b.node("Gemm", [b.in_name, b.const(eye), b.const(np.full(N_IN, -0.99, F32))], transB=1)
        thr = 3.5
    else:
        h = b.node("Gemm", [b.in_name, b.const(100 * eye), b.const(np.zeros(N_IN, F32))], transB=1)
        thr = 399.5
    s = b.node(step, [h])
    w2 = np.stack([np.ones(N_IN, F32), np.zeros(N_IN, F32)])
    return b.model(b.node("Gemm", [s, b.const(w2), b.const(np.array([0.0, thr], F32))], transB=1))


def _softmax_corner_net() -> onnx.ModelProto:
    """``Softmax(10^4 (sum_i x_i - 3.96), 0)`` on ``[-1, 1]^4``: the first probability exceeds the second only in
    the corner ``sum_i x_i > 3.96``; elsewhere the softmax is saturated (the exponentials underflow to 0 or lie
    beyond Softmax's cap wherever ``sum_i x_i < 3.95``), so the true gradient is 0 but in a sliver next to the
    corner."""
    b = Builder(0, [1, N_IN])
    w = np.stack([np.full(N_IN, 1e4, F32), np.zeros(N_IN, F32)])
    z = b.node("Gemm", [b.in_name, b.const(w), b.const(np.array([-39600.0, 0.0], F32))], transB=1)
    return b.model(b.node("Softmax", [z], axis=1))


def _corner_problem(tmp_path, step):
    model = _softmax_corner_net() if step == "Softmax" else _corner_net(step)
    path = save(model, tmp_path / f"{step}.onnx")
    spec = tmp_path / f"{step}.vnnlib"
    spec.write_text(box_vnnlib(-np.ones(N_IN), np.ones(N_IN), C=[[-1.0, 1.0]], d=[0.0]))  # Y_1 <= Y_0: unsafe
    return load_problem(path, spec)


@pytest.mark.parametrize("step", ["Sign", "Floor", "Softmax"])
def test_true_gradient_is_zero_and_surrogate_forward_is_exact(tmp_path, step):
    p = _corner_problem(tmp_path, step)
    g = p.graph
    assert has_surrogates(g)
    x = (torch.rand(64, N_IN, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    x[0] = 0.0  # the centre
    x.requires_grad_(True)
    (gx,) = torch.autograd.grad(g.forward(x)[:, 0].sum(), x)
    assert torch.all(gx == 0)  # why plain PGD cannot move
    y_s = attack_forward(g, x)
    (gs,) = torch.autograd.grad(y_s[:, 0].sum(), x)
    assert torch.equal(y_s.detach(), g.forward(x).detach())  # the values are the exact ones
    assert torch.all(gs[0] > 0)  # the surrogate points towards the corner from the centre
    centre = g.forward(torch.zeros(1, N_IN))[0]
    assert float(centre[0]) < float(centre[1])  # the centre is safe


@pytest.mark.parametrize("step", ["Sign", "Floor", "Softmax"])
def test_attack_finds_the_corner_through_the_step(tmp_path, step):
    p = _corner_problem(tmp_path, step)
    cex = pgd_attack(p.graph, p.spec, AttackSettings(restarts=8, steps=60, seed=0), Deadline(20.0), p.reference,
                     rounds=2)
    assert cex is not None, "no counterexample: PGD did not move through the step"
    x = np.asarray(cex.x, dtype=F32).reshape(1, -1)
    y = ort_run_batch(ort_session(p.model_path), x)[0]
    assert y[0] >= y[1]  # onnxruntime agrees: the property fails there
    if step == "Softmax":
        assert x.astype(np.float64).sum() > 3.959
    else:
        assert np.all(x >= (0.99 if step == "Sign" else 1.0) - 1e-6)


def test_sign_and_floor_surrogate_gradients():
    x = torch.tensor([-2.0, -1.5, -0.5, 0.0, 0.5, 0.99, 2.0], dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(node_forward(Sign(), x).sum(), x)
    assert torch.equal(g, torch.ones_like(x))  # straight-through, unclipped (STE_WINDOW)
    (g,) = torch.autograd.grad(node_forward(Floor(), x).sum(), x)
    assert torch.equal(g, torch.ones_like(x))  # the identity's
    assert torch.equal(node_forward(Sign(), x), torch.sign(x)) and torch.equal(node_forward(Floor(), x),
                                                                               torch.floor(x))


# --------------------------------------------------------------------------- ml4acopf_2024
ML4ACOPF = BENCH / "vnncomp2024" / "ml4acopf_2024" / "onnx"


@pytest.mark.skipif(not (ML4ACOPF / "14_ieee_ml4acopf-linear-residual.onnx.gz").exists(),
                    reason="ml4acopf_2024 not found")
def test_ml4acopf_linear_residual_loads_and_matches_onnxruntime():
    net = ML4ACOPF / "14_ieee_ml4acopf-linear-residual.onnx.gz"
    model = load_model(read_model_bytes(net), str(net))
    g = model.graph
    assert "Floor" in {n.op.kind for n in g.nonlinear_nodes()}
    x = np.random.default_rng(0).random((8, g.n_inputs)).astype(F32)
    with torch.no_grad():
        ours = g.forward(torch.tensor(x)).double().numpy()
    ref = ort_run_batch(ort_session(net), x)
    assert rel_err(ours, ref) <= 1e-4
