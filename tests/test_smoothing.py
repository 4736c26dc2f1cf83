"""Tests of randomized smoothing (verifier/certificates/smoothing/), its training helper and `verify smooth`."""
from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch
from scipy.stats import beta, norm

from frontends.onnx.loader import load_onnx
from verifier.certificates.data import DataError, load_labelled_npz
from verifier.certificates.smoothing.certify import ABSTAIN, certify, certify_dataset, predict
from verifier.certificates.smoothing.plot import plot_certified_accuracy
from verifier.certificates.smoothing.records import (
    CertifyRecord,
    certified_accuracy,
    format_accuracy_table,
    parse_certify_log,
)
from verifier.certificates.smoothing.stats import clopper_pearson_lower
from verifier.certificates.smoothing.train import (
    DIGITS_SHAPE,
    accuracy,
    export_onnx,
    load_digits_split,
    make_cnn,
    make_mlp,
    train_noisy,
)
from verifier.certificates.threads import torch_threads
from verifier.cli import smooth as cli_smooth


# --------------------------------------------------------------------------- helpers
def linear_model(w_rows: np.ndarray, bias: np.ndarray) -> torch.nn.Linear:
    """Logits ``W x + b`` (rows of W are the classes)."""
    m = torch.nn.Linear(w_rows.shape[1], w_rows.shape[0])
    with torch.no_grad():
        m.weight.copy_(torch.tensor(w_rows, dtype=torch.float32))
        m.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return m


def interval_classifier(d: int, a: float, b: float) -> torch.nn.Linear:
    """3 classes along x_0: class 0 for x_0 < a, 1 for a < x_0 < b, 2 for x_0 > b (logits 0, x0-a, 2x0-a-b)."""
    w = np.zeros((3, d))
    w[1, 0], w[2, 0] = 1.0, 2.0
    return linear_model(w, np.array([0.0, -a, -a - b]))


def make_parser():
    ap = argparse.ArgumentParser(prog="verify")
    sub = ap.add_subparsers(dest="command")
    cli_smooth.add_parser(sub)
    return ap


@pytest.fixture(scope="module")
def interval_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("smooth") / "interval.onnx"
    export_onnx(interval_classifier(6, -0.5, 1.0), path, (6,))
    return str(path)


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """A small MLP trained briefly with noise sigma=0.25 on sklearn digits, exported to ONNX."""
    xtr, ytr, xte, yte = load_digits_split()
    model = make_mlp(hidden=(64,), seed=0)
    train_noisy(model, xtr, ytr, 0.25, epochs=15, seed=0)
    d = tmp_path_factory.mktemp("digits")
    path = d / "mlp.onnx"
    export_onnx(model, path, (64,))
    data = d / "test.npz"
    np.savez(data, x=xte[:6], y=yte[:6])
    return model, str(path), str(data), (xte, yte)


# --------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("k,n,alpha", [(1, 10, 0.05), (5, 10, 0.001), (9, 10, 0.001), (50, 100, 0.01),
                                       (99_990, 100_000, 0.001), (50_000, 100_000, 0.001), (100, 100, 0.001),
                                       (100_000, 100_000, 0.001), (7, 100_000, 1e-6), (1_234, 2_000, 0.2)])
def test_clopper_pearson_matches_scipy_beta_quantile(k, n, alpha):
    ours = clopper_pearson_lower(k, n, alpha)
    ref = beta.ppf(alpha, k, n - k + 1)
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert ours <= ref + 1e-12  # never on the optimistic side


def test_clopper_pearson_edge_cases():
    assert clopper_pearson_lower(0, 100, 0.001) == 0.0
    assert clopper_pearson_lower(100, 100, 0.001) < 0.001 ** (1 / 100) + 1e-15
    with pytest.raises(ValueError):
        clopper_pearson_lower(5, 4, 0.01)
    with pytest.raises(ValueError):
        clopper_pearson_lower(1, 4, 0.0)


# --------------------------------------------------------------------------- closed-form classifiers
def test_certify_binary_linear_radius_matches_formula(tmp_path):
    """For f(x) = [w.x + b > 0], P(f(x+e) = 1) = Phi(s / (sigma ||w||)), so the radius is the distance to the plane."""
    d, sigma, n = 10, 0.5, 20_000
    rng = np.random.default_rng(0)
    w = rng.standard_normal(d)
    m = linear_model(np.stack([np.zeros(d), w]), np.array([0.0, 0.3]))
    path = tmp_path / "lin.onnx"
    export_onnx(m, path, (d,))
    graph = load_onnx(path)
    x = rng.standard_normal(d).astype(np.float32)
    x += (0.4 * sigma * np.linalg.norm(w) - (w @ x + 0.3)) / (w @ w) * w  # signed distance 0.4 sigma
    dist = float((w @ x.astype(np.float64) + 0.3) / np.linalg.norm(w))
    assert dist == pytest.approx(0.4 * sigma, rel=1e-4)
    c = certify(graph, x, sigma, n0=100, n=n, alpha=0.001, seed=1)
    assert c.prediction == 1
    p_true = norm.cdf(dist / sigma)
    # the count is binomial(n, p_true): within 5 standard deviations
    assert abs(c.count - n * p_true) < 5 * math.sqrt(n * p_true * (1 - p_true))
    # radius = sigma PhiInv(CP lower bound of the count), which is below the true radius dist
    assert c.radius == pytest.approx(sigma * norm.ppf(beta.ppf(0.001, c.count, n - c.count + 1)), rel=1e-9)
    assert c.radius < dist
    assert c.radius > dist - 0.1 * sigma  # the CP bound at n = 20000 costs < 0.1 sigma here


