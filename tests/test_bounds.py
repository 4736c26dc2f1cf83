"""Soundness and ordering of the bound core (verifier/bounds: IBP, CROWN, alpha-CROWN).

Oracles used here (DESIGN.md, "Bounds"):
- every sampled input's objective value ``C y - d`` (and every node's value) lies inside every
  computed bound; the samples are uniform points, box corners and points found by signed
  gradient descent toward the minimum / maximum of each row (evaluated in float64);
- alpha-CROWN is never looser than CROWN on the same intermediate bounds;
- on tiny networks (2 inputs) the exact minimum, found by enumerating every ReLU activation
  pattern and solving one LP per pattern (scipy's HiGHS), is >= every lower bound;
- float32 and float64 bounds agree, and the rounding allowance ``tol`` covers their difference.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import BENCH, ZOO, Builder, make_fc, needs_bench
from scipy.optimize import linprog
from test_onnx_loader import OP_CASES, single_op_model

import verifier.bounds.crown as crown_module
from frontends.onnx.loader import graph_from_onnx, load_onnx
from frontends.vnnlib.v1 import load_vnnlib
from verifier.bounds import ObjectiveBounds, intermediate_bounds, objective_bounds
from verifier.bounds.crown import pre_activation_nodes
from verifier.bounds.forward import forward_bounds
from verifier.bounds.spec_bounds import stacked_rows
from verifier.ir.errors import UnsupportedError
from verifier.ir.ops import Linear, MaxPool, Op, ReLU
from verifier.settings import BoundSettings

METHODS = ("ibp", "crown", "alpha-crown")
F64 = torch.float64


# --------------------------------------------------------------------------- sampling
def pgd_points(g64, C: torch.Tensor, lo: np.ndarray, hi: np.ndarray, starts: int, steps: int, rng) -> np.ndarray:
    """End points of signed-gradient descent on ``+C_k y`` and ``-C_k y`` for every row k."""
    K, n = C.shape[0], lo.size
    lo_t, hi_t = torch.tensor(lo, dtype=F64), torch.tensor(hi, dtype=F64)
    width = hi_t - lo_t
    Cs = torch.cat([C, -C]).to(F64)  # (2K, n_out)
    x = lo_t + torch.tensor(rng.random((2 * K, starts, n))) * width
    for step in range(steps):
        x.requires_grad_(True)
        y = g64.forward(x.reshape(-1, n)).reshape(2 * K, starts, -1)
        obj = torch.einsum("ko,kso->ks", Cs, y).sum()
        (g,) = torch.autograd.grad(obj, x)
        with torch.no_grad():
            frac = 0.15 * (1 - step / steps) + 0.002
            x = torch.minimum(torch.maximum(x - frac * width * torch.sign(g), lo_t), hi_t)
    return x.detach().reshape(-1, n).numpy()


def sample_inputs(g64, C, lo, hi, rng, n_uniform=2000, starts=12, steps=40) -> np.ndarray:
    n = lo.size
    pts = [lo + rng.random((n_uniform, n)) * (hi - lo)]
    if n <= 10:  # every corner
        corners = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(float)
    else:  # random corners
        corners = rng.integers(0, 2, (256, n)).astype(float)
    pts.append(lo + corners * (hi - lo))
    pts.append(pgd_points(g64, C, lo, hi, starts, steps, rng))
    return np.concatenate(pts)


def objective_values(g64, C, d, X) -> np.ndarray:
    with torch.no_grad():
        y = g64.forward(torch.tensor(X, dtype=F64))
    return (y @ C.to(F64).T - d.to(F64)).numpy()  # (N, K)


def boxes(lo, hi):
    return torch.tensor(lo, dtype=F64).reshape(1, -1), torch.tensor(hi, dtype=F64).reshape(1, -1)


def n_unstable(pre) -> int:
    return sum(int(((lo < 0) & (hi > 0)).sum()) for lo, hi in pre.values())


def check_sound(g32, g64, C, d, lo, hi, X, methods=METHODS, settings=None):
    """Every method's [lower, upper] contains every sampled value, in float32 and float64."""
    vals = objective_values(g64, C, d, X)
    vmin, vmax = vals.min(0), vals.max(0)
    x_lo, x_hi = boxes(lo, hi)
    out = {}
    for g, dt in ((g32, "f32"), (g64, "f64")):
        for m in methods:
            ob = objective_bounds(g, C, d, x_lo, x_hi, settings or BoundSettings(m), need_upper=True)
            assert ob.lower.dtype == F64 and ob.lower.shape == (1, C.shape[0])
            lower, upper, tol = ob.lower[0].numpy(), ob.upper[0].numpy(), ob.tol[0].numpy()
            slack = tol + 1e-9 * (1 + np.abs(vmin))
            assert np.all(lower <= vmin + slack), f"{m}/{dt}: lower {lower} above sampled min {vmin}"
            slack = tol + 1e-9 * (1 + np.abs(vmax))
            assert np.all(upper >= vmax - slack), f"{m}/{dt}: upper {upper} below sampled max {vmax}"
            out[(m, dt)] = ob
    return out, vmin, vmax


