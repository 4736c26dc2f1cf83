"""Branch and bound (verifier.bab) on small random networks, against the exact optimum.

The exact minimum of the objective over the box is found by enumerating every ReLU
activation region (one LP each, as in test_bounds). A threshold just below it makes the
unsafe set unreachable (the search must answer unsat, never sat); one just above makes it
reachable (the search must answer sat, with a counterexample validated by onnxruntime).
Both input splitting and ReLU splitting are exercised, and compared with the MILP backend.
"""
from __future__ import annotations

import importlib.util
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import box_vnnlib, make_fc, save
from test_bounds import activation_regions, exact_min, relu_layers

from frontends.load import load_problem
from frontends.onnx.loader import graph_from_onnx
from verifier.ir.deadline import Deadline
from verifier.ir.result import Verdict
from verifier.methods.bab import run_bab
from verifier.settings.bab import BaBSettings
from verifier.settings.options import VerifyOptions

F64 = torch.float64
OPTS = VerifyOptions(timeout=30)
STRATEGIES = {"input": BaBSettings(), "relu": BaBSettings(input_split_max_dim=0),
              # ReLU splitting by the top score alone (no filtered smart branching), no warm start
              "relu-basic": BaBSettings(input_split_max_dim=0, relu_fsb=1, root_alpha=False),
              # intermediate bounds not re-derived (the default past 2048 ReLUs): domains stored as split signs
              "relu-fixed": BaBSettings(input_split_max_dim=0, relu_recompute=False),
              # the MILP fallback: every domain with at most 100 unstable ReLUs goes to a small MILP
              "relu-milp": BaBSettings(input_split_max_dim=0, relu_milp_max_unstable=100),
              # the branching scores the defaults do not pick for these nets: the gradient estimate with
              # re-derived intermediate bounds, the BaBSR-like score without
              "relu-gradient": BaBSettings(input_split_max_dim=0, relu_branching="gradient"),
              "relu-fixed-babsr": BaBSettings(input_split_max_dim=0, relu_recompute=False, relu_branching="babsr"),
              # the first search of the portfolio gets no time: the root's intermediate bounds are refined by
              # MILP (Gurobi) before the second
              "relu-refine": BaBSettings(input_split_max_dim=0, relu_recompute=True,
                                         relu_fsb_portfolio=((4, 0.0), (12, 1.0)))}


def make_case(tmp_path, seed, sizes=(2, 6, 6, 2), gap=0.05):
    """(model path, lo, hi, c, exact minimum of c.y) for a random MLP on [-1, 1]^n."""
    model = make_fc(seed, sizes=sizes)
    g64 = graph_from_onnx(model, dtype=F64)
    lo, hi = -np.ones(sizes[0]), np.ones(sizes[0])
    c = np.zeros(sizes[-1])
    c[0], c[1] = 1.0, -1.0
    best, _ = exact_min(activation_regions(relu_layers(g64), lo, hi), c, lo, hi)
    path = save(model, tmp_path / f"net{seed}.onnx")
    return path, lo, hi, c, best


def problem_for(tmp_path, path, lo, hi, c, d, name, device="cpu"):
    spec_path = tmp_path / f"{name}.vnnlib"
    spec_path.write_text(box_vnnlib(lo, hi, C=c.reshape(1, -1), d=[d]))
    return load_problem(path, spec_path, device=device)


def conv_milp_case(tmp_path, seed):
    """(model path, lo, hi, c, exact minimum of c.y by a HiGHS MILP) for a random conv net on a box with
    unstable ReLUs."""
    from conftest import make_conv

    from backends.encoding import encode_network
    from backends.solvers import SolveStatus, make_solver
    from verifier.bounds import intermediate_bounds

    model = make_conv(seed, c=2, hw=8, n_out=4)
    path = save(model, tmp_path / f"conv{seed}.onnx")
    g64 = graph_from_onnx(model, dtype=F64)
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-1, 1, g64.n_inputs)
    lo, hi = centre - 0.12, centre + 0.12
    c = np.zeros(4)
    c[0], c[1] = 1.0, -1.0
    xl, xh = torch.tensor(lo).reshape(1, -1), torch.tensor(hi).reshape(1, -1)
    enc = encode_network(g64, intermediate_bounds(g64, xl, xh, "crown"), lo, hi, "milp")
    out = make_solver("highs").solve(enc.with_objective(c.reshape(1, -1), np.zeros(1)), 30.0)
    assert out.status == SolveStatus.OPTIMAL and enc.n_unstable > 0
    return path, lo, hi, c, out.objective


