"""``verify attack-blackbox``: the substitute-model transfer attack (Papernot et al. 2017), SimBA and the
random-noise baseline, each adversarial example checked by a fresh onnxruntime session."""
from __future__ import annotations

import csv
import io

import pytest

from frontends.onnx.reference import OnnxReference
from tests.robustness_models import ort_adversarial, write_models
from verifier.cli.main import main
from verifier.robustness.adversarial import distance
from verifier.robustness.blackbox import run_blackbox
from verifier.robustness.oracle import Oracle
from verifier.robustness.simba import simba
from verifier.robustness.substitute import train_substitute
from verifier.settings.robustness import BlackboxSettings, SubstituteSettings, TransferSettings

SMALL = SubstituteSettings(initial=100, rounds=4, lam=0.1, tau=2, reservoir=150, reservoir_from=2, hidden=(64,),
                           epochs=25, seed=0)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_models(tmp_path_factory.mktemp("blackbox"))


def test_oracle_counts_queries(models):
    oracle = Oracle(OnnxReference(models["mlp"]))
    labels = oracle.labels(models["x"][:7])
    assert oracle.queries == 7 and labels.shape == (7,)
    oracle.scores(models["x"][:3], count=False)
    assert oracle.queries == 7


@pytest.fixture(scope="module")
def substitute(models):
    oracle = Oracle(OnnxReference(models["mlp"]))
    sub = train_substitute(oracle, models["x"][:100], 10, SMALL)
    return sub, oracle.queries


def test_jacobian_augmentation_with_reservoir_query_count(substitute):
    sub, queries = substitute
    # rounds 0, 1 double the set (100 -> 200 -> 400); from round sigma=2 on, kappa=150 points per round
    assert sub.sizes == [100, 200, 400, 550]
    assert sub.queries == queries == 550
    assert sub.agreement > 0.8


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_substitute_transfer_beats_random_noise(models, substitute, attack):
    settings = BlackboxSettings(SMALL, TransferSettings(attack, 0.2, "linf"))
    report = run_blackbox(OnnxReference(models["mlp"]), models["x"], models["y"], settings, max_examples=150,
                          attacks=("substitute", "noise"), substitute=substitute[0])
    sub, noise = report.summaries
    assert sub.name == f"substitute-{attack}" and noise.name == "noise"
    assert sub.attacked == noise.attacked > 100
    assert sub.setup_queries == 550 and sub.queries == sub.attacked
    assert sub.success_rate > noise.success_rate + 0.2, (sub.success_rate, noise.success_rate)
    x = models["x"]
    for o in report.outcomes[f"substitute-{attack}"][:40]:
        if o.success:
            assert distance(o.adversarial.x - x[o.index], "linf") <= 0.2 * (1 + 1e-6)
            assert ort_adversarial(models["mlp"], o.adversarial.x, o.label)


@pytest.mark.parametrize("norm,eps", [("linf", 0.2), ("l2", 1.5)])
def test_simba_within_budget_and_validated(models, norm, eps):
    oracle = Oracle(OnnxReference(models["mlp"]))
    x, y = models["x"], models["y"]
    wins = 0
    for i in range(8):
        o = simba(oracle, x[i], int(y[i]), eps, norm, queries=300, seed=i, index=i)
        assert o.queries <= 300
        if o.success:
            wins += 1
            assert distance(o.adversarial.x - x[i], norm) <= eps * (1 + 1e-6)
            assert ort_adversarial(models["mlp"], o.adversarial.x, int(y[i]))
    assert wins >= 2


def test_cli_attack_blackbox(models, tmp_path, capsys):
    out = tmp_path / "a.csv"
    code = main(["attack-blackbox", models["mlp"], "--data", models["data"], "--initial", "100", "--rounds", "2",
                 "--epochs", "10", "--hidden", "32", "--max", "30", "--queries", "100", "--eps", "0.2",
                 "--out", str(out), "-q"])
    assert code == 0
    text = capsys.readouterr().out
    assert "substitute-fgsm" in text and "simba" in text and "noise" in text
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["attack"] for r in rows} == {"substitute-fgsm", "simba", "noise"}
    for r in rows:
        if r["success"] == "1":
            assert 0 < float(r["distance"]) <= 0.2 * (1 + 1e-6)


@pytest.mark.parametrize("case", ["missing_model", "missing_data", "too_few", "bad_attack", "bad_eps", "bad_hidden"])
def test_cli_attack_blackbox_bad_input_exit_2(models, tmp_path, capsys, case):
    data, model, extra = models["data"], models["mlp"], []
    if case == "missing_model":
        model = str(tmp_path / "none.onnx")
    elif case == "missing_data":
        data = str(tmp_path / "none.npz")
    elif case == "too_few":
        extra = ["--initial", "100000"]
    elif case == "bad_attack":
        extra = ["--attacks", "substitute,magic"]
    elif case == "bad_eps":
        extra = ["--eps", "-1"]
    else:
        extra = ["--hidden", "a,b"]
    code = main(["attack-blackbox", model, "--data", data, "-q", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ")