def has_forward_rules(g) -> bool:
    """Every node has a forward-mode linear rule (forward_bounds supports the graph)."""
    return all(type(n.op).linear_forward is not Op.linear_forward for n in g.nodes if n.op.affine) and \
        all(type(n.op).relax_forward is not Op.relax_forward for n in g.nonlinear_nodes())


def bound_methods(g) -> tuple[str, ...]:
    """The objective methods that apply: alpha-CROWN optimises ReLU slopes only; MaxPool has no
    linear relaxation (interval bounds only)."""
    kinds = {type(n.op) for n in g.nonlinear_nodes()}
    if MaxPool in kinds:
        return ("ibp",)
    return METHODS if kinds <= {ReLU} else ("ibp", "crown")


def node_methods(g) -> tuple[str, ...]:
    kinds = {type(n.op) for n in g.nonlinear_nodes()}
    if MaxPool in kinds:
        return ("ibp",)
    return ("ibp", "crown", "forward")


def check_nodes(g32, g64, lo, hi, X, methods=("ibp", "crown", "forward")):
    """intermediate_bounds (and forward_bounds) of every node contain the node's value at every sample."""
    with torch.no_grad():
        vals = g64.forward_all(torch.tensor(X, dtype=F64))
    x_lo, x_hi = boxes(lo, hi)
    for g, rel in ((g32, 1e-5), (g64, 1e-10)):
        for m in methods:
            if m == "forward":
                if not has_forward_rules(g):
                    continue
                b = forward_bounds(g, x_lo.to(g.dtype), x_hi.to(g.dtype))
            else:
                b = intermediate_bounds(g, x_lo.to(g.dtype), x_hi.to(g.dtype), m)
            assert set(b) >= {n.name for n in g.nodes}
            for name, v in vals.items():
                blo, bhi = (t.double() for t in b[name])
                assert blo.shape[1:] == v.shape[1:]
                eps = rel * (1 + torch.maximum(blo.abs(), bhi.abs()))
                below = (v < blo - eps).sum().item()
                above = (v > bhi + eps).sum().item()
                assert below == 0 and above == 0, f"{m}/{g.dtype}: node {name}: {below} below, {above} above"


# --------------------------------------------------------------------------- generated networks
def zoo_problem(kind, seed, radius=0.4, k=4):
    model = ZOO[kind](seed)
    g32, g64 = graph_from_onnx(model, kind), graph_from_onnx(model, kind, dtype=F64)
    rng = np.random.default_rng(seed + 100)
    c = rng.uniform(-1, 1, g32.n_inputs)
    lo, hi = c - radius, c + radius
    C = torch.tensor(rng.standard_normal((k, g32.n_outputs)))
    d = torch.tensor(rng.standard_normal(k))
    return g32, g64, C, d, lo, hi, rng


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind", sorted(ZOO))
def test_generated_network_bounds_contain_samples(kind, seed):
    g32, g64, C, d, lo, hi, rng = zoo_problem(kind, seed)
    X = sample_inputs(g64, C, lo, hi, rng, n_uniform=1500)
    obs, vmin, vmax = check_sound(g32, g64, C, d, lo, hi, X)
    pre = obs[("crown", "f64")].pre
    assert n_unstable({k: pre[k] for k in pre_activation_nodes(g64)}) > 0, "box too small to test relaxations"
    check_nodes(g32, g64, lo, hi, X)
    # alpha-CROWN is never looser than CROWN (both on CROWN intermediate bounds)
    for dt in ("f32", "f64"):
        a, c = obs[("alpha-crown", dt)], obs[("crown", dt)]
        assert torch.all(a.lower - a.tol >= c.lower - c.tol - 1e-12)
        assert torch.all(a.lower >= c.lower - 2 * c.tol)
    # the bounds are not vacuous: CROWN's gap to the sampled range is finite and ordered
    c64 = obs[("crown", "f64")]
    assert torch.all(c64.lower <= c64.upper)


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_operator_bounds_contain_samples(case):
    """Each single-operator model of the loader tests, bounded on a box."""
    build, in_shape, *out_shape = OP_CASES[case]
    model = single_op_model(build, in_shape, out_shape=out_shape[0] if out_shape else None)
    g32, g64 = graph_from_onnx(model, case), graph_from_onnx(model, case, dtype=F64)
    rng = np.random.default_rng(3)
    c = rng.uniform(-1, 1, g32.n_inputs)
    lo, hi = c - 0.5, c + 0.5
    C = torch.tensor(rng.standard_normal((2, g32.n_outputs)))
    d = torch.tensor(rng.standard_normal(2))
    X = sample_inputs(g64, C, lo, hi, rng, n_uniform=300, starts=4, steps=15)
    check_sound(g32, g64, C, d, lo, hi, X, methods=bound_methods(g64))
    check_nodes(g32, g64, lo, hi, X, methods=node_methods(g64))
    if not g64.nonlinear_nodes() and g64.n_inputs <= 10:  # affine: CROWN is exact (corners are sampled)
        ob = objective_bounds(g64, C, d, *boxes(lo, hi), BoundSettings("crown"))
        assert np.allclose(ob.lower[0].numpy(), objective_values(g64, C, d, X).min(0), atol=1e-9)


