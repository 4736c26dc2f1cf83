"""The bound core and the branch and bound on a CUDA device (the whole module is skipped without one).

Same oracles as on the CPU: bounds contain every sampled value and agree with the CPU's; the branch
and bound on CUDA matches exact optima (vertex enumeration, HiGHS MILP) and the expected verdicts of
the shipped examples; every ``sat`` carries a counterexample validated by onnxruntime.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ZOO
from test_bab import OPTS, check_matches_exact_optimum, conv_milp_case, problem_for
from test_bounds import bound_methods, boxes, objective_values, sample_inputs, zoo_problem

from verifier.bounds import intermediate_bounds, objective_bounds
from verifier.ir.deadline import Deadline
from verifier.ir.result import Verdict
from verifier.methods.bab import run_bab
from verifier.settings import BoundSettings
from verifier.settings.bab import BaBSettings

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kind", sorted(ZOO))
def test_bounds_on_cuda_contain_samples_and_match_cpu(kind, seed):
    g32, g64, C, d, lo, hi, rng = zoo_problem(kind, seed)
    X = sample_inputs(g64, C, lo, hi, rng, n_uniform=1500)
    vals = objective_values(g64, C, d, X)
    vmin, vmax = vals.min(0), vals.max(0)
    x_lo, x_hi = boxes(lo, hi)
    for g in (g32, g64):
        gc = g.to(device="cuda")
        for m in bound_methods(g):
            cpu = objective_bounds(g, C, d, x_lo, x_hi, BoundSettings(m), need_upper=True)
            gpu = objective_bounds(gc, C.cuda(), d.cuda(), x_lo.cuda(), x_hi.cuda(), BoundSettings(m),
                                   need_upper=True)
            lower, upper, tol = (t[0].cpu().numpy() for t in (gpu.lower, gpu.upper, gpu.tol))
            slack = tol + 1e-9 * (1 + np.abs(vmin))
            assert np.all(lower <= vmin + slack), f"{m}/{g.dtype}: lower {lower} above sampled min {vmin}"
            slack = tol + 1e-9 * (1 + np.abs(vmax))
            assert np.all(upper >= vmax - slack), f"{m}/{g.dtype}: upper {upper} below sampled max {vmax}"
            if m == "alpha-crown":  # its steps may differ from the CPU's: never looser than CROWN on CUDA
                crown = objective_bounds(gc, C.cuda(), d.cuda(), x_lo.cuda(), x_hi.cuda(), BoundSettings("crown"))
                assert torch.all(gpu.lower - gpu.tol >= crown.lower - crown.tol - 1e-12)
            else:  # the same arithmetic as on the CPU, up to the order of the sums
                rel = 1e-4 if g.dtype == torch.float32 else 1e-10
                assert np.allclose(lower, cpu.lower[0].numpy(), rtol=rel, atol=rel), (m, lower, cpu.lower)
        b = intermediate_bounds(gc, x_lo.cuda().to(g.dtype), x_hi.cuda().to(g.dtype), "crown")
        assert all(t.is_cuda for lo_hi in b.values() for t in lo_hi)


@pytest.mark.parametrize("strategy", ["input", "relu", "relu-basic", "relu-fixed", "relu-milp", "relu-gradient",
                                      "relu-fixed-babsr", "relu-refine"])
@pytest.mark.parametrize("seed", [0, 1])
def test_bab_on_cuda_matches_exact_optimum(tmp_path, seed, strategy):
    check_matches_exact_optimum(tmp_path, seed, strategy, device="cuda")


@pytest.mark.parametrize("recompute", [None, False])
def test_relu_split_on_cuda_conv_net_matches_milp_optimum(tmp_path, recompute):
    """Convolutional net, branching needed (the margin is below what the root bound proves)."""
    pytest.importorskip("highspy", reason="the exact optimum comes from HiGHS")
    path, lo, hi, c, best = conv_milp_case(tmp_path, 1)
    margin = 0.003 * (1 + abs(best))
    settings = BaBSettings(input_split_max_dim=0, relu_recompute=recompute)
    p = problem_for(tmp_path, path, lo, hi, c, best - margin, "conv_unreachable", device="cuda")
    r = run_bab(p, replace(OPTS, bab=replace(settings, attack_first=False)), Deadline(60))
    assert r.verdict is Verdict.UNSAT, (best, r.summary(), r.stats)
    assert r.stats.get("domains", 0) >= 2, r.stats
    p = problem_for(tmp_path, path, lo, hi, c, best + margin, "conv_reachable", device="cuda")
    r = run_bab(p, replace(OPTS, bab=replace(settings, attack_first=False)), Deadline(60))
    assert r.verdict is Verdict.SAT, (best, r.summary())
    assert r.counterexample.validated and c @ r.counterexample.y <= best + margin


def test_verify_on_cuda_answers_the_shipped_examples():
    from verifier.api import verify

    root = Path(__file__).resolve().parents[1] / "vnnlib_specs"
    cases = [("test_nano.onnx", "test_nano.vnnlib", "unsat"), ("test_tiny.onnx", "test_tiny.vnnlib", "unsat"),
             ("test_small.onnx", "test_small.vnnlib", "unsat"), ("test_sat.onnx", "test_prop.vnnlib", "sat"),
             ("test_unsat.onnx", "test_prop.vnnlib", "unsat")]
    for model, spec, want in cases:
        for method in ("auto", "alpha-crown"):
            r = verify(root / model, root / spec, method=method, timeout=60, device="cuda")
            if method == "auto" or str(r.verdict) != "unknown":  # an incomplete method may say unknown
                assert str(r.verdict) == want, (model, method, r.summary())
