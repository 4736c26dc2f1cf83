"""Tests of the Lipschitz certificates (verifier/certificates/lipschitz/: the product, local and LipSDP bounds,
CLEVER), the fast path and `verify lipschitz`."""
from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from frontends.load import load_problem
from frontends.onnx.loader import load_onnx
from frontends.vnnlib.v1 import parse_vnnlib
from verifier.certificates.lipschitz.analysis import product_bound
from verifier.certificates.lipschitz.clever import clever_estimate
from verifier.certificates.lipschitz.evaluate import gradient_norms, logits64
from verifier.certificates.lipschitz.fastpath import box_center_radius, lipschitz_fast_path, robustness_target
from verifier.certificates.lipschitz.global_bound import global_lipschitz
from verifier.certificates.lipschitz.lipsdp import lipsdp
from verifier.certificates.lipschitz.local import local_certified_radius, local_lipschitz
from verifier.certificates.lipschitz.norms import op_norm_upper, power_iteration
from verifier.certificates.lipschitz.radii import certified_radius
from verifier.certificates.smoothing.train import export_onnx, make_cnn, make_mlp
from verifier.cli import lipschitz as cli_lipschitz
from verifier.ir.ops import Conv


# --------------------------------------------------------------------------- fixtures
def _export(model, path, shape):
    export_onnx(model, path, shape)
    return load_onnx(path)


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    d = tmp_path_factory.mktemp("lip")
    torch.manual_seed(0)
    mlp = make_mlp(n_in=8, hidden=(24, 24), n_out=4, seed=1)
    cnn = make_cnn(channels=(4, 8), seed=2)
    tiny = make_mlp(n_in=4, hidden=(12, 12), n_out=3, seed=3)
    return {
        "mlp": (_export(mlp, d / "mlp.onnx", (8,)), str(d / "mlp.onnx")),
        "cnn": (_export(cnn, d / "cnn.onnx", (1, 8, 8)), str(d / "cnn.onnx")),
        "tiny": (_export(tiny, d / "tiny.onnx", (4,)), str(d / "tiny.onnx")),
    }


def spec_text(n_in: int, n_out: int, lo, hi, target: int) -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i in range(n_in):
        lines.append(f"(assert (>= X_{i} {float(lo[i])!r}))")
        lines.append(f"(assert (<= X_{i} {float(hi[i])!r}))")
    ors = " ".join(f"(and (>= Y_{j} Y_{target}))" for j in range(n_out) if j != target)
    lines.append(f"(assert (or {ors}))")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- operator norms
@pytest.mark.parametrize("cin,cout,k,stride,pad,dil,groups,size", [
    (1, 8, 3, 1, 1, 1, 1, 8), (8, 16, 4, 2, 1, 1, 1, 8), (3, 8, 4, 2, 1, 1, 1, 12),
    (4, 4, 3, 1, 2, 2, 2, 9), (2, 6, 5, 3, 2, 1, 1, 11), (6, 6, 3, 2, 0, 2, 3, 12)])