def test_maxpool_network_bounds_sound():
    b = Builder(4, [1, 1, 4, 4])
    x = b.node("MaxPool", [b.conv(b.in_name, 1, 2)], kernel_shape=[2, 2], strides=[2, 2])
    model = b.model(b.gemm(b.flatten(x), 8, 2, relu=False))
    g32, g64 = graph_from_onnx(model), graph_from_onnx(model, dtype=F64)
    rng = np.random.default_rng(0)
    lo, hi = rng.uniform(-1, 0, 16), rng.uniform(0, 1, 16)
    C, d = torch.tensor(rng.standard_normal((2, 2))), torch.zeros(2)
    X = sample_inputs(g64, C, lo, hi, rng, n_uniform=2000)
    check_sound(g32, g64, C, d, lo, hi, X, methods=("ibp",))
    check_nodes(g32, g64, lo, hi, X, methods=("ibp",))
    # CROWN: either a clear UnsupportedError (no MaxPool relaxation yet) or a sound bound
    try:
        check_sound(g32, g64, C, d, lo, hi, X, methods=("crown",))
    except UnsupportedError as e:
        assert "MaxPool" in str(e)


def test_alpha_crown_improves_on_crown():
    """Summed over several networks and rows, alpha-CROWN must buy something over CROWN."""
    gain = 0.0
    for seed in range(3):
        g32, g64, C, d, lo, hi, _ = zoo_problem("fc", seed, radius=0.8, k=6)
        x_lo, x_hi = boxes(lo, hi)
        pre = intermediate_bounds(g64, x_lo, x_hi, "crown")
        c = objective_bounds(g64, C, d, x_lo, x_hi, BoundSettings("crown"), pre=pre)
        a = objective_bounds(g64, C, d, x_lo, x_hi, BoundSettings("alpha-crown", alpha_iters=40), pre=pre)
        assert torch.all(a.lower >= c.lower - 1e-12)
        gain += float((a.lower - c.lower).sum())
    assert gain > 1e-3


def test_batched_boxes_equal_separate_calls():
    g32, g64, C, d, lo, hi, rng = zoo_problem("residual", 3)
    lo2, hi2 = lo + 0.1, hi + 0.3
    x_lo = torch.tensor(np.stack([lo, lo2]))
    x_hi = torch.tensor(np.stack([hi, hi2]))
    for m in METHODS:
        both = objective_bounds(g64, C, d, x_lo, x_hi, BoundSettings(m), need_upper=True)
        for i in range(2):
            one = objective_bounds(g64, C, d, x_lo[i:i + 1], x_hi[i:i + 1], BoundSettings(m), need_upper=True)
            if m == "alpha-crown":  # optimised jointly: only the CROWN floor is common
                assert torch.all(both.lower[i] >= one.lower[0] - 0.5 * abs(one.lower[0]) - 1)
                continue
            assert torch.allclose(both.lower[i], one.lower[0], rtol=1e-9, atol=1e-9), m
            assert torch.allclose(both.upper[i], one.upper[0], rtol=1e-9, atol=1e-9), m


def test_fixed_split_bounds_are_sound_on_their_half():
    """``fixed`` bounds (a ReLU split) give bounds valid for the inputs that meet the split."""
    g32, g64, C, d, lo, hi, rng = zoo_problem("fc", 5, radius=0.8)
    x_lo, x_hi = boxes(lo, hi)
    pre = intermediate_bounds(g64, x_lo, x_hi, "crown")
    name = pre_activation_nodes(g64)[1]
    plo, phi = pre[name]
    j = int(torch.nonzero(((plo < 0) & (phi > 0)).reshape(-1))[0])
    X = lo + rng.random((20000, lo.size)) * (hi - lo)
    with torch.no_grad():
        vals = {k: v.reshape(len(X), -1) for k, v in g64.forward_all(torch.tensor(X)).items()}
    for active in (True, False):
        flo, fhi = plo.clone(), phi.clone()
        if active:
            flo.reshape(-1)[j] = 0.0
        else:
            fhi.reshape(-1)[j] = 0.0
        b = intermediate_bounds(g64, x_lo, x_hi, "crown", fixed={name: (flo, fhi)})
        keep = (vals[name][:, j] >= 0) if active else (vals[name][:, j] <= 0)
        assert keep.sum() > 10
        for node, v in vals.items():
            blo, bhi = (t.reshape(1, -1) for t in b[node])
            assert torch.all(v[keep] >= blo - 1e-9) and torch.all(v[keep] <= bhi + 1e-9), node
        assert (b[name][0].reshape(-1)[j] >= 0) if active else (b[name][1].reshape(-1)[j] <= 0)
        ob = objective_bounds(g64, C, d, x_lo, x_hi, BoundSettings("crown"), pre=b)
        vv = (vals[g64.output_name] @ C.T - d)[keep]
        assert torch.all(ob.lower[0] <= vv.min(0).values + 1e-9)


