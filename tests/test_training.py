"""``verify train`` and ``verifier.training``: export equals the torch model (onnxruntime and the verifier's
own graph), GroupSort's compare-and-swap form equals sorting, certified training's bounds are the verifier's,
Lipschitz-bounded layers have norm 1, runs are seeded, and short runs order the modes as the issue asks."""
from __future__ import annotations

import csv

import numpy as np
import onnx
import pytest
import torch

from frontends.onnx.loader import graph_from_onnx
from verifier.bounds.objective import objective_bounds
from verifier.certificates.lipschitz.global_bound import global_lipschitz
from verifier.cli.main import main
from verifier.settings import BoundSettings
from verifier.settings.training import TrainSettings
from verifier.training import bound_graph, export_onnx, load_dataset, train_model
from verifier.training.evaluate import lipschitz_radii, pgd_accuracy, verified_accuracy
from verifier.training.export import check_export
from verifier.training.losses import crown_ibp_margin_bounds, ibp_margin_bounds, input_box, margin_rows
from verifier.training.models import GroupSort, build_model
from verifier.training.plan import model_steps

DIGITS = load_dataset(TrainSettings())


def _train(**kw):
    s = TrainSettings(**{"hidden": (32, 32), "epochs": 8, "eval_every": 1000, **kw})
    d = DIGITS if s.arch == "mlp" else load_dataset(s)
    return train_model(s, d.x_train, d.y_train, n_classes=10, domain=d.domain), d


def _loaded_graph(model, path, shape):
    export_onnx(model, path, shape)
    return graph_from_onnx(onnx.load(str(path)), str(path))


@pytest.mark.parametrize("arch,lip,act", [("mlp", "none", "relu"), ("mlp", "spectral", "maxmin"),
                                          ("mlp", "orthogonal", "groupsort"), ("cnn", "spectral", "relu")])
def test_export_matches_torch_model_in_onnxruntime_and_in_the_verifier(tmp_path, arch, lip, act):
    s = TrainSettings(arch=arch, lipschitz=lip, activation=act, hidden=(8, 16) if arch == "cnn" else (8, 12),
                      group_size=4, epochs=1)
    d = DIGITS if arch == "mlp" else load_dataset(s)
    model = train_model(s, d.x_train[:200], d.y_train[:200], n_classes=10)
    path = tmp_path / "m.onnx"
    graph = _loaded_graph(model, path, d.example_shape)
    x = d.x_test[:50]
    assert check_export(model, path, x) < 1e-5
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = graph.forward(torch.from_numpy(x).reshape(len(x), -1)).numpy()
    assert np.abs(got - want).max() < 1e-5


def test_groupsort_compare_and_swap_graph_equals_sorting():
    for group in (2, 3, 4):
        s = TrainSettings(activation="groupsort", group_size=group, hidden=(12,))
        model = build_model(s, (5,), 3).eval()
        act = GroupSort(group)
        x = torch.randn(200, 12)
        x[:20, 1] = x[:20, 0]  # ties
        g = bound_graph(torch.nn.Sequential(act), (12,))
        assert torch.allclose(g.forward(x), act(x), atol=1e-6)
        assert torch.equal(act(x)[:, :group], torch.sort(x[:, :group], descending=True).values)
        xs = torch.rand(7, 5)
        with torch.no_grad():
            assert torch.allclose(bound_graph(model, (5,)).forward(xs), model(xs), atol=1e-5)


def test_ibp_training_bound_equals_the_verifiers_ibp_on_the_exported_model(tmp_path):
    model, d = _train(mode="ibp", eps=0.1, epochs=3)
    x, y = torch.from_numpy(d.x_test[:40]), torch.from_numpy(d.y_test[:40])
    lo, hi = input_box(x, 0.1, (0.0, 1.0))
    C = margin_rows(y, 10)
    with torch.no_grad():
        train_lb = ibp_margin_bounds(bound_graph(model, (64,)), lo, hi, C)
    graph = _loaded_graph(model, tmp_path / "ibp.onnx", (64,))
    for c in range(10):
        idx = torch.nonzero(y == c).flatten()
        if len(idx) == 0:
            continue
        ob = objective_bounds(graph, C[idx[0]].double(), torch.zeros(10), lo[idx], hi[idx], BoundSettings("ibp"))
        ver = ob.lower.float()
        # the same interval arithmetic; the verifier only widens outward for rounding
        assert torch.allclose(ver, train_lb[idx], atol=1e-4, rtol=1e-4)
        assert bool((ver <= train_lb[idx] + 1e-6).all())


def test_crown_ibp_bound_is_sound_and_tighter_than_ibp():
    model, d = _train(mode="crown-ibp", eps=0.1, epochs=2)
    x, y = torch.from_numpy(d.x_test[:30]), torch.from_numpy(d.y_test[:30])
    lo, hi = input_box(x, 0.1, (0.0, 1.0))
    C = margin_rows(y, 10)
    with torch.no_grad():
        g = bound_graph(model, (64,))
        crown, ibp = crown_ibp_margin_bounds(g, lo, hi, C), ibp_margin_bounds(g, lo, hi, C)
        pts = lo.unsqueeze(1) + torch.rand(30, 200, 64) * (hi - lo).unsqueeze(1)
        margins = torch.einsum("bko,bpo->bpk", C, model(pts.reshape(-1, 64)).reshape(30, 200, 10))
    assert bool((margins.min(1).values >= crown - 1e-4).all())
    assert float((crown - ibp).mean()) > 0


