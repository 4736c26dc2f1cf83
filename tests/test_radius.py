"""``verify radius``: brackets [certified, attacked] on the minimal adversarial perturbation.

On a linear classifier the truth is known in closed form: both ends must lie within 5 % of it. On a ReLU
MLP the brackets must be consistent (certified <= attacked) and every attacked end the distance of a point
that a fresh onnxruntime session confirms as adversarial.
"""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from tests.robustness_models import linear_distance, ort_adversarial, write_models
from verifier.cli.main import main
from verifier.robustness.adversarial import distance
from verifier.robustness.inputs import load_inputs
from verifier.robustness.radius import RadiusSearch
from verifier.settings.robustness import RadiusSettings


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_models(tmp_path_factory.mktemp("radius"))



def _brackets(models, name: str, n: int, **fields):
    model, x, y = load_inputs(models[name], models["data"])
    search = RadiusSearch(model.graph, model.reference, RadiusSettings(**fields), models[name])
    return [search.bracket(i, x[i], int(y[i])) for i in range(n)], x, y


def _check_backed(path, brackets, x):
    for b in brackets:
        assert b.consistent, (b.index, b.certified, b.attacked)
        assert b.adversarial is not None
        assert distance(b.adversarial.x - x[b.index].astype(np.float64), b.norm) == pytest.approx(b.attacked)
        assert ort_adversarial(path, b.adversarial.x, b.label)


@pytest.mark.parametrize("norm,methods", [("linf", ("crown",)), ("l2", ())])
def test_linear_model_brackets_within_5_percent_of_the_truth(models, norm, methods):
    brackets, x, y = _brackets(models, "linear", 4, norm=norm, methods=methods, domain=None, eps_max=5.0)
    _check_backed(models["linear"], brackets, x)
    for b in brackets:
        c, truth = linear_distance(models["W"], models["b"], x[b.index].astype(np.float64), norm)
        assert b.prediction == c
        if c != b.label:
            continue
        assert truth * 0.95 <= b.certified <= truth <= b.attacked <= truth * 1.05, (norm, truth, b)
        assert b.exact


def test_mlp_brackets_consistent_and_backed(models):
    brackets, x, _ = _brackets(models, "mlp", 3, norm="linf", methods=("crown",), time_per_call=5.0, eps_max=0.5,
                               max_steps=6)
    _check_backed(models["mlp"], brackets, x)
    assert all(b.certified > 0 for b in brackets if b.prediction == b.label)
    assert any(b.certified_by == "crown" for b in brackets)


def test_a_wrong_label_is_its_own_counterexample(models):
    model, x, y = load_inputs(models["mlp"], models["data"])
    search = RadiusSearch(model.graph, model.reference, RadiusSettings(methods=()), models["mlp"])
    b = search.bracket(0, x[0], (int(y[0]) + 1) % 10)
    assert (b.certified, b.attacked, b.attacked_by) == (0.0, 0.0, "clean")
    assert b.exact and ort_adversarial(models["mlp"], b.adversarial.x, b.label)


def test_cli_radius_csv_and_summary(models, tmp_path, capsys):
    out, plot = tmp_path / "b.csv", tmp_path / "b.png"
    code = main(["radius", models["linear"], "--data", models["data"], "--max", "2", "--domain", "none",
                 "--methods", "crown", "--eps-max", "3", "--out", str(out), "--plot", str(plot), "-q"])
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 2 and all(float(r["certified"]) <= float(r["attacked"]) for r in rows)
    assert all(r["exact"] == "1" for r in rows)
    assert "mean certified" in capsys.readouterr().out
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert plot.stat().st_size > 0


@pytest.mark.parametrize("case", ["missing_model", "missing_data", "bad_method", "bad_domain", "bad_tol", "wrong_size",
                                  "bad_label"])
def test_cli_radius_bad_input_exit_2(models, tmp_path, capsys, case):
    data, model, extra = models["data"], models["mlp"], []
    if case == "missing_model":
        model = str(tmp_path / "none.onnx")
    elif case == "missing_data":
        data = str(tmp_path / "none.npz")
    elif case == "bad_method":
        extra = ["--methods", "crown,nope"]
    elif case == "bad_domain":
        extra = ["--domain", "1,0"]
    elif case == "bad_tol":
        extra = ["--tol", "2"]
    elif case == "bad_label":
        data = str(tmp_path / "labels.npz")
        np.savez(data, x=np.zeros((2, 64), np.float32), y=np.array([0, 10]))
    else:
        data = str(tmp_path / "small.npz")
        np.savez(data, x=np.zeros((2, 10), np.float32), y=np.zeros(2, np.int64))
    code = main(["radius", model, "--data", data, "-q", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ")