# --------------------------------------------------------------------------- exact optimum (tiny nets)
def relu_layers(g64):
    """[(W (in, out), b)] of a plain Linear/ReLU chain."""
    layers = []
    for n in g64.nodes:
        if isinstance(n.op, Linear):
            b = n.op.bias if n.op.bias is not None else torch.zeros(n.op.weight.shape[1], dtype=F64)
            layers.append((n.op.weight.numpy(), b.numpy().reshape(-1)))
        else:
            assert isinstance(n.op, ReLU)
    return layers


def activation_regions(layers, lo, hi):
    """Every feasible ReLU activation pattern: (A_ub, b_ub, M, m) with y = x @ M + m on {A_ub x <= b_ub}."""
    n = lo.size
    bounds = list(zip(lo, hi))
    regions = []

    def feasible(A, b):
        if not A:
            return True
        r = linprog(np.zeros(n), A_ub=np.array(A), b_ub=np.array(b), bounds=bounds, method="highs")
        return r.status == 0

    def rec(k, M, m, A, b, j):
        W, bias = layers[k]
        if k == len(layers) - 1:
            regions.append((np.array(A).reshape(-1, n), np.array(b), M @ W, m @ W + bias))
            return
        Z, z = M @ W, m @ W + bias  # pre-activation of layer k = x @ Z + z
        width = Z.shape[1]
        if j == width:  # every neuron of layer k decided: pass to layer k + 1
            act = np.array([s for s in pattern[k]])
            rec(k + 1, Z * act, z * act, A, b, 0)
            return
        for active in (1, 0):
            # active: z_j >= 0  <=>  -Z_j x <= z_j ; inactive: Z_j x <= -z_j
            row, rhs = (-Z[:, j], z[j]) if active else (Z[:, j], -z[j])
            A2, b2 = A + [row], b + [rhs]
            if feasible(A2, b2):
                pattern[k].append(active)
                rec(k, M, m, A2, b2, j + 1)
                pattern[k].pop()

    pattern = [[] for _ in layers]
    rec(0, np.eye(n), np.zeros(n), [], [], 0)
    return regions


def exact_min(regions, c, lo, hi):
    """min over the box of c . y (c on the outputs): one LP per activation region."""
    best, arg = np.inf, None
    for A, b, M, m in regions:
        r = linprog(M @ c, A_ub=A if len(A) else None, b_ub=b if len(A) else None, bounds=list(zip(lo, hi)),
                    method="highs")
        if r.status == 0 and r.fun + m @ c < best:
            best, arg = r.fun + m @ c, r.x
    return best, arg


@pytest.mark.parametrize("seed,sizes", [(0, (2, 5, 4, 3)), (1, (2, 4, 5, 3)), (2, (2, 5, 5, 2)), (3, (2, 4, 4, 3))])
def test_lower_bounds_below_exact_minimum(seed, sizes):
    model = make_fc(seed, sizes=sizes)
    g32, g64 = graph_from_onnx(model), graph_from_onnx(model, dtype=F64)
    rng = np.random.default_rng(seed)
    lo, hi = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    C = torch.tensor(rng.standard_normal((3, sizes[-1])))
    d = torch.zeros(3)
    regions = activation_regions(relu_layers(g64), lo, hi)
    assert len(regions) >= 4
    exact = np.empty(3)
    exact_max = np.empty(3)
    for k in range(3):
        c = C[k].numpy()
        exact[k], x_star = exact_min(regions, c, lo, hi)
        # the oracle is consistent: the network at the LP minimiser has that value
        y_star = g64.forward(torch.tensor(x_star).reshape(1, -1))[0].numpy()
        assert abs(y_star @ c - exact[k]) <= 1e-6 * (1 + abs(exact[k]))
        exact_max[k] = -exact_min(regions, -c, lo, hi)[0]
    # and it is below every sampled value
    X = sample_inputs(g64, C, lo, hi, rng, n_uniform=3000)
    vals = objective_values(g64, C, d, X)
    assert np.all(exact <= vals.min(0) + 1e-7) and np.all(exact_max >= vals.max(0) - 1e-7)
    obs, _, _ = check_sound(g32, g64, C, d, lo, hi, X)
    for (m, dt), ob in obs.items():
        tol = ob.tol[0].numpy() + 1e-6
        assert np.all(ob.lower[0].numpy() <= exact + tol), f"{m}/{dt}: {ob.lower[0].numpy()} > exact {exact}"
        assert np.all(ob.upper[0].numpy() >= exact_max - tol), f"{m}/{dt}: {ob.upper[0].numpy()} < {exact_max}"
    a, c = obs[("alpha-crown", "f64")], obs[("crown", "f64")]
    assert torch.all(a.lower >= c.lower - 1e-12)