@pytest.mark.parametrize("strategy", ["input", "relu", "relu-basic", "relu-fixed", "relu-milp", "relu-gradient",
                                      "relu-fixed-babsr", "relu-refine"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bab_matches_exact_optimum(tmp_path, seed, strategy):
    check_matches_exact_optimum(tmp_path, seed, strategy)


def check_matches_exact_optimum(tmp_path, seed, strategy, device="cpu"):
    """With the margin below the MILP optimum the search must prove the bound, above it find a
    validated counterexample (shared with the CUDA run of test_cuda)."""
    path, lo, hi, c, best = make_case(tmp_path, seed)
    settings = STRATEGIES[strategy]
    margin = 0.02 * (1 + abs(best))
    # unreachable: c.y <= best - margin never holds
    p = problem_for(tmp_path, path, lo, hi, c, best - margin, "unsafe_unreachable", device=device)
    r = run_bab(p, replace(OPTS, bab=replace(settings, attack_first=False)), Deadline(30))
    assert r.verdict is Verdict.UNSAT, (seed, strategy, best, r.summary(), r.stats)
    assert r.stats["strategy"] == strategy.split("-")[0] or r.method.endswith(":crown")
    if strategy == "relu-milp" and r.method.endswith("relu-split"):
        assert r.stats.get("milp_domains", 0) >= 1 and r.stats.get("domains", 0) <= 1, r.stats
    if strategy == "relu-refine" and r.stats.get("portfolio_runs") == 2 and importlib.util.find_spec("gurobipy"):
        assert r.stats.get("refine_solves", 0) >= 1, r.stats
    if r.stats.get("refine_solves"):  # the proof used MILP-refined bounds: the result says so
        assert "refined by MILP" in r.message, r.message
    # reachable: c.y <= best + margin holds near the minimiser
    p = problem_for(tmp_path, path, lo, hi, c, best + margin, "unsafe_reachable", device=device)
    r = run_bab(p, replace(OPTS, bab=replace(settings, attack_first=False)), Deadline(30))
    assert r.verdict is Verdict.SAT, (seed, strategy, best, r.summary())
    cex = r.counterexample
    assert cex.validated and np.all(cex.x >= lo) and np.all(cex.x <= hi)
    assert c @ cex.y <= best + margin


def test_relu_split_branches_and_beta_helps(tmp_path):
    """A deeper net whose root bound fails: ReLU splitting must branch (domains > 1) and still prove it."""
    path, lo, hi, c, best = make_case(tmp_path, 7, sizes=(3, 8, 8, 2))
    p = problem_for(tmp_path, path, lo, hi, c, best - 0.02 * (1 + abs(best)), "deep")
    r = run_bab(p, replace(OPTS, bab=replace(STRATEGIES["relu"], attack_first=False)), Deadline(60))
    assert r.verdict is Verdict.UNSAT, r.summary()
    if r.method.endswith("relu-split"):
        assert r.stats["domains"] >= 1 and r.stats["bound_calls"] >= 1
        assert r.stats.get("fsb_calls", 0) >= 1  # the branching choices went through filtered smart branching


def test_memory_cap_gives_unknown_not_a_crash(tmp_path):
    path, lo, hi, c, best = make_case(tmp_path, 5, sizes=(2, 8, 8, 2))
    p = problem_for(tmp_path, path, lo, hi, c, best - 1e-3, "tight")
    settings = replace(STRATEGIES["relu"], max_domains=2, root_alpha=False, relu_alpha_iters=0)
    r = run_bab(p, replace(OPTS, bab=replace(settings, attack_first=False)), Deadline(30))
    if r.method.endswith("crown"):
        pytest.skip("the root bound alone proved this instance; the cap was never reached")
    assert r.verdict in (Verdict.UNKNOWN, Verdict.UNSAT), r.summary()
    if r.verdict is Verdict.UNKNOWN:
        assert r.stats.get("memory_cap_hit")


def test_timeout_is_honoured(tmp_path):
    """A hard instance with a 1 s budget ends within about a second, as timeout or unknown."""
    model = make_fc(11, sizes=(5, 40, 40, 40, 2))
    path = save(model, tmp_path / "big.onnx")
    lo, hi, c = -np.ones(5), np.ones(5), np.array([1.0, -1.0])
    spec = tmp_path / "hard.vnnlib"
    # threshold from sampling (cheap): just below the sampled minimum, so neither answer is quick
    p0 = problem_for(tmp_path, path, lo, hi, c, 0.0, "probe")
    x = torch.tensor(np.random.default_rng(0).uniform(lo, hi, (20000, lo.size)), dtype=torch.float32)
    ys = p0.graph.forward(x).double().numpy() @ c
    spec.write_text(box_vnnlib(lo, hi, C=c.reshape(1, -1), d=[float(ys.min()) - 1e-4]))
    p = load_problem(path, spec)
    t = time.monotonic()
    r = run_bab(p, replace(replace(OPTS, timeout=1.0), bab=BaBSettings(input_split_max_dim=0)), Deadline(1.0))
    took = time.monotonic() - t
    assert took < 4.0, took  # the budget plus one bound call's slack
    assert r.verdict in (Verdict.TIMEOUT, Verdict.UNKNOWN, Verdict.SAT, Verdict.UNSAT)


def test_bab_agrees_with_milp(tmp_path):
    backends = pytest.importorskip("backends", reason="the MILP backend (backends package) is not importable")
    from verifier.methods.registry import get_method

    milp = get_method("milp")
    for seed in (0, 2):
        path, lo, hi, c, best = make_case(tmp_path, seed)
        for d in (best - 0.05, best + 0.05):
            p = problem_for(tmp_path, path, lo, hi, c, d, f"cmp{seed}")
            a = run_bab(p, replace(OPTS, bab=replace(BaBSettings(), attack_first=True)), Deadline(30))
            b = milp(p, OPTS, Deadline(30))
            assert a.verdict == b.verdict, (seed, d, a.summary(), b.summary())
    assert backends is not None


def test_auto_on_the_shipped_examples():
    """`auto` answers the five `test` instances shipped in vnnlib_specs/ correctly."""
    from pathlib import Path

    from verifier.api import verify

    root = Path(__file__).resolve().parents[1] / "vnnlib_specs"
    cases = [("test_nano.onnx", "test_nano.vnnlib", "unsat"), ("test_tiny.onnx", "test_tiny.vnnlib", "unsat"),
             ("test_small.onnx", "test_small.vnnlib", "unsat"), ("test_sat.onnx", "test_prop.vnnlib", "sat"),
             ("test_unsat.onnx", "test_prop.vnnlib", "unsat")]
    for model, spec, want in cases:
        r = verify(root / model, root / spec, method="auto", timeout=60)
        assert str(r.verdict) == want, (model, r.summary())


@pytest.mark.parametrize("recompute", [None, False])
@pytest.mark.parametrize("seed,rel_margin", [(1, 0.003), (5, 0.008)])
def test_relu_split_on_conv_net_matches_milp_optimum(tmp_path, seed, rel_margin, recompute):
    """ReLU splitting on a convolutional network (alpha/beta gradients through transposed convolutions,
    warm starts, filtered smart branching) against the exact optimum of an MILP (HiGHS); also without
    re-deriving intermediate bounds (domains stored as split signs, bounds rebuilt from the root's)."""
    pytest.importorskip("highspy", reason="the exact optimum comes from HiGHS")
    path, lo, hi, c, best = conv_milp_case(tmp_path, seed)
    margin = rel_margin * (1 + abs(best))  # small enough that the root bound cannot prove it
    settings = BaBSettings(input_split_max_dim=0, relu_recompute=recompute)
    p = problem_for(tmp_path, path, lo, hi, c, best - margin, "conv_unreachable")
    r = run_bab(p, replace(OPTS, bab=replace(settings, attack_first=False)), Deadline(60))
    assert r.verdict is Verdict.UNSAT, (seed, best, r.summary(), r.stats)
    assert r.stats.get("domains", 0) >= 2, r.stats  # the search branched
    p = problem_for(tmp_path, path, lo, hi, c, best + margin, "conv_reachable")
    r = run_bab(p, replace(OPTS, bab=replace(settings, attack_first=False)), Deadline(60))
    assert r.verdict is Verdict.SAT, (seed, best, r.summary())
    assert c @ r.counterexample.y <= best + margin


def test_input_branching_caps_the_aspect_ratio():
    """The smear score alone would halve dimension 0 for ever (the bound barely depends on
    dimension 1); once dimension 0 is 64 times narrower (relative to the region) than dimension 1,
    the widest side is split instead."""
    from verifier.bab.common import Rows
    from verifier.bab.input_split import _branch_dim
    from verifier.ir.spec import Disjunct, Spec

    one_row = Disjunct(np.zeros(2), np.ones(2), np.array([[1.0]]), np.array([0.0]))
    rows = Rows(Spec(2, 1, (one_row,)), [0], "cpu", torch.float32)
    Ax = torch.tensor([[[100.0, 0.001]], [[100.0, 0.001]]])  # (B=2, K=1, n=2)
    lb = torch.full((2, 1), -1.0)
    width = torch.tensor([[1 / 128, 1.0], [1 / 32, 1.0]])
    root = torch.ones(1, 2)
    open_ = torch.zeros(2, 1, dtype=torch.bool)
    for mode in ("smear-all", "smear"):
        capped = _branch_dim(BaBSettings(input_branching=mode, input_max_aspect=64), rows, lb, Ax, width, root, open_)
        free = _branch_dim(BaBSettings(input_branching=mode, input_max_aspect=0), rows, lb, Ax, width, root, open_)
        assert capped.tolist() == [1, 0] and free.tolist() == [0, 0], (mode, capped, free)


def test_input_split_rechecks_in_float64_what_float32_rounding_keeps_open(tmp_path):
    """Outputs offset by 1e4 that cancel in the objective: float32's rounding allowance on the
    bound (2e-5 of the 2e4 of constant terms, about 0.4) is wider than the margin, so halving boxes
    can never prove them in float32; the float64 re-check does. The reachable threshold must
    still give a validated sat."""
    import onnx
    from onnx import numpy_helper

    model = make_fc(3, sizes=(2, 6, 6, 2))
    bias_name = model.graph.node[-1].input[2]
    for k, init in enumerate(model.graph.initializer):
        if init.name == bias_name:
            b = numpy_helper.to_array(init) + 1e4
            model.graph.initializer[k].CopyFrom(numpy_helper.from_array(b.astype(np.float32), bias_name))
    onnx.checker.check_model(model)
    g64 = graph_from_onnx(model, dtype=F64)
    lo, hi = -np.ones(2), np.ones(2)
    c = np.array([1.0, -1.0])
    best, _ = exact_min(activation_regions(relu_layers(g64), lo, hi), c, lo, hi)
    path = save(model, tmp_path / "offset.onnx")
    margin = 0.05
    p = problem_for(tmp_path, path, lo, hi, c, best - margin, "offset_unreachable")
    r = run_bab(p, replace(OPTS, bab=replace(STRATEGIES["input"], attack_first=False)), Deadline(30))
    assert r.verdict is Verdict.UNSAT, (best, r.summary(), r.stats)
    assert r.stats.get("float64_proved", 0) >= 1, r.stats
    p = problem_for(tmp_path, path, lo, hi, c, best + margin, "offset_reachable")
    r = run_bab(p, replace(OPTS, bab=replace(STRATEGIES["input"], attack_first=False)), Deadline(30))
    assert r.verdict is Verdict.SAT and r.counterexample.validated, r.summary()


class _CountingDeadline(Deadline):
    """Expires after ``n`` checks: stops a search after a fixed number of rounds, whatever the speed."""

    def __init__(self, n: int):
        super().__init__(60)
        self.n = n

    def expired(self) -> bool:
        self.n -= 1
        return self.n < 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_input_split_resumes_from_the_open_boxes(tmp_path, seed):
    """A search stopped after a few rounds hands over its open boxes; resuming from them must
    reach the same answer as the exact optimum says: unsat below it, a validated sat above it
    (a lost box could turn the second into a wrong unsat)."""
    from verifier.bab.common import Outcome, RegionTask
    from verifier.bab.input_split import input_split_region
    from verifier.settings import BoundSettings

    path, lo, hi, c, best = make_case(tmp_path, seed)
    settings = BaBSettings(batch=2)  # two boxes per round: several rounds even on this small net
    margin = 0.02 * (1 + abs(best))
    handed_over = 0
    for d, want in ((best - margin, Outcome.PROVEN), (best + margin, Outcome.FALSIFIED)):
        p = problem_for(tmp_path, path, lo, hi, c, d, "resume")
        (rlo, rhi, idx), = p.spec.regions()
        task = RegionTask(p, rlo, rhi, idx, settings, BoundSettings())
        found = input_split_region(task, _CountingDeadline(3), {})
        if found.status == Outcome.OPEN:
            assert found.out_of_time and found.open_boxes.lo.shape[0] >= 1
            handed_over += 1
            found = input_split_region(task, Deadline(30), {}, resume=found.open_boxes)
        assert found.status == want, (seed, d, best, found.status)
        if want == Outcome.FALSIFIED:
            cex = found.counterexample
            assert cex.validated and c @ cex.y <= d
    assert handed_over >= 1, "the stopped search never left open boxes: the test exercised nothing"


def test_warm_start_of_slopes_and_split_multipliers_resumes_the_best_bound():
    """``optimise_slopes`` started from an earlier run's best slopes and split multipliers evaluates
    their bound first: what ReLU splitting's children inherit from their parent's optimisation."""
    from verifier.bounds.crown import backward_lower, intermediate_bounds, pre_activation_nodes
    from verifier.bounds.linear import LinearObjective, SlopeMemory, Steps, concretize_lower
    from verifier.bounds.objective import optimise_slopes

    g = graph_from_onnx(make_fc(3, sizes=(4, 12, 12, 12, 2)), dtype=F64)
    lo, hi = -torch.ones(1, 4, dtype=F64), torch.ones(1, 4, dtype=F64)
    pre = intermediate_bounds(g, lo, hi, "crown")
    sgn = {}
    for k, p in enumerate(n for n in pre_activation_nodes(g) if n != g.input_name):  # split 2 neurons per layer
        l, u = (t.clone() for t in pre[p])
        unstable = torch.nonzero(((l < 0) & (u > 0)).flatten()).flatten()[:2]
        s = torch.zeros(l.shape, dtype=torch.int8)
        for i, j in enumerate(unstable.tolist()):
            if (i + k) % 2:
                l.view(-1)[j], s.view(-1)[j] = 0.0, 1
            else:
                u.view(-1)[j], s.view(-1)[j] = 0.0, -1
        pre[p], sgn[p] = (l, u), s
    C = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=F64)
    A0, d = C.reshape(1, 2, *g.output_shape), torch.zeros(2, dtype=F64)
    _, Ax, bias = backward_lower(g, g.output_name, A0, lo, hi, pre, return_linear=True)
    lb0, tol0 = concretize_lower(Ax, bias, lo, hi, d, F64)
    alphas, betas = {}, {}
    obj = LinearObjective(g, A0, d, lo, hi, pre)
    lb1, _, _ = optimise_slopes(obj, lb0, tol0, Steps(40, 0.3), signs=sgn,
                                memory=SlopeMemory(best_alphas=alphas, best_betas=betas))
    assert bool((lb1 > lb0 + 1e-6).any()), (lb0, lb1)  # the optimisation did something to resume
    assert any(bool((b > 0).any()) for b in betas.values())  # multipliers of the splits were used
    worst = torch.full_like(lb0, -1e9)
    lb2, _, _ = optimise_slopes(obj, worst, torch.zeros_like(tol0), Steps(1, 0.3), signs=sgn,
                                memory=SlopeMemory(init_alphas=alphas, init_betas=betas))
    assert torch.allclose(lb2, lb1, atol=1e-9), (lb1, lb2)
    cold, _, _ = optimise_slopes(obj, worst, torch.zeros_like(tol0), Steps(1, 0.3), signs=sgn,
                                 memory=SlopeMemory(init_alphas=alphas))  # the slopes alone, multipliers from zero
    assert bool((cold < lb1 - 1e-6).any()), (cold, lb1)


def test_relu_split_drops_warm_starts_past_their_cap_and_still_proves(tmp_path):
    """Past ``relu_warm_domains`` stored domains the children restart from the root's slopes; the search
    goes on (no crash, no give-up) and still proves the instance."""
    path, lo, hi, c, best = make_case(tmp_path, 7, sizes=(3, 8, 8, 2))
    p = problem_for(tmp_path, path, lo, hi, c, best - 0.02 * (1 + abs(best)), "deep")
    settings = replace(STRATEGIES["relu"], relu_warm_domains=1, relu_batch=1)
    r = run_bab(p, replace(OPTS, bab=replace(settings, attack_first=False)), Deadline(60))
    assert r.verdict is Verdict.UNSAT, r.summary()
    assert r.method.endswith("relu-split") and r.stats["domains"] >= 3, r.stats
    assert r.stats.get("warm_start_dropped_at", 0) >= 2, r.stats


def test_relu_split_portfolio_restarts_with_the_next_width(tmp_path):
    """Where intermediate bounds are re-derived, the branching widths of ``relu_fsb_portfolio`` run in
    turn: a first search whose share of the time runs out is followed by the next width, which proves
    the instance (the first one's time-out must not end the search or leave ``out_of_time`` behind)."""
    path, lo, hi, c, best = make_case(tmp_path, 7, sizes=(3, 8, 8, 2))
    p = problem_for(tmp_path, path, lo, hi, c, best - 0.02 * (1 + abs(best)), "deep")
    settings = replace(STRATEGIES["relu"], relu_fsb=None, relu_recompute=True,
                       relu_fsb_portfolio=((4, 0.0), (12, 1.0)))
    r = run_bab(p, replace(OPTS, bab=replace(settings, attack_first=False)), Deadline(60))
    assert r.verdict is Verdict.UNSAT, r.summary()
    assert r.stats["portfolio_runs"] == 2 and not r.stats.get("out_of_time"), r.stats
    # the same with a first share that suffices: one run
    settings = replace(settings, relu_fsb_portfolio=((4, 1.0), (12, 1.0)))
    r = run_bab(p, replace(OPTS, bab=replace(settings, attack_first=False)), Deadline(60))
    assert r.verdict is Verdict.UNSAT and r.stats["portfolio_runs"] == 1, r.stats


@pytest.mark.parametrize("seed", [3, 5, 7])
def test_relu_split_on_a_disjunction_matches_milp_per_disjunct(tmp_path, seed):
    """A classification-style spec (one disjunct per other output, each with its own margin): domains
    whose disjuncts close at different depths exercise the optimisation of the open rows only, and
    filtered smart branching on them. Unsat when every disjunct is just out of reach (per-disjunct MILP
    optima), sat when one is just within reach. (Seeds 4 and 6 of this shape need more than 60 s of
    ReLU splitting: tens of thousands of domains, a sixth of them decided by LP; input splitting,
    which ``auto`` picks for 6 inputs, proves each of their disjuncts within 30 s.)"""
    pytest.importorskip("highspy", reason="the exact optima come from HiGHS")
    from backends.encoding import encode_network
    from backends.solvers import SolveStatus, make_solver
    from verifier.bounds import intermediate_bounds

    model = make_fc(seed, sizes=(6, 12, 12, 4))
    path = save(model, tmp_path / f"net{seed}.onnx")
    g64 = graph_from_onnx(model, dtype=F64)
    lo, hi = -np.ones(6), np.ones(6)
    xl, xh = torch.tensor(lo).reshape(1, -1), torch.tensor(hi).reshape(1, -1)
    enc = encode_network(g64, intermediate_bounds(g64, xl, xh, "crown"), lo, hi, "milp")
    rows, best = [], []
    for j in (1, 2, 3):  # disjunct j: y_0 - y_j <= d_j
        c = np.zeros(4)
        c[0], c[j] = 1.0, -1.0
        out = make_solver("highs").solve(enc.with_objective(c.reshape(1, -1), np.zeros(1)), 30.0)
        assert out.status == SolveStatus.OPTIMAL
        rows.append(c)
        best.append(out.objective)

    def spec(ds, name):
        terms = lambda c: " ".join(f"(* {float(v)!r} Y_{k})" for k, v in enumerate(c) if v != 0)  # noqa: E731
        text = box_vnnlib(lo, hi, C=np.zeros((0, 4)), d=[])
        text += "(assert (or " + " ".join(f"(and (<= (+ {terms(c)}) {float(d)!r}))" for c, d in zip(rows, ds)) + "))\n"
        f = tmp_path / f"{name}.vnnlib"
        f.write_text(text)
        return load_problem(path, f)

    settings = BaBSettings(input_split_max_dim=0)
    margins = [(0.01 + 0.01 * k) * (1 + abs(b)) for k, b in enumerate(best)]
    opts = replace(OPTS, bab=replace(settings, attack_first=False))
    r = run_bab(spec([b - m for b, m in zip(best, margins)], "unreachable"), opts, Deadline(60))
    assert r.verdict is Verdict.UNSAT, (seed, best, r.summary(), r.stats)
    reach = [b - m for b, m in zip(best, margins)]
    reach[1] = best[1] + margins[1]  # the second disjunct holds near its minimiser
    r = run_bab(spec(reach, "reachable"), replace(OPTS, bab=replace(settings, attack_first=False)), Deadline(60))
    assert r.verdict is Verdict.SAT, (seed, best, r.summary())
    y = r.counterexample.y
    assert any(c @ y <= d for c, d in zip(rows, reach))


@pytest.mark.parametrize("kind", ["fc", "conv", "residual"])
def test_fsb_child_bounds_started_at_the_split_layer_equal_full_passes(tmp_path, kind):
    """Filtered smart branching's children bounded by passes that start at their split's ReLU (from the
    parent's coefficients there) get the bounds of full passes, with split multipliers and slopes; on the
    residual net, where a ReLU inside a block does not cut the graph, those children take full passes."""
    from conftest import make_conv, make_residual

    from verifier.bab.branching import babsr_scores
    from verifier.bab.common import Rows
    from verifier.bab.domains import Domains, Region, Splits
    from verifier.bab.smart_branching import fsb_child_bounds
    from verifier.bounds.crown import backward_lower, intermediate_bounds, pre_activation_nodes

    model = {"fc": lambda: make_fc(4, sizes=(5, 10, 10, 10, 3)), "conv": lambda: make_conv(2, c=2, hw=8, n_out=3),
             "residual": lambda: make_residual(1, n_in=4, width=8)}[kind]()
    g = graph_from_onnx(model, dtype=F64)
    n = g.n_inputs
    lo, hi = -0.5 * np.ones(n), 0.5 * np.ones(n)
    C = np.array([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0]])
    spec_path = tmp_path / "two_rows.vnnlib"
    spec_path.write_text(box_vnnlib(lo, hi, C=C, d=[0.0, 0.0]))
    spec = load_problem(save(model, tmp_path / "m.onnx"), spec_path).spec
    (rlo, rhi, idx), = list(spec.regions())
    rows = Rows(spec, idx, g.device, F64)
    xl, xh = torch.tensor(rlo).reshape(1, -1), torch.tensor(rhi).reshape(1, -1)
    base = intermediate_bounds(g, xl, xh, "crown")
    pnodes = [p for p in pre_activation_nodes(g) if p != g.input_name]
    gen = torch.Generator().manual_seed(0)
    B, K = 3, rows.C.shape[0]
    pre, sgn, betas = {}, {}, {}
    for p in pnodes:  # three domains, each with one neuron of every layer split (alternating sides)
        l, u = (t.expand(B, *t.shape[1:]).clone() for t in base[p])
        s = torch.zeros(l.shape, dtype=torch.int8)
        unstable = torch.nonzero(((l[0] < 0) & (u[0] > 0)).flatten()).flatten()
        for b in range(B):
            if unstable.numel() > b:
                j = int(unstable[b])
                if b % 2:
                    l[b].view(-1)[j], s[b].view(-1)[j] = 0.0, 1
                else:
                    u[b].view(-1)[j], s[b].view(-1)[j] = 0.0, -1
        pre[p], sgn[p] = (l, u), s
        betas[p] = torch.rand(B, K, *l.shape[1:], generator=gen, dtype=F64)
    relus = [node.name for node in g.nonlinear_nodes()]
    alphas = {r: torch.rand(B, K, *g.shape_of(r), generator=gen, dtype=F64) for r in relus}
    record: dict = {}
    lb = backward_lower(g, g.output_name, rows.C.reshape(1, K, *g.output_shape).expand(B, K, *g.output_shape),
                        xl.expand(B, -1), xh.expand(B, -1), pre, record=record)
    grp_ok = torch.zeros(B, len(rows.groups), dtype=torch.bool)
    grp_ok[0, 0] = True  # one group already proven on the first domain: its rows are not bounded there
    region = Region(g, rows, xl, xh)
    scores, layout = babsr_scores(region, Domains(pre, sgn, lb=lb, ok=grp_ok, record=record))
    top = scores.topk(min(6, scores.shape[1]), dim=1)
    dom = torch.arange(B).repeat_interleave(2 * top.indices.shape[1])
    flat = top.indices.repeat_interleave(2, dim=1).reshape(-1)
    active = torch.tensor([True, False]).repeat(flat.numel() // 2)
    args = (region, Domains(pre, sgn, alphas, betas, ok=grp_ok), layout, Splits(dom, flat, active))
    part, full = fsb_child_bounds(*args, partial=True), fsb_child_bounds(*args, partial=False)
    assert torch.equal(torch.isinf(part), torch.isinf(full)) and bool(torch.isinf(full[dom == 0, 0]).all())
    fin = torch.isfinite(full)
    assert bool(fin.any())
    assert torch.allclose(part[fin], full[fin], rtol=1e-9, atol=1e-9), (part - full).abs().max()
    cuts: dict = {}
    backward_lower(g, g.output_name, rows.C.reshape(1, K, *g.output_shape), xl, xh, base, cuts=cuts)
    if kind == "residual":
        assert 0 < len(cuts) < len(relus), (list(cuts), relus)  # the ReLU inside a block is no cut
    else:
        assert sorted(cuts) == sorted(relus)


def test_domain_store_takes_the_worst_and_reuses_freed_slots():
    """The open domains' store: ``take`` returns the smallest priorities with their own rows, ``add`` fills
    freed slots before growing, and ``drop`` forgets a field."""
    from verifier.bab.domain_store import DomainStore

    gen = torch.Generator().manual_seed(0)
    pri = torch.rand(10, generator=gen, dtype=F64)
    rows = torch.arange(10, dtype=F64).reshape(10, 1).repeat(1, 3)
    store = DomainStore({"x": rows, "flag": torch.zeros(10, dtype=torch.int8)}, pri, limit=40)
    got, p = store.take(4)
    assert torch.equal(torch.sort(p).values, torch.sort(pri).values[:4])
    assert torch.equal(got["x"][:, 0], torch.tensor([float(torch.nonzero(pri == v)) for v in p], dtype=F64))
    assert len(store) == 6 and store.capacity == 10
    store.add({"x": torch.full((4, 3), -1.0, dtype=F64), "flag": torch.ones(4, dtype=torch.int8)},
              torch.full((4,), -5.0, dtype=F64))
    assert len(store) == 10 and store.capacity == 10  # the freed slots were reused
    store.add({"x": torch.full((3, 3), -2.0, dtype=F64), "flag": torch.ones(3, dtype=torch.int8)},
              torch.full((3,), -9.0, dtype=F64))
    assert len(store) == 13 and 13 <= store.capacity <= 40 + 3
    got, p = store.take(3)
    assert bool((p == -9.0).all()) and bool((got["x"] == -2.0).all()) and bool((got["flag"] == 1).all())
    store.drop(["flag"])
    got, p = store.take(100)  # more than stored: all of them, worst first
    assert len(store) == 0 and p.shape[0] == 10 and set(got) == {"x"}
    assert int((p == -5.0).sum()) == 4 and bool((p[4:] >= 0).all())
    # a domain whose priority is +inf or NaN is still taken, and freed slots never come back
    store.add({"x": torch.tensor([[7.0] * 3, [8.0] * 3], dtype=F64)}, torch.tensor([float("nan"), float("inf")],
                                                                                   dtype=F64))
    got, p = store.take(5)
    assert len(store) == 0 and sorted(got["x"][:, 0].tolist()) == [7.0, 8.0]


def test_rows_group_reductions_match_a_dense_membership():
    """``Rows`` keeps a row -> group index (a dense rows x groups matrix was 8 GB for 90,000 disjuncts): its
    per-group any / max / open-rows agree with the dense computation on groups of 1, 2 and 3 rows."""
    from verifier.bab.common import Rows
    from verifier.ir.spec import Disjunct, Spec

    box = (np.zeros(2), np.ones(2))
    djs = tuple(Disjunct(*box, np.eye(3)[:m], np.zeros(m)) for m in (1, 2, 3))
    rows = Rows(Spec(2, 3, djs), [0, 1, 2], "cpu", torch.float32)
    member = torch.zeros(6, 3, dtype=torch.bool)
    for g, r in enumerate(rows.groups):
        member[r, g] = True
    gen = torch.Generator().manual_seed(0)
    lb = torch.randn(5, 6, generator=gen)
    flags = lb > 0.3
    assert torch.equal(rows.group_any(flags), (flags.unsqueeze(-1) & member).any(1))
    dense_best = lb.unsqueeze(-1).masked_fill(~member, -float("inf")).max(1).values
    assert torch.equal(rows.group_best(lb), dense_best)
    done = torch.rand(5, 3, generator=gen) > 0.5
    assert torch.equal(rows.rows_open(done), ~(done.unsqueeze(1) & member.unsqueeze(0)).any(-1))