def test_certify_three_class_interval_probabilities(interval_onnx):
    a, b, sigma, n = -0.5, 1.0, 0.4, 20_000
    graph = load_onnx(interval_onnx)
    x = np.zeros(6, dtype=np.float32)
    x[0] = 0.3  # inside the middle interval
    p = [norm.cdf((a - 0.3) / sigma), norm.cdf((b - 0.3) / sigma) - norm.cdf((a - 0.3) / sigma),
         1 - norm.cdf((b - 0.3) / sigma)]
    pred = predict(graph, x, sigma, n=n, seed=3)
    for k in range(3):
        assert abs(pred.counts[k] - n * p[k]) < 5 * math.sqrt(n * p[k] * (1 - p[k]))
    assert pred.prediction == 1
    c = certify(graph, x, sigma, n=n, seed=4)
    assert c.prediction == 1 and c.selected == 1
    true_radius = sigma * norm.ppf(p[1])  # Cohen's bound evaluated at the true pA
    assert 0 < c.radius < true_radius
    assert c.radius > true_radius - 0.15 * sigma


def test_predict_abstains_on_a_fair_coin(interval_onnx):
    """On the boundary x_0 = a the two classes are equally likely: PREDICT must abstain."""
    graph = load_onnx(interval_onnx)
    x = np.zeros(6, dtype=np.float32)
    x[0] = -0.5
    pred = predict(graph, x, 0.1, n=4000, alpha=0.001, seed=0)
    assert pred.prediction == ABSTAIN and pred.p_value > 0.001
    c = certify(graph, x, 0.1, n=4000, seed=0)
    assert c.prediction == ABSTAIN and c.radius == 0.0 and c.pA_lower <= 0.5
    far = x.copy()
    far[0] = 3.0
    assert predict(graph, far, 0.1, n=4000, seed=0).prediction == 2


# --------------------------------------------------------------------------- reproducibility and API
def test_seeded_reproducible_and_module_matches_graph(interval_onnx):
    graph = load_onnx(interval_onnx)
    module = interval_classifier(6, -0.5, 1.0)
    x = np.zeros(6, dtype=np.float32)
    x[0] = 0.9
    c1 = certify(graph, x, 0.5, n=3000, seed=7)
    c2 = certify(graph, x, 0.5, n=3000, seed=7)
    c3 = certify(graph, x, 0.5, n=3000, seed=8)
    assert (c1.count, c1.radius) == (c2.count, c2.radius)
    assert c1.count != c3.count
    cm = certify(module, torch.tensor(x), 0.5, n=3000, seed=7)
    assert abs(cm.count - c1.count) <= 2  # same noise; only float rounding at ties could differ
    # batch size does not change the noise stream
    assert certify(graph, x, 0.5, n=3000, seed=7, batch=512).count == c1.count


def test_certify_dataset_records_and_accuracy(digits_model):
    model, path, data, (xte, yte) = digits_model
    recs = certify_dataset(load_onnx(path), xte[:5], yte[:5], 0.25, n0=50, n=1000, seed=0)
    assert [r.idx for r in recs] == list(range(5))
    assert all((r.correct == 1) == (r.predict == r.label) for r in recs)
    assert all((r.predict == ABSTAIN) == (r.radius == 0.0) for r in recs)
    acc = certified_accuracy(recs, [0.0, 0.1, 0.3, 10.0])
    assert acc[0] == pytest.approx(np.mean([r.correct for r in recs]))
    assert np.all(np.diff(acc) <= 0) and acc[-1] == 0.0
    # records of known radii give known accuracies
    fake = [CertifyRecord(0, 1, 1, 0.5, 1, 0.0), CertifyRecord(1, 2, 2, 0.2, 1, 0.0),
            CertifyRecord(2, 3, 4, 0.9, 0, 0.0), CertifyRecord(3, 0, -1, 0.0, 0, 0.0)]
    assert list(certified_accuracy(fake, [0.0, 0.2, 0.3, 0.6])) == [0.5, 0.5, 0.25, 0.0]
    table = format_accuracy_table({"sigma=0.25": fake}, [0.0, 0.3])
    assert "sigma=0.25" in table and "0.500" in table and "0.250" in table