# --------------------------------------------------------------------------- benchmark networks
BENCH_CASES = {
    "acasxu_1_1_prop2": ("acasxu/onnx/ACASXU_run2a_1_1_batch_2000.onnx", "acasxu/vnnlib/prop_2.vnnlib", 1.0),
    "mnist_256x2": ("mnist_fc/onnx/mnist-net_256x2.onnx", "mnist_fc/vnnlib/prop_1_0.03.vnnlib", 1.0),
    "oval21_base_small_eps": ("oval21/onnx/cifar_base_kw.onnx",
                              "oval21/vnnlib/cifar_base_kw-img8194-eps0.018300653594771243.vnnlib", 0.25),
    "test_small": ("test/test_small.onnx", "test/test_small.vnnlib", 1.0),
    "test_sat": ("test/test_sat.onnx", "test/test_prop.vnnlib", 1.0),
    "test_unsat": ("test/test_unsat.onnx", "test/test_prop.vnnlib", 1.0),
}


def bench_problem(case):
    onnx_rel, vnn_rel, shrink = BENCH_CASES[case]
    g32 = load_onnx(BENCH / onnx_rel)
    g64 = g32.to(dtype=F64)
    spec = load_vnnlib(BENCH / vnn_rel, g32.n_inputs, g32.n_outputs)
    lo, hi, idx = spec.regions()[0]
    c = (lo + hi) / 2
    lo, hi = c - shrink * (c - lo), c + shrink * (hi - c)
    C, d, _ = stacked_rows(spec, idx)
    return g32, g64, C, d, lo, hi


@needs_bench
@pytest.mark.parametrize("case", sorted(BENCH_CASES))
def test_benchmark_network_bounds_contain_samples(case):
    g32, g64, C, d, lo, hi = bench_problem(case)
    rng = np.random.default_rng(7)
    big = g32.n_inputs > 1000
    X = sample_inputs(g64, C, lo, hi, rng, n_uniform=500 if big else 2000, starts=4 if big else 12,
                      steps=20 if big else 40)
    check_sound(g32, g64, C, d, lo, hi, X, methods=("ibp", "crown") if big else METHODS)
    # forward-mode bounds carry (n_inputs x width) per node: meant for small inputs only
    check_nodes(g32, g64, lo, hi, X[:1000], methods=("ibp", "crown") if big else ("ibp", "crown", "forward"))


@pytest.mark.parametrize("act", ["Sigmoid", "Tanh", "mixed"])
def test_sigmoid_tanh_network_bounds_contain_samples(act):
    b = Builder(11, [1, 3])
    x = b.in_name
    for i, (n_in, n_out) in enumerate([(3, 8), (8, 8), (8, 6)]):
        kind = act if act != "mixed" else ("Sigmoid", "Relu", "Tanh")[i]
        x = b.node(kind, [b.gemm(x, n_in, n_out, relu=False)])
    model = b.model(b.gemm(x, 6, 3, relu=False))
    g32, g64 = graph_from_onnx(model), graph_from_onnx(model, dtype=F64)
    rng = np.random.default_rng(5)
    for radius in (0.05, 1.0, 4.0):  # near-linear pieces up to saturated ones
        c = rng.uniform(-1, 1, 3)
        lo, hi = c - radius, c + radius
        C, d = torch.tensor(rng.standard_normal((4, 3))), torch.tensor(rng.standard_normal(4))
        X = sample_inputs(g64, C, lo, hi, rng, n_uniform=2000)
        check_sound(g32, g64, C, d, lo, hi, X, methods=("ibp", "crown"))
        check_nodes(g32, g64, lo, hi, X)


@needs_bench
def test_sigmoid_benchmark_network_bounds_contain_samples():
    g32 = load_onnx(BENCH / "eran/nets/ffnnSIGMOID__Point_6x200.onnx")
    spec = load_vnnlib(BENCH / "eran/specs/mnist/mnist_spec_idx_8098_eps_0.01500.vnnlib", g32.n_inputs,
                       g32.n_outputs)
    lo, hi, idx = spec.regions()[0]
    C, d, _ = stacked_rows(spec, idx)
    g64 = g32.to(dtype=F64)
    X = sample_inputs(g64, C, lo, hi, np.random.default_rng(0), n_uniform=500, starts=4, steps=20)
    check_sound(g32, g64, C, d, lo, hi, X, methods=("ibp", "crown"))
    check_nodes(g32, g64, lo, hi, X, methods=("ibp", "crown"))


@needs_bench
@pytest.mark.parametrize("case", ["mnist_256x2", "acasxu_1_1_prop2", "test_unsat"])
def test_float32_and_float64_bounds_agree(case):
    g32, g64, C, d, lo, hi = bench_problem(case)
    x_lo, x_hi = boxes(lo, hi)
    for m in ("ibp", "crown"):
        b32 = objective_bounds(g32, C, d, x_lo, x_hi, BoundSettings(m))
        b64 = objective_bounds(g64, C, d, x_lo, x_hi, BoundSettings(m))
        diff = (b32.lower - b64.lower).abs()
        assert torch.all(diff <= 1e-4 * (1 + b64.lower.abs())), (m, diff)
        # the float32 rounding allowance covers the float32 error
        assert torch.all(b64.lower >= b32.lower - b32.tol), m
        assert torch.all(b32.tol > b64.tol)


