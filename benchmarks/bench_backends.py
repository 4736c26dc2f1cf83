"""Backends side by side on a few ACAS Xu and mnist_fc instances, and HiGHS vs Gurobi vs CBC on one MILP.

    python benchmarks/bench_backends.py                 # default instances
    python benchmarks/bench_backends.py --timeout 60 --solver-timeout 60 --skip-mnist

Part 1: per instance, each method's verdict, bound (a lower bound of
``min over the box of max_i (C y - d)_i``; > 0 proves the property) and time:
``crown``, ``alpha-crown``, ``dual`` (Wong-Kolter), ``lp`` (triangle LP), ``milp``
(decision mode: stops once the sign is known, so its bound is the proven one, not
the optimum).

Part 2: the same MILP (the instance's first unproven disjunct on its whole box,
CROWN big-M constants, no input splitting and no tightening) solved to optimality
by each solver, with its status, optimum and time. Gurobi's pip licence is
size-limited: a model beyond it falls back to HiGHS, and the table says so.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backends.core_bounds import compute_core_bounds  # noqa: E402
from backends.encoding import encode_network  # noqa: E402
from backends.solvers import make_solver  # noqa: E402
from frontends.load import load_problem  # noqa: E402
from verifier.api.compare import compare_problem  # noqa: E402
from verifier.ir.problem import Problem  # noqa: E402

BENCH = ROOT.parent / "shared" / "benchmarks"
ACAS = [("ACASXU_run2a_1_1_batch_2000.onnx", "prop_4.vnnlib"),
        ("ACASXU_run2a_2_7_batch_2000.onnx", "prop_3.vnnlib"),
        ("ACASXU_run2a_1_7_batch_2000.onnx", "prop_4.vnnlib"),
        ("ACASXU_run2a_3_3_batch_2000.onnx", "prop_9.vnnlib")]
MNIST = [("mnist-net_256x2.onnx", "prop_0_0.03.vnnlib"),
         ("mnist-net_256x2.onnx", "prop_1_0.05.vnnlib")]
SOLVER_MILPS = [("acasxu", "ACASXU_run2a_2_7_batch_2000.onnx", "prop_4.vnnlib"),
                ("acasxu", "ACASXU_run2a_1_4_batch_2000.onnx", "prop_4.vnnlib"),
                ("mnist_fc", "mnist-net_256x2.onnx", "prop_0_0.03.vnnlib"),
                ("mnist_fc", "mnist-net_256x4.onnx", "prop_0_0.03.vnnlib")]
METHODS = ("crown", "alpha-crown", "dual", "lp", "milp")


def _load(folder, onnx_name, spec_name) -> Problem:
    return load_problem(BENCH / folder / "onnx" / onnx_name, BENCH / folder / "vnnlib" / spec_name)


def part1(instances, timeout) -> None:
    print(f"== backends side by side (bound: lower bound of min max_i (C y - d)_i; timeout {timeout:g} s each)")
    head = f"{'instance':42s}" + "".join(f"{m:>24s}" for m in METHODS)
    print(head)
    for folder, onnx_name, spec_name in instances:
        prob = _load(folder, onnx_name, spec_name)
        rows = compare_problem(prob, METHODS, timeout)
        cells = []
        for r in rows:
            b = "-" if r.bound is None else f"{r.bound:.4g}"
            cells.append(f"{r.verdict[:5]} {b} {r.time_s:.2f}s")
        name = f"{folder}/{onnx_name.replace('_batch_2000.onnx', '').replace('.onnx', '')}/{spec_name[:-7]}"
        print(f"{name:42s}" + "".join(f"{c:>24s}" for c in cells), flush=True)


def part2(milps, timeout) -> None:
    print(f"\n== the same MILP with each solver (exact optimum, no splitting/tightening; limit {timeout:g} s)")
    print(f"{'instance':42s}{'model':>26s}{'solver':>9s}{'status':>12s}{'optimum':>14s}{'time':>9s}  note")
    for folder, onnx_name, spec_name in milps:
        prob = _load(folder, onnx_name, spec_name)
        g = prob.graph.to(dtype=torch.float64)
        core = compute_core_bounds(g, prob.spec)
        region = core.regions[0]
        j = min(region.disjuncts, key=region.crown_value)
        enc = encode_network(g, region.pre, region.lo, region.hi, "milp")
        dj = prob.spec.disjuncts[j]
        model = enc.with_objective(dj.C, dj.d)
        size = f"{model.n_vars}v/{model.n_rows}r/{model.n_integer}b"
        name = f"{folder}/{onnx_name.replace('_batch_2000.onnx', '').replace('.onnx', '')}/{spec_name[:-7]}"
        for s in ("highs", "gurobi", "cbc"):
            solver = make_solver(s, threads=1)
            t0 = time.perf_counter()
            out = solver.solve(model, timeout)
            dt = time.perf_counter() - t0
            note = "; ".join(getattr(solver, "messages", []))[:90]
            opt = "-" if out.objective is None else f"{out.objective:.6g}"
            print(f"{name:42s}{size:>26s}{s:>9s}{out.status.value:>12s}{opt:>14s}{dt:>8.2f}s  {note}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per method and instance (part 1)")
    ap.add_argument("--solver-timeout", type=float, default=120.0, help="seconds per solver (part 2)")
    ap.add_argument("--skip-mnist", action="store_true")
    ap.add_argument("--part", choices=["1", "2", "both"], default="both")
    args = ap.parse_args(argv)
    if not BENCH.is_dir():
        print(f"benchmarks not found at {BENCH}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    inst = [("acasxu", a, b) for a, b in ACAS] + ([] if args.skip_mnist else [("mnist_fc", a, b) for a, b in MNIST])
    milps = [m for m in SOLVER_MILPS if not (args.skip_mnist and m[0] == "mnist_fc")]
    if args.part in ("1", "both"):
        part1(inst, args.timeout)
    if args.part in ("2", "both"):
        part2(milps, args.solver_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