def test_lipschitz_layers_have_norm_one():
    for lip in ("spectral", "orthogonal"):
        model, _ = _train(lipschitz=lip, epochs=2)
        with torch.no_grad():
            for st in model_steps(model, (64,)):
                if st.kind == "linear":
                    assert float(torch.linalg.matrix_norm(st.weight, ord=2)) < 1.001
        L = global_lipschitz(bound_graph(model, (64,), differentiable=False)).L
        assert L < 1.01


def test_training_is_seeded_and_logs_each_epoch(tmp_path):
    log = tmp_path / "log.csv"
    s = TrainSettings(mode="pgd", eps=0.1, hidden=(16,), epochs=2, eval_max=60)
    m1 = train_model(s, DIGITS.x_train, DIGITS.y_train, x_test=DIGITS.x_test, y_test=DIGITS.y_test, log_path=log)
    m2 = train_model(s, DIGITS.x_train, DIGITS.y_train)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    rows = list(csv.DictReader(open(log)))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(0 <= float(r[k]) <= 1 for r in rows for k in ("clean_acc", "pgd_acc", "verified_acc"))
    assert float(rows[-1]["verified_acc"]) <= float(rows[-1]["pgd_acc"]) <= float(rows[-1]["clean_acc"])


def test_short_runs_order_the_modes_as_the_issue_asks():
    eps, dom, x, y = 0.15, (0.0, 1.0), DIGITS.x_test, DIGITS.y_test
    std, _ = _train(epochs=15)
    adv, _ = _train(mode="pgd", eps=eps, epochs=15, attack_steps=5)
    cert, _ = _train(mode="ibp", eps=eps, epochs=15, kappa_end=0.0, lr=1e-2)
    lip, _ = _train(lipschitz="spectral", epochs=15)
    assert pgd_accuracy(adv, x, y, eps, "linf", 10, dom) > pgd_accuracy(std, x, y, eps, "linf", 10, dom) + 0.1
    v = {k: verified_accuracy(m, x, y, eps, dom, "crown") for k, m in (("std", std), ("adv", adv), ("cert", cert))}
    assert v["cert"] > max(v["std"], v["adv"]) and v["cert"] >= 3 * v["std"] and v["cert"] > 0.1, v
    r = {k: lipschitz_radii(m, x, y).mean() for k, m in (("std", std), ("adv", adv), ("cert", cert), ("lip", lip))}
    assert r["lip"] == max(r.values()), r


SPEC = """(declare-const X_0 Real)
{decl}
{inputs}
(assert (or {outs}))
"""


def _robustness_spec(x, label, eps, n_out=10):
    decl = "\n".join(f"(declare-const X_{i} Real)" for i in range(1, len(x))) + "\n" + "\n".join(
        f"(declare-const Y_{j} Real)" for j in range(n_out))
    inputs = "\n".join(f"(assert (>= X_{i} {max(0.0, v - eps):.6f}))\n(assert (<= X_{i} {min(1.0, v + eps):.6f}))"
                       for i, v in enumerate(x))
    outs = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(n_out) if j != label)
    return SPEC.format(decl=decl, inputs=inputs, outs=outs)


def test_cli_trains_exports_and_verify_reads_the_model(tmp_path, capsys):
    out, data, log = tmp_path / "m.onnx", tmp_path / "t.npz", tmp_path / "l.csv"
    code = main(["train", "--mode", "crown-ibp", "--eps", "0.05", "--epochs", "2", "--hidden", "16", "-q",
                 "--out", str(out), "--data-out", str(data), "--log", str(log)])
    assert code == 0
    assert "verified_acc" in capsys.readouterr().out
    z = np.load(data)
    assert z["x"].shape[1:] == (64,) and len(z["x"]) == len(z["y"]) == len(DIGITS.y_test)
    spec = tmp_path / "s.vnnlib"
    spec.write_text(_robustness_spec(z["x"][0], int(z["y"][0]), 0.001))
    code = main([str(out), str(spec), "--timeout", "60", "--threads", "1"])
    assert code == 0
    assert capsys.readouterr().out.splitlines()[0] in ("sat", "unsat", "unknown")


@pytest.mark.parametrize("argv,msg", [
    (["--mode", "ibp", "--norm", "l2"], "l_inf"),
    (["--data", "missing.npz"], "file not found"),
    (["--activation", "maxmin", "--hidden", "15"], "multiple of 2"),
    (["--arch", "cnn", "--lipschitz", "orthogonal"], "orthogonal"),
    (["--epochs", "0"], "epochs"),
    (["--eps", "nan"], "finite"),
])
def test_cli_bad_options_are_one_line_errors(tmp_path, capsys, argv, msg):
    code = main(["train", *argv, "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and msg in err[0]


def test_cli_trains_on_a_user_npz_of_images(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.random((60, 6, 6)).astype(np.float32)
    y = (x[:, :3].mean((1, 2)) > x[:, 3:].mean((1, 2))).astype(np.int64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    code = main(["train", "--data", str(tmp_path / "d.npz"), "--arch", "cnn", "--hidden", "4,4", "--epochs", "1",
                 "-q", "--out", str(tmp_path / "m.onnx")])
    assert code == 0
    g = graph_from_onnx(onnx.load(str(tmp_path / "m.onnx")))
    assert g.input_shape == (1, 1, 6, 6) and g.n_outputs == 2
    np.savez(tmp_path / "bad.npz", x=x, y=np.zeros(60))
    code = main(["train", "--data", str(tmp_path / "bad.npz"), "-q", "--out", str(tmp_path / "m.onnx")])
    assert code == 2 and "single class" in capsys.readouterr().err