# --------------------------------------------------------------------------- rounding tolerance, settings
def test_proven_needs_margin_beyond_rounding_tolerance():
    ob = ObjectiveBounds(lower=torch.tensor([[1e-7, 2e-6, -1.0]], dtype=F64),
                         tol=torch.tensor([[1e-6, 1e-6, 1e-6]], dtype=F64), pre={})
    assert ob.proven().tolist() == [[False, True, False]]


def test_bound_just_above_zero_is_not_proven():
    """Shift d so the real CROWN lower bound lands inside (0, tol]: not proven; beyond tol: proven."""
    g32, g64, C, d, lo, hi, _ = zoo_problem("fc", 2, k=3)
    x_lo, x_hi = boxes(lo, hi)
    base = objective_bounds(g32, C, torch.zeros(3), x_lo, x_hi, BoundSettings("crown"))
    tol = base.tol[0]
    assert torch.all(tol > 0)
    near = objective_bounds(g32, C, base.lower[0] - 0.3 * tol, x_lo, x_hi, BoundSettings("crown"))
    assert torch.all(near.lower > 0) and not near.proven().any(), (near.lower, near.tol)
    far = objective_bounds(g32, C, base.lower[0] - 5 * tol, x_lo, x_hi, BoundSettings("crown"))
    assert far.proven().all()
    # float64 has a far smaller allowance
    b64 = objective_bounds(g64, C, torch.zeros(3), x_lo, x_hi, BoundSettings("crown"))
    assert torch.all(b64.tol < 1e-6 * tol)


def make_cancelling(seed=6):
    """y = W2 relu(W1 x + b1) + b2 with 256 large biases (1e4..1e5, every ReLU stably active) that
    cancel in b2: the network is linear and tiny in value, but the float32 sum of the bias terms
    in the backward pass is off by far more than the rounding allowance ``tol``."""
    rng = np.random.default_rng(seed)
    b = Builder(seed, [1, 2])
    W1 = (rng.standard_normal((256, 2)) * 0.1).astype(np.float32)
    b1 = rng.uniform(1e4, 1e5, 256).astype(np.float32)
    W2 = rng.choice([-1.0, 1.0], (1, 256)).astype(np.float32)
    b2 = np.array([-(W2.astype(np.float64) @ b1.astype(np.float64))[0]], dtype=np.float32)
    h = b.node("Relu", [b.node("Gemm", [b.in_name, b.const(W1), b.const(b1)], transB=1)])
    return b.model(b.node("Gemm", [h, b.const(W2), b.const(b2)], transB=1))


def test_float32_backward_rounding_cannot_prove_a_false_row():
    model = make_cancelling()
    g32, g64 = graph_from_onnx(model), graph_from_onnx(model, dtype=F64)
    x_lo, x_hi = torch.zeros(1, 2, dtype=F64), torch.ones(1, 2, dtype=F64)
    C, d = torch.ones(1, 1, dtype=F64), torch.zeros(1, dtype=F64)
    exact = objective_bounds(g64, C, d, x_lo, x_hi, BoundSettings("crown"))  # linear network: CROWN is exact
    assert exact.lower.item() < 0  # the row is violated at some input ...
    with torch.no_grad():
        y = g64.forward(torch.tensor([[0.0, 0.0]], dtype=F64))
    assert y.item() < 0  # ... for example at the origin
    for m in METHODS:
        ob = objective_bounds(g32, C, d, x_lo, x_hi, BoundSettings(m))
        assert not ob.proven().any(), f"{m}: float32 lower {ob.lower.item():.4g} > tol {ob.tol.item():.3g}"


def test_bound_settings_validated_and_frozen():
    with pytest.raises(ValueError, match="unknown bound method"):
        BoundSettings(method="crwon")
    s = BoundSettings()
    with pytest.raises(Exception):
        s.method = "ibp"  # frozen
    assert set(METHODS) == {"ibp", "crown", "alpha-crown"}


def test_conv_backward_matches_vector_jacobian_product():
    """Conv.backward's transposed convolution equals autograd's vector-Jacobian product, for strides,
    dilations, groups and asymmetric padding (the output padding and the crop are computed by hand)."""
    import itertools

    from verifier.ir.ops.affine import Conv
    from verifier.ir.ops.base import vjp_linear

    gen = torch.Generator().manual_seed(0)
    checked = 0
    for (cin, cout, grp), k, s, dil, pads, H in itertools.product(
            [(2, 4, 1), (4, 4, 2)], [1, 3, 4], [1, 2, 3], [1, 2], [(0, 0, 0, 0), (1, 1, 1, 1), (0, 1, 2, 0)], [7, 8]):
        W = torch.randn(cout, cin // grp, k, k, dtype=F64, generator=gen)
        conv = Conv(W, None, (s, s), pads, (dil, dil), grp)
        try:
            y = conv.forward(torch.zeros(1, cin, H, H, dtype=F64))
        except RuntimeError:  # kernel larger than the padded input
            continue
        A = torch.randn(3, *y.shape[1:], dtype=F64, generator=gen)
        got = conv.backward(A, [(cin, H, H)])[0][0]
        want = vjp_linear(lambda z: conv._conv(z, None), A, (cin, H, H))
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-12), (cin, cout, grp, k, s, dil, pads, H)
        checked += 1
    assert checked > 100