def test_conv_operator_norm_bounds(cin, cout, k, stride, pad, dil, groups, size):
    torch.manual_seed(cin * 100 + k)
    w = torch.randn(cout, cin // groups, k, k, dtype=torch.float64)
    conv = Conv(w, None, [stride, stride], [pad] * 4, [dil, dil], groups)
    shape = (1, cin, size, size)
    n = math.prod(shape)
    J = conv._conv(torch.eye(n, dtype=torch.float64).reshape(n, *shape), None).reshape(n, -1).T
    exact = float(torch.linalg.matrix_norm(J, ord=2))
    upper = op_norm_upper(conv, shape)  # operator-based, no dense matrix
    est = power_iteration(lambda x: conv._conv(x, None), shape)
    assert exact <= upper <= 1.2 * exact
    assert 0.99 * exact <= est <= exact * (1 + 1e-9)


def test_dense_and_operator_paths_agree_and_bound(nets):
    g = nets["cnn"][0]
    dense = product_bound(g, estimate=True)
    op = product_bound(g, dense_limit=0, estimate=True)
    assert all(l["how"] == "dense SVD" for l in dense.layers)
    assert all(l["how"] != "dense SVD" for l in op.layers)
    for a, b in zip(dense.layers, op.layers):
        assert a["upper"] <= b["upper"] * (1 + 1e-9)  # exact norm <= operator-path bound
        assert b["estimate"] <= a["upper"] * (1 + 1e-9)  # power iteration is a lower estimate
    assert dense.L <= op.L


# --------------------------------------------------------------------------- exactness on linear maps
def test_linear_classifier_bounds_and_radius_are_exact(tmp_path):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4, 6))
    m = torch.nn.Linear(6, 4)
    with torch.no_grad():
        m.weight.copy_(torch.tensor(W, dtype=torch.float32))
        m.bias.copy_(torch.tensor(rng.standard_normal(4), dtype=torch.float32))
    g = _export(m, tmp_path / "lin.onnx", (6,))
    W32 = m.weight.detach().double().numpy()
    b = product_bound(g)
    assert b.L == pytest.approx(np.linalg.norm(W32, 2), rel=1e-7)
    for i in range(4):
        for j in range(4):
            assert b.pair[i, j] == pytest.approx(np.linalg.norm(W32[i] - W32[j]), rel=1e-7, abs=1e-12)
    x = rng.standard_normal(6)
    r = certified_radius(g, x, b)
    z = W32 @ x + m.bias.detach().double().numpy()
    p = int(np.argmax(z))
    dists = [(z[p] - z[j]) / np.linalg.norm(W32[p] - W32[j]) for j in range(4) if j != p]
    exact = min(dists)
    assert r.prediction == p and r.l2 <= exact and r.l2 == pytest.approx(exact, rel=1e-3)
    assert r.linf == pytest.approx(r.l2 / math.sqrt(6))
    # a step of 1.01 r towards the nearest boundary changes the class (the radius is tight)
    j = [j for j in range(4) if j != p][int(np.argmin(dists))]
    u = (W32[j] - W32[p]) / np.linalg.norm(W32[j] - W32[p])
    assert np.argmax(W32 @ (x + 1.01 * r.l2 * u) + m.bias.detach().double().numpy()) != p


# --------------------------------------------------------------------------- soundness against sampling
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_bound_never_below_sampled_gradient_norms(nets, name):
    g = nets[name][0]
    b = product_bound(g)
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.random((300, g.n_inputs)), 3 * rng.standard_normal((300, g.n_inputs))])
    s = gradient_norms(g, X)
    assert s["jacobian_norm"].max() <= b.L * (1 + 1e-9)
    assert np.all(s["pair"].max(0) <= b.pair * (1 + 1e-9) + 1e-12)
    assert s["jacobian_norm"].max() > 0.05 * b.L  # the sampling is not vacuous
    ce = clever_estimate(g, X[0], radius=0.5, n_batches=10, batch_size=20)
    assert ce.kind == "estimate"
    assert all(0 < ce.max_sampled[j] <= b.pair[ce.label, j] * (1 + 1e-9) for j in ce.max_sampled)
    assert all(ce.lipschitz[j] >= ce.max_sampled[j] for j in ce.max_sampled)


def test_certified_radius_is_sound_by_sampling(nets):
    g, _ = nets["mlp"]
    b = product_bound(g)
    rng = np.random.default_rng(2)
    x = rng.random(g.n_inputs)
    r = certified_radius(g, x, b)
    assert r.l2 > 0
    d = rng.standard_normal((2000, g.n_inputs))
    d *= (r.l2 / np.linalg.norm(d, axis=1, keepdims=True))
    y = logits64(g, x[None, :] + d)
    assert np.all(np.argmax(y, axis=1) == r.prediction)


# --------------------------------------------------------------------------- local bounds
@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_local_bound_never_above_global(nets, name, method):
    g = nets[name][0]
    glob = product_bound(g)
    rng = np.random.default_rng(3)
    x = rng.random(g.n_inputs)
    eps = np.array([1e-4, 1e-2, 0.1, 1.0, 100.0])
    locs = local_lipschitz(g, x[None] - eps[:, None], x[None] + eps[:, None], method)
    for lb in locs:
        assert lb.L <= glob.L and np.all(lb.pair <= glob.pair)
    assert locs[0].L < glob.L  # on a tiny box many ReLUs are inactive: strictly tighter
    assert locs[-1].L == pytest.approx(glob.L)  # a huge box gains nothing
    r_g = certified_radius(g, x, glob)
    r_l = local_certified_radius(g, x, glob, method)
    assert r_l.l2 >= r_g.l2 and r_l.linf >= r_g.linf


