"""Tests of the Wong-Kolter dual network backend."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import BENCH, ZOO, make_fc, make_residual, needs_bench, read_expected

from backends.dual import dual_network_bound, relu_slopes, wk_intermediate_bounds
from backends.encoding import encode_network
from backends.runner import run_backend
from backends.solvers import get_solver
from frontends.load import load_problem
from frontends.onnx.loader import graph_from_onnx
from verifier.bounds import intermediate_bounds
from verifier.bounds.crown import backward_lower, pre_activation_nodes
from verifier.ir.deadline import Deadline
from verifier.ir.result import Verdict
from verifier.settings.options import VerifyOptions


def _graph(model):
    return graph_from_onnx(model, dtype=torch.float64)


def _setup(graph, seed, radius=0.4, k=3):
    rng = np.random.default_rng(seed)
    c = rng.uniform(-1, 1, graph.n_inputs)
    lo, hi = c - radius, c + radius
    xl, xh = torch.tensor(lo)[None], torch.tensor(hi)[None]
    C = torch.tensor(rng.standard_normal((k, graph.n_outputs)))
    d = torch.tensor(rng.standard_normal(k) * 0.1)
    return lo, hi, xl, xh, C, d


@pytest.mark.parametrize("kind", sorted(ZOO))
def test_dual_equals_crown_with_wk_slopes(kind):
    """J(nu) equals the CROWN bound whose lower ReLU slope is u/(u-l), on every model kind of the zoo."""
    graph = _graph(ZOO[kind](3))
    lo, hi, xl, xh, C, d = _setup(graph, 3)
    pre = intermediate_bounds(graph, xl, xh, "crown")
    cert = dual_network_bound(graph, C, d, xl, xh, pre)
    alphas = {}
    for node in graph.nonlinear_nodes():
        l, u = pre[node.inputs[0]]
        D, _ = relu_slopes(l, u)
        alphas[node.name] = D.unsqueeze(1)
    A0 = C.reshape(1, C.shape[0], *graph.output_shape)
    ref = backward_lower(graph, graph.output_name, A0, xl, xh, pre, alphas) - d
    assert torch.allclose(cert.value, ref, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_dual_bound_below_lp_and_samples(seed):
    graph = _graph(make_fc(seed, sizes=(3, 12, 12, 3)))
    lo, hi, xl, xh, C, d = _setup(graph, seed, 0.5, k=2)
    pre = intermediate_bounds(graph, xl, xh, "crown")
    cert = dual_network_bound(graph, C, d, xl, xh, pre)
    J = cert.value[0].numpy()
    enc = encode_network(graph, pre, lo, hi, "lp")
    s = get_solver("highs")
    for i in range(C.shape[0]):
        model = enc.with_objective(C[i:i + 1].numpy(), d[i:i + 1].numpy())
        lp = s.solve(model).objective
        assert J[i] <= lp + 1e-7, "the dual bound exceeds the LP optimum it is a dual of"
    x = np.random.default_rng(seed).uniform(lo, hi, size=(4000, lo.size))
    vals = graph.forward(torch.tensor(x)).numpy() @ C.numpy().T - d.numpy()
    assert np.all(J[None] <= vals.min(0) + 1e-9)
    # and it is not vacuous: on this box it is within a few units of the sampled minimum
    assert np.all(J > vals.min(0) - 50)


def test_certificate_check_and_tampering():
    graph = _graph(make_residual(5))
    lo, hi, xl, xh, C, d = _setup(graph, 5)
    pre = intermediate_bounds(graph, xl, xh, "crown")
    cert = dual_network_bound(graph, C, d, xl, xh, pre)
    ok, J, res = cert.check(graph, C, d, xl, xh)
    assert ok and res < 1e-10
    assert torch.allclose(J, cert.value)
    # change nu at one interior node: the relations no longer hold
    name = pre_activation_nodes(graph)[-1]
    cert.nu[name] = cert.nu[name] * 1.01 + 0.01
    ok2, _, res2 = cert.check(graph, C, d, xl, xh)
    assert not ok2 and res2 > 1e-4
    # a certificate for other bounds does not check against a different claimed value
    cert3 = dual_network_bound(graph, C, d, xl, xh, pre)
    cert3.value = cert3.value + 0.5
    assert not cert3.check(graph, C, d, xl, xh)[0]


def test_wk_intermediate_bounds_are_valid():
    graph = _graph(make_fc(2, sizes=(4, 10, 10, 10, 2)))
    lo, hi, xl, xh, C, d = _setup(graph, 2, 0.5)
    b = wk_intermediate_bounds(graph, xl, xh)
    x = torch.tensor(np.random.default_rng(0).uniform(lo, hi, size=(3000, lo.size)))
    vals = graph.forward_all(x)
    for name in pre_activation_nodes(graph):
        l, u = b[name]
        v = vals[name]
        assert torch.all(v >= l - 1e-9) and torch.all(v <= u + 1e-9), name
    # W&K bounds with the u/(u-l) slope are never tighter than IBP-intersected... but they are finite and
    # strictly tighter than pure IBP on the deepest layer
    ibp = graph.ibp(xl, xh)
    last = pre_activation_nodes(graph)[-1]
    assert float((b[last][1] - b[last][0]).sum()) < float((ibp[last][1] - ibp[last][0]).sum())


def test_dual_backend_with_own_bounds_and_certificate():
    from backends.backend import get_backend
    from backends.core_bounds import compute_core_bounds
    from verifier.ir.spec import Disjunct, Spec

    graph = _graph(make_fc(4, sizes=(3, 8, 8, 2)))
    lo, hi = np.full(3, -0.3), np.full(3, 0.3)
    spec = Spec(3, 2, (Disjunct(lo, hi, np.array([[1.0, -1.0]]), np.array([-100.0])),
                       Disjunct(lo, hi, np.array([[-1.0, 1.0]]), np.array([-100.0]))))
    core = compute_core_bounds(graph, spec)
    for inter in ("core", "dual"):
        r = get_backend("dual", intermediate=inter, keep_certificate=True).run(graph, spec, core)
        assert r.verdict == Verdict.UNSAT  # |y0 - y1| is far below 100 on this box
        assert r.stats["certificate_residual"] < 1e-10
        assert len(r.stats["certificates"]) == 1 and r.bound > 0


@needs_bench
def test_dual_method_on_test_benchmark():
    folder = BENCH / "test"
    for (onnx_rel, vnn_rel), exp in sorted(read_expected(folder).items()):
        prob = load_problem(folder / onnx_rel, folder / vnn_rel)
        r = run_backend("dual", prob, VerifyOptions(timeout=30), Deadline(30))
        assert r.verdict != Verdict.SAT  # never sat without a validated point
        if exp == "sat":
            assert r.verdict == Verdict.UNKNOWN and r.bound < 0
        else:  # all four unsat test instances are within reach of one backward pass
            assert r.verdict == Verdict.UNSAT, (onnx_rel, r.summary())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_dual_on_cuda_matches_cpu():
    graph = _graph(make_fc(6, sizes=(3, 16, 16, 3)))
    lo, hi, xl, xh, C, d = _setup(graph, 6)
    pre = intermediate_bounds(graph, xl, xh, "crown")
    cpu = dual_network_bound(graph, C, d, xl, xh, pre).value
    g2 = graph.to(device="cuda")
    pre2 = {k: (a.cuda(), b.cuda()) for k, (a, b) in pre.items()}
    gpu = dual_network_bound(g2, C, d, xl, xh, pre2).value.cpu()
    assert torch.allclose(cpu, gpu, atol=1e-9)