def test_crown_only_limits_the_refinement():
    """``crown_only`` refines the named nodes only; every node's bounds still contain the samples."""
    g32, g64, C, d, lo, hi, rng = zoo_problem("fc", 3, radius=0.8)
    x_lo, x_hi = boxes(lo, hi)
    pnodes = pre_activation_nodes(g64)
    full = intermediate_bounds(g64, x_lo, x_hi, "crown")
    ibp = intermediate_bounds(g64, x_lo, x_hi, "ibp")
    none = intermediate_bounds(g64, x_lo, x_hi, "crown", crown_only=set())
    last = intermediate_bounds(g64, x_lo, x_hi, "crown", crown_only={pnodes[-1]})
    everything = intermediate_bounds(g64, x_lo, x_hi, "crown", crown_only=set(pnodes))
    for p in pnodes:
        assert torch.equal(none[p][0], ibp[p][0]) and torch.equal(none[p][1], ibp[p][1])
        assert torch.equal(everything[p][0], full[p][0]) and torch.equal(everything[p][1], full[p][1])
    # the last node alone refined: tighter than interval bounds, no tighter than full CROWN
    width = lambda b, p: float((b[p][1] - b[p][0]).sum())  # noqa: E731
    assert width(last, pnodes[-1]) < width(ibp, pnodes[-1])
    assert width(last, pnodes[-1]) >= width(full, pnodes[-1]) - 1e-9
    X = lo + rng.random((5000, lo.size)) * (hi - lo)
    with torch.no_grad():
        vals = g64.forward_all(torch.tensor(X))
    for p in pnodes:
        v = vals[p].reshape(len(X), -1)
        assert torch.all(v >= last[p][0].reshape(1, -1) - 1e-9) and torch.all(v <= last[p][1].reshape(1, -1) + 1e-9)


def test_crown_only_masks_refine_chosen_boxes():
    """``crown_only`` as node -> (B,) mask (branch and bound: the domains whose split comes before the
    node) refines exactly those boxes, as a run on each box alone would; the others keep interval bounds."""
    g32, g64, C, d, lo, hi, rng = zoo_problem("fc", 3, radius=0.8)
    pnodes = pre_activation_nodes(g64)
    mid = (lo + hi) / 2
    parts = []  # four sub-boxes of the region: halves of the first two inputs
    for a in (0, 1):
        for b in (0, 1):
            l, h = lo.copy(), hi.copy()
            l[0], h[0] = (lo[0], mid[0]) if a == 0 else (mid[0], hi[0])
            l[1], h[1] = (lo[1], mid[1]) if b == 0 else (mid[1], hi[1])
            parts.append((l, h))
    x_lo = torch.tensor(np.stack([p[0] for p in parts]), dtype=F64)
    x_hi = torch.tensor(np.stack([p[1] for p in parts]), dtype=F64)
    masks = {pnodes[-1]: torch.tensor([True, False, True, False]), pnodes[1]: torch.tensor([False, True, True, False])}
    got = intermediate_bounds(g64, x_lo, x_hi, "crown", crown_only=masks)
    tightened = 0
    for i in range(4):
        alone = intermediate_bounds(g64, x_lo[i:i + 1], x_hi[i:i + 1], "crown",
                                    crown_only={p for p, m in masks.items() if bool(m[i])})
        for p in pnodes:
            assert torch.allclose(got[p][0][i], alone[p][0][0], atol=1e-12)
            assert torch.allclose(got[p][1][i], alone[p][1][0], atol=1e-12)
        if bool(masks[pnodes[-1]][i]):
            ibp = intermediate_bounds(g64, x_lo[i:i + 1], x_hi[i:i + 1], "ibp")
            w = lambda b: b[pnodes[-1]][1] - b[pnodes[-1]][0]  # noqa: E731
            tightened += int((w(alone) < w(ibp) - 1e-9).sum())
        X = parts[i][0] + rng.random((2000, lo.size)) * (parts[i][1] - parts[i][0])
        with torch.no_grad():
            vals = g64.forward_all(torch.tensor(X))
        for p in pnodes:
            v = vals[p].reshape(len(X), -1)
            assert torch.all(v >= got[p][0][i].reshape(1, -1) - 1e-9)
            assert torch.all(v <= got[p][1][i].reshape(1, -1) + 1e-9)
    assert tightened > 0  # the masked-in boxes really were refined beyond interval bounds


