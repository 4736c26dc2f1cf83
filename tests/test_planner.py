"""auto's planner (issue 23): features -> schedule, racing two strategies in processes, the cancellable deadline, and
auto on a tabular-shaped net (30 inputs, 96 ReLUs) where the exact MILP is what decides."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from tests.tabular_models import make_net, synthetic_data, write_spec
from verifier.api import load_problem, verify
from verifier.certificates.smoothing.train import export_onnx
from verifier.ir.deadline import Deadline
from verifier.ir.result import Counterexample, Result, Verdict
from verifier.methods.features import Features, gurobi_installed, problem_features
from verifier.methods.planner import cores, make_plan
from verifier.methods.race import race
from verifier.settings import PlanSettings, VerifyOptions
from verifier.settings.config import ConfigError, build_options

TABULAR = Features(n_inputs=30, n_relu=128, depth=2, n_other=0, n_disjuncts=2, n_regions=1, n_unstable=128,
                   milp_vars=418, milp_rows=516, gurobi=True)


def test_tabular_shape_races_the_gurobi_milp_against_splitting():
    plan = make_plan(TABULAR, PlanSettings(), input_split_max_dim=32, n_cores=2)
    assert plan.steps == ("milp", "input-split") and plan.race and plan.solver == "gurobi"
    assert "racing" in plan.describe() and "128 unstable" in plan.describe()


def test_without_gurobi_many_unstable_relus_get_no_milp():
    plan = make_plan(replace(TABULAR, gurobi=False), PlanSettings(), 32, n_cores=2)
    assert plan.steps == ("input-split",) and not plan.race and plan.solver == "highs"
    few = make_plan(replace(TABULAR, gurobi=False, n_unstable=40), PlanSettings(), 32, n_cores=2)
    assert few.steps == ("milp", "input-split") and few.solver == "highs"


def test_a_model_past_the_licence_is_planned_with_highs():
    big = replace(TABULAR, milp_vars=2500)
    plan = make_plan(big, PlanSettings(), 32, n_cores=2)
    assert plan.solver == "highs" and plan.steps == ("input-split",)  # 128 unstable > 60 for HiGHS
    assert make_plan(big, PlanSettings(licence_size=0), 32, n_cores=2).solver == "gurobi"


def test_many_inputs_split_relus_and_uncounted_unstable_plans_no_milp():
    wide = replace(TABULAR, n_inputs=784)
    assert make_plan(wide, PlanSettings(), 32, n_cores=2).steps == ("milp", "relu-split")
    assert make_plan(replace(wide, n_unstable=None, milp_vars=None, milp_rows=None), PlanSettings(), 32,
                     n_cores=2).steps == ("relu-split",)
    assert make_plan(replace(wide, n_unstable=401), PlanSettings(), 32, n_cores=2).steps == ("relu-split",)


def test_one_core_runs_the_steps_in_turn_and_few_inputs_split_first():
    plan = make_plan(TABULAR, PlanSettings(), 32, n_cores=1)
    assert not plan.race and plan.steps == ("milp", "input-split") and plan.shares == (0.4,)
    acas = make_plan(replace(TABULAR, n_inputs=5), PlanSettings(), 32, n_cores=1)
    assert acas.steps == ("input-split", "milp") and acas.shares == (0.5,)
    assert not make_plan(TABULAR, PlanSettings(race=False), 32, n_cores=2).race
    assert make_plan(TABULAR, PlanSettings(race=True), 32, n_cores=1).race


def test_a_fixed_schedule_replaces_the_rules():
    plan = make_plan(TABULAR, PlanSettings(schedule=("relu-split", "milp"), shares=(0.25,)), 32, n_cores=2)
    assert plan.steps == ("relu-split", "milp") and plan.shares == (0.25,) and not plan.race
    assert "plan.schedule" in plan.describe()


def test_plan_settings_are_checked_and_reachable_from_the_command_line(tmp_path):
    with pytest.raises(ValueError, match="unknown step 'foo'"):
        PlanSettings(schedule=("foo",))
    with pytest.raises(ValueError, match="shares"):
        PlanSettings(shares=(1.5,))
    opts = build_options(overrides=['plan.schedule=["milp"]', "plan.race=false"])
    assert opts.plan.schedule == ("milp",) and opts.plan.race is False
    with pytest.raises(ConfigError):
        build_options(overrides=['plan.schedule=["foo"]'])
    out = subprocess.run([sys.executable, "-m", "verifier.cli", "--print-config", "--set", "plan.milp_share=0.3"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "[plan]" in out.stdout and "milp_share = 0.3" in out.stdout


def test_a_cancelled_deadline_ends_with_every_budget_carved_from_it():
    ev = threading.Event()
    d = Deadline(60).with_cancel(ev)
    sub, share = d.sub(30), d.share(0.5)
    assert not d.expired() and d.left() > 50 and not sub.expired()
    ev.set()
    assert d.expired() and sub.expired() and share.expired() and d.left() == 0.0 and sub.left() == 0.0
    assert not Deadline(60).expired()  # a plain deadline has nothing to cancel it


# --- races, on a tiny real net (the sat side's counterexample is validated by onnxruntime again) ---------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    net = make_net(0, 4, (8,), 2)
    model = str(folder / "tiny.onnx")
    export_onnx(net, model, (4,), method="helper")
    x0 = np.full(4, 0.5, dtype=np.float32)
    label = int(np.argmax(net(torch.tensor(x0)).detach().numpy()))
    spec = write_spec(folder / "tiny.vnnlib", x0, label, 0.001, 2)
    return load_problem(model, spec, VerifyOptions()), x0


def _until_cancelled(d: Deadline) -> Result:
    while not d.expired():
        time.sleep(0.01)
    return Result(Verdict.TIMEOUT, "local")


def test_race_takes_the_remote_answer_and_cancels_the_local_search(tiny):
    problem, _ = tiny
    stats: dict = {}
    t = time.monotonic()
    r = race(problem, _until_cancelled, lambda d: Result(Verdict.UNSAT, "remote"), Deadline(60), ("a", "b"), stats)
    assert r.verdict is Verdict.UNSAT and r.method == "remote"
    assert time.monotonic() - t < 20  # not the 60 s budget: the local side was cancelled
    assert stats["race"]["winner"] == "b" and stats["race"]["local_verdict"] == "timeout"


def test_race_stops_the_remote_side_when_the_local_one_decides(tiny):
    problem, _ = tiny
    stats: dict = {}
    t = time.monotonic()
    r = race(problem, lambda d: Result(Verdict.UNSAT, "local"), lambda d: time.sleep(60) or Result(Verdict.SAT, "x"),
             Deadline(60), ("a", "b"), stats)
    assert r.method == "local" and time.monotonic() - t < 20
    assert stats["race"]["winner"] == "a" and stats["race"]["remote_verdict"] == "stopped"


def test_race_never_takes_an_unvalidated_sat_or_a_crash(tiny):
    problem, x0 = tiny
    # x0 is the centre of a box on which the net keeps its class: no counterexample, whatever the child claims
    fake = Counterexample(np.asarray(x0, np.float64), np.zeros(2), 0, validated=True)
    stats: dict = {}
    r = race(problem, lambda d: Result(Verdict.UNKNOWN, "local"),
             lambda d: Result(Verdict.SAT, "b", counterexample=fake), Deadline(30), ("a", "b"), stats)
    assert r.verdict is Verdict.UNKNOWN and r.method == "local" and stats["race"]["winner"] is None

    def crash(d):
        raise RuntimeError("solver exploded")

    stats = {}
    r = race(problem, lambda d: Result(Verdict.UNKNOWN, "local"), crash, Deadline(30), ("a", "b"), stats)
    assert r.method == "local" and "RuntimeError: solver exploded" in stats["race"]["remote_verdict"]


# --- auto on the shape of issue 23 --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    """A random 30-48-48-3 ReLU net and a robustness spec halfway between what CROWN proves and what PGD breaks
    (0.104, found by ``tests.tabular_models.bracket``: CROWN proves 0.087 at most there)."""
    folder = tmp_path_factory.mktemp("tabular")
    net = make_net(0, 30, (48, 48), 3)
    model = str(folder / "net.onnx")
    export_onnx(net, model, (30,), method="helper")
    x, _ = synthetic_data(1000, n=1)
    label = int(np.argmax(net(torch.tensor(x[0])).detach().numpy()))
    return model, write_spec(folder / "spec.vnnlib", x[0], label, 0.104, 3)


@pytest.mark.skipif(not gurobi_installed(), reason="the plan under test is the Gurobi MILP (gurobipy not installed)")
def test_auto_plans_the_milp_on_a_tabular_net_and_agrees_with_it(tabular):
    model, spec = tabular
    problem = load_problem(model, spec, VerifyOptions())
    f = problem_features(problem)
    assert f.n_inputs == 30 and f.n_relu == 96 and f.n_unstable is not None and 0 < f.n_unstable <= 96
    crown = verify(model, spec, method="crown", timeout=30)
    assert crown.verdict is not Verdict.UNSAT  # the cheap bound alone does not decide it
    auto = verify(model, spec, method="auto", timeout=120)
    milp = verify(model, spec, method="milp", timeout=120, solver="gurobi")
    assert auto.verdict in (Verdict.SAT, Verdict.UNSAT) and auto.verdict is milp.verdict
    assert "milp (gurobi)" in auto.stats["plan"]
    if cores() >= 2:
        assert auto.stats["race"]["winner"] in ("milp", "input-split")
        assert auto.method == f"auto:{auto.stats['race']['winner']}"


def test_features_count_a_relu_on_the_network_input(tmp_path):
    net = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    model = str(tmp_path / "relu_first.onnx")
    export_onnx(net, model, (4,), method="helper")
    spec = write_spec(tmp_path / "s.vnnlib", np.full(4, 0.5), 0, 0.5, 2)  # the box [0, 1]^4
    f = problem_features(load_problem(model, spec, VerifyOptions()))
    assert f.n_relu == 4 + 6 and f.depth == 2 and f.n_unstable is not None and f.n_unstable <= 6
    r = verify(model, spec, method="auto", timeout=30)
    assert r.verdict in (Verdict.SAT, Verdict.UNSAT)