def test_plot_writes_png(tmp_path):
    fake = [CertifyRecord(i, 0, 0, r, 1, 0.0) for i, r in enumerate([0.1, 0.4, 0.7])]
    out = tmp_path / "acc.png"
    plot_certified_accuracy({"sigma=0.25": fake, "sigma=0.5": fake[:2]}, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- training and export
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("method", ["torch", "helper"])
def test_noise_trained_model_exports_to_onnx(tmp_path, arch, method):
    import onnxruntime as ort

    xtr, ytr, xte, yte = load_digits_split()
    shape = DIGITS_SHAPE[arch]
    model = make_mlp(hidden=(48,)) if arch == "mlp" else make_cnn(channels=(4, 8))
    train_noisy(model, xtr, ytr, 0.25, epochs=6, seed=0, input_shape=shape)
    assert accuracy(model, xte, yte, shape) > 0.8
    path = export_onnx(model, tmp_path / f"{arch}.onnx", shape, method=method)
    graph = load_onnx(path)
    assert graph.n_inputs == 64 and graph.n_outputs == 10
    X = xte[:20].reshape(20, *shape)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    y_ort = sess.run(None, {sess.get_inputs()[0].name: X})[0]
    y_graph = graph.forward(torch.tensor(X)).numpy()
    with torch.no_grad():
        y_torch = model(torch.tensor(X)).numpy()
    np.testing.assert_allclose(y_graph, y_ort, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(y_torch, y_ort, atol=1e-5, rtol=1e-5)


def test_torch_threads_restores_setting():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# --------------------------------------------------------------------------- data files and CLI
def test_load_labelled_npz_errors(tmp_path):
    ok = tmp_path / "ok.npz"
    np.savez(ok, x=np.zeros((3, 4)), y=np.array([0, 1, 2]))
    x, y = load_labelled_npz(ok, 4)
    assert x.shape == (3, 4) and y.dtype == np.int64
    cases = {
        "missing.npz": None,
        "noy.npz": dict(x=np.zeros((3, 4))),
        "len.npz": dict(x=np.zeros((3, 4)), y=np.array([0, 1])),
        "frac.npz": dict(x=np.zeros((3, 4)), y=np.array([0.0, 0.5, 1.0])),
        "size.npz": dict(x=np.zeros((3, 5)), y=np.array([0, 1, 2])),
        "nan.npz": dict(x=np.full((3, 4), np.nan), y=np.array([0, 1, 2])),
    }
    for name, arrays in cases.items():
        p = tmp_path / name
        if arrays is not None:
            np.savez(p, **arrays)
        with pytest.raises(DataError):
            load_labelled_npz(p, 4)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError):
        load_labelled_npz(garbage, 4)


def test_cli_smooth_writes_certify_log(digits_model, tmp_path, capsys):
    _, path, data, _ = digits_model
    out = tmp_path / "res.tsv"
    args = make_parser().parse_args(["smooth", path, "--data", data, "--sigma", "0.25", "--n", "2000",
                                     "--n0", "50", "--out", str(out), "--radii", "0,0.25", "--max", "4"])
    assert cli_smooth.run(args) == 0
    text = out.read_text()
    lines = text.splitlines()
    assert lines[0] == "idx\tlabel\tpredict\tradius\tcorrect\ttime"
    assert len(lines) == 5 and all(len(ln.split("\t")) == 6 for ln in lines[1:])
    recs = parse_certify_log(text)
    y = np.load(data)["y"]
    assert [r.label for r in recs] == list(y[:4])
    assert sum(r.correct for r in recs) >= 2  # the trained model gets most of them
    printed = capsys.readouterr().out
    assert "radius\tcertified_accuracy" in printed
    acc0 = float(printed.strip().splitlines()[-2].split("\t")[1])
    assert acc0 == pytest.approx(np.mean([r.correct for r in recs]))


def test_cli_smooth_large_sigma_abstains(digits_model, capsys):
    _, path, data, _ = digits_model
    args = make_parser().parse_args(["smooth", path, "--data", data, "--sigma", "20", "--n", "500",
                                     "--max", "3"])
    assert cli_smooth.run(args) == 0
    out = capsys.readouterr().out
    log = [ln for ln in out.splitlines() if ln.count("\t") == 5]  # header and rows (stdout)
    assert log[0].startswith("idx\tlabel")
    recs = parse_certify_log("\n".join(log))
    assert len(recs) == 3 and all(r.predict == -1 and r.radius == 0.0 for r in recs)


@pytest.mark.parametrize("case", ["missing_data", "bad_npz", "wrong_size", "bad_model", "bad_sigma", "bad_alpha"])
def test_cli_smooth_bad_input_exit_2(digits_model, tmp_path, capsys, case):
    _, path, data, _ = digits_model
    bad = tmp_path / "bad.npz"
    argv = ["smooth", path, "--data", data, "--sigma", "0.25", "--n", "100"]
    if case == "missing_data":
        argv[3] = str(tmp_path / "nope.npz")
    elif case == "bad_npz":
        bad.write_bytes(b"\x00garbage")
        argv[3] = str(bad)
    elif case == "wrong_size":
        np.savez(bad, x=np.zeros((2, 10), dtype=np.float32), y=np.array([0, 1]))
        argv[3] = str(bad)
    elif case == "bad_model":
        argv[1] = data  # not an ONNX file
    elif case == "bad_sigma":
        argv[5] = "-1"
    elif case == "bad_alpha":
        argv += ["--alpha", "1.5"]
    assert cli_smooth.run(make_parser().parse_args(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "Traceback" not in err[0]