@pytest.mark.parametrize("act", ["Sigmoid", "Tanh", "Relu"])
def test_crown_bound_is_never_looser_than_the_interval_bound(act):
    """On a wide box (inputs in [-1000, 1000]) CROWN's linear relaxations of a Sigmoid are loose; the objective
    bound keeps, row by row, the better of CROWN's and the interval bound of the output (issue 22: a Sigmoid
    query that IBP proves ran to its deadline)."""
    b = Builder(3, [1, 3])
    h = b.node(act, [b.gemm("x", 3, 6, relu=False)])
    y = b.gemm(b.node(act, [b.gemm(h, 6, 5, relu=False)]), 5, 4, relu=False)
    g = graph_from_onnx(b.model(y))
    C = torch.tensor(np.random.default_rng(0).standard_normal((6, 4)))
    d = torch.zeros(6)
    lo, hi = torch.full((1, 3), -1000.0), torch.full((1, 3), 1000.0)
    ibp = objective_bounds(g, C, d, lo, hi, BoundSettings(method="ibp"))
    crown = objective_bounds(g, C, d, lo, hi, BoundSettings(method="crown"))
    assert bool(((crown.lower - crown.tol) >= (ibp.lower - ibp.tol) - 1e-9).all()), (crown.lower, ibp.lower)
    pts = lo + (hi - lo) * torch.rand(2000, 3, generator=torch.Generator().manual_seed(0))
    vals = g.forward(pts.to(g.dtype)).double() @ C.T - d  # every sampled value above the kept bound
    assert bool((vals >= crown.lower.double() - 1e-4).all())


def _sigmoid_query(tmp_path, offset: float):
    """One Sigmoid layer on inputs in [-1000, 1000] and the spec Y_0 >= (the interval bound's maximum) + offset."""
    rng = np.random.default_rng(0)
    b = Builder(0, [1, 3])
    w1, w2 = rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(1, 4)).astype(np.float32)
    s = b.node("Sigmoid", [b.node("Gemm", ["x", b.const(w1), b.const(np.zeros(4))], transB=1)])
    y = b.node("Gemm", [s, b.const(w2), b.const(np.zeros(1))], transB=1)
    onnx_path, spec_path = tmp_path / "sig.onnx", tmp_path / "sig.vnnlib"
    onnx_path.write_bytes(b.model(y).SerializeToString())
    top = float(np.maximum(w2, 0).sum())
    spec_path.write_text("".join(f"(declare-const X_{i} Real)\n" for i in range(3)) + "(declare-const Y_0 Real)\n"
                         + "".join(f"(assert (>= X_{i} -1000))\n(assert (<= X_{i} 1000))\n" for i in range(3))
                         + f"(assert (>= Y_0 {top + offset}))\n")
    return onnx_path, spec_path


def test_sigmoid_query_that_the_interval_bound_proves_is_unsat_under_auto_and_crown(tmp_path):
    """IBP proves Y_0 >= max + 0.01 on the Sigmoid net, CROWN alone does not (its bound there is -1.28); auto and
    crown answer unsat at once."""
    from verifier.api import verify

    onnx_path, spec_path = _sigmoid_query(tmp_path, 0.01)
    for method in ("auto", "crown"):
        r = verify(onnx_path, spec_path, method=method, timeout=20)
        assert r.verdict.value == "unsat", (method, r)


@pytest.mark.parametrize("method", ["alpha-crown", "dual"])
def test_method_that_cannot_handle_the_network_says_unknown_with_the_node(tmp_path, method):
    """alpha-CROWN and the dual bound support ReLU only: on a Sigmoid net whose property no interval bound proves
    they answer unknown (not error), naming the node once."""
    from verifier.api import verify

    onnx_path, spec_path = _sigmoid_query(tmp_path, -1e-4)
    r = verify(onnx_path, spec_path, method=method, timeout=20)
    assert r.verdict.value == "unknown", r
    assert "cannot decide this network" in r.message and "Sigmoid" in r.message and "''" not in r.message


def test_crown_rows_past_their_cost_cap_keep_the_interval_bounds(monkeypatch):
    """A node whose CROWN rows would cost more than ``MAX_ROWS_COST`` keeps its (sound) interval bounds instead of
    taking minutes: with the cap at 0 every node's CROWN bounds are the interval ones; with the default cap, tighter."""
    g64 = graph_from_onnx(make_fc(3, (4, 16, 16, 3)), "fc", dtype=torch.float64)
    lo, hi = torch.full((1, 4), -1.0, dtype=torch.float64), torch.ones(1, 4, dtype=torch.float64)
    ibp = intermediate_bounds(g64, lo, hi, "ibp")
    crown = intermediate_bounds(g64, lo, hi, "crown")
    last = pre_activation_nodes(g64)[-1]
    assert bool((crown[last][1] - crown[last][0] < ibp[last][1] - ibp[last][0] - 1e-9).any())
    monkeypatch.setattr(crown_module, "MAX_ROWS_COST", 0)
    capped = intermediate_bounds(g64, lo, hi, "crown")
    for name in pre_activation_nodes(g64):
        assert torch.equal(capped[name][0], ibp[name][0]) and torch.equal(capped[name][1], ibp[name][1])