def test_local_bound_is_valid_on_its_box(nets):
    g, _ = nets["mlp"]
    rng = np.random.default_rng(4)
    x = rng.random(g.n_inputs)
    eps = 0.05
    lb = local_lipschitz(g, x[None] - eps, x[None] + eps, "crown")[0]
    P = rng.uniform(-eps, eps, (3000, g.n_inputs)) + x
    s = gradient_norms(g, P)
    assert s["jacobian_norm"].max() <= lb.L * (1 + 1e-9)
    assert np.all(s["pair"].max(0) <= lb.pair * (1 + 1e-9) + 1e-12)


# --------------------------------------------------------------------------- LipSDP
def test_lipsdp_tighter_than_product_and_sound(nets):
    g, _ = nets["tiny"]
    prod = product_bound(g)
    sdp = global_lipschitz(g, "lipsdp", time_limit=60)
    assert sdp.method == "lipsdp", sdp.message
    assert sdp.L < prod.L / 1.2  # clearly tighter on a random MLP
    rng = np.random.default_rng(5)
    s = gradient_norms(g, 2 * rng.standard_normal((3000, g.n_inputs)))
    assert s["jacobian_norm"].max() <= sdp.L * (1 + 1e-9)
    assert np.all(sdp.pair <= prod.pair + 1e-12)


def test_lipsdp_is_not_below_the_true_constant(tmp_path):
    """relu(x) with identity layers has Lipschitz constant exactly 1: LipSDP must not report less."""
    m = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU(), torch.nn.Linear(3, 3))
    with torch.no_grad():
        for lin in (m[0], m[2]):
            lin.weight.copy_(torch.eye(3))
            lin.bias.zero_()
    g = _export(m, tmp_path / "relu.onnx", (3,))
    res = lipsdp(g, time_limit=60)
    assert 1.0 <= res.L <= 1.01


def test_lipsdp_falls_back_when_out_of_time(nets):
    g, _ = nets["mlp"]
    res = global_lipschitz(g, "lipsdp", time_limit=1e-4)
    assert res.method == "product" and "LipSDP" in res.message
    assert res.L == pytest.approx(product_bound(g).L)


# --------------------------------------------------------------------------- fast path
def test_robustness_target_detection():
    txt = spec_text(2, 3, [0.0, 0.0], [1.0, 1.0], 1)
    assert robustness_target(parse_vnnlib(txt)) == 1
    other = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n" \
            "(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (<= Y_0 3))\n"
    sp = parse_vnnlib(other)
    assert robustness_target(sp) is None


def test_fast_path_unsat_when_covered_and_silent_when_not(nets, tmp_path):
    from verifier.ir.deadline import Deadline
    from verifier.ir.result import Verdict
    from verifier.methods.registry import get_method
    from verifier.settings.options import VerifyOptions

    g, path = nets["mlp"]
    rng = np.random.default_rng(6)
    x = rng.random(g.n_inputs)
    b = product_bound(g)
    r = certified_radius(g, x, b)
    t = r.prediction
    eps_ok = 0.9 * r.linf  # box circumradius eps sqrt(n) < r.l2
    spec = parse_vnnlib(spec_text(g.n_inputs, g.n_outputs, x - eps_ok, x + eps_ok, t))
    res = lipschitz_fast_path(g, spec)
    assert res is not None and res.verdict is Verdict.UNSAT and res.method == "lipschitz"
    # the same through the method registry and a Problem loaded from files
    vnn = tmp_path / "rob.vnnlib"
    vnn.write_text(spec_text(g.n_inputs, g.n_outputs, x - eps_ok, x + eps_ok, t))
    prob = load_problem(path, vnn)
    out = get_method("lipschitz")(prob, VerifyOptions(), Deadline(30))
    assert out.verdict is Verdict.UNSAT
    # a box with a real counterexample must never be answered unsat
    big = 3.0
    spec_big = parse_vnnlib(spec_text(g.n_inputs, g.n_outputs, x - big, x + big, t))
    pts = x + rng.uniform(-big, big, (5000, g.n_inputs))
    assert np.any(np.argmax(logits64(g, pts), 1) != t)  # a counterexample exists
    assert lipschitz_fast_path(g, spec_big) is None
    vnn.write_text(spec_text(g.n_inputs, g.n_outputs, x - big, x + big, t))
    out = get_method("lipschitz")(load_problem(path, vnn), VerifyOptions(), Deadline(30))
    assert out.verdict is Verdict.UNKNOWN
    # a wrong target (the prediction is another class) is never unsat either
    wrong = (t + 1) % g.n_outputs
    assert lipschitz_fast_path(g, parse_vnnlib(spec_text(g.n_inputs, g.n_outputs, x - 1e-6, x + 1e-6, wrong))) is None


def test_fast_path_uses_actual_half_widths_of_a_clipped_box(nets):
    g, _ = nets["mlp"]
    n = g.n_inputs
    b = product_bound(g)
    x = np.zeros(n)
    x[: n // 4] = np.random.default_rng(7).random(n // 4)  # most pixels at the domain's lower end 0
    r = certified_radius(g, x, b)
    t = r.prediction
    assert r.l2 > 0
    # nominal eps: the l_inf ball's circumradius eps sqrt(n) exceeds the certified radius ...
    eps = 1.25 * r.l2 / math.sqrt(n)
    lo, hi = np.clip(x - eps, 0.0, 1.0), np.clip(x + eps, 0.0, 1.0)
    c, rad = box_center_radius(lo, hi)
    assert eps * math.sqrt(n) > r.l2
    # ... but the clipped box is smaller; certify it around its own centre
    rc = certified_radius(g, c, b)
    assert rad < rc.l2, "test set-up: the clipped box should be certifiable"
    res = lipschitz_fast_path(g, parse_vnnlib(spec_text(n, g.n_outputs, lo, hi, t)), local=None)
    assert res is not None and str(res.verdict) == "unsat"


# --------------------------------------------------------------------------- CLI
def make_parser():
    ap = argparse.ArgumentParser(prog="verify")
    sub = ap.add_subparsers(dest="command")
    cli_lipschitz.add_parser(sub)
    return ap


def test_cli_lipschitz_log(nets, tmp_path, capsys):
    g, path = nets["cnn"]
    rng = np.random.default_rng(8)
    x = rng.random((3, 1, 8, 8)).astype(np.float32)
    y = np.argmax(logits64(g, x.reshape(3, -1)), 1)
    y[2] = (y[2] + 1) % 10  # one wrong label
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=y)
    out = tmp_path / "r.tsv"
    args = make_parser().parse_args(["lipschitz", path, "--data", str(data), "--out", str(out),
                                     "--local-bounds", "ibp"])
    assert cli_lipschitz.run(args) == 0
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == ["idx", "label", "predict", "margin", "radius_global", "radius_local",
                                    "linf_global", "linf_local", "correct", "time"]
    rows = [ln.split("\t") for ln in lines[1:]]
    assert len(rows) == 3
    for row in rows:
        rg, rl, lg, ll = map(float, row[4:8])
        assert rl >= rg > 0 and ll >= lg and lg == pytest.approx(rg / 8, rel=1e-4)
    assert [int(r[8]) for r in rows] == [1, 1, 0]
    assert "radius_l2\tglobal\tlocal" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["missing", "no_y", "wrong_size", "bad_model"])
def test_cli_lipschitz_bad_input_exit_2(nets, tmp_path, capsys, case):
    _, path = nets["mlp"]
    data = tmp_path / "d.npz"
    if case == "no_y":
        np.savez(data, x=np.zeros((2, 8)))
    elif case == "wrong_size":
        np.savez(data, x=np.zeros((2, 9)), y=np.array([0, 1]))
    else:
        np.savez(data, x=np.zeros((2, 8)), y=np.array([0, 1]))
    argv = ["lipschitz", path, "--data", str(data)]
    if case == "missing":
        argv[3] = str(tmp_path / "none.npz")
    if case == "bad_model":
        argv[1] = str(data)
    assert cli_lipschitz.run(make_parser().parse_args(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_cli_lipschitz_clever_column(nets, tmp_path):
    """``--clever`` adds the sampled CLEVER radius (an estimate, printed beside the certified ones)."""
    g, path = nets["mlp"]
    rng = np.random.default_rng(9)
    x = rng.random((2, g.n_inputs)).astype(np.float32)
    y = np.argmax(logits64(g, x), 1)
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=y)
    out = tmp_path / "r.tsv"
    args = make_parser().parse_args(["lipschitz", path, "--data", str(data), "--out", str(out), "--clever"])
    assert cli_lipschitz.run(args) == 0
    lines = out.read_text().splitlines()
    head = lines[0].split("\t")
    assert head[-1] == "clever_radius", head
    rows = [dict(zip(head, ln.split("\t"))) for ln in lines[1:]]
    assert len(rows) == 2
    for r in rows:
        # the sampled gradient norms are lower bounds of the local constant, so the estimate is a radius at
        # least as large as the one certified by a global upper bound, up to the Weibull fit's extrapolation
        assert float(r["clever_radius"]) >= 0.5 * float(r["radius_global"]) > 0, r
