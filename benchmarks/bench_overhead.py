"""Overhead per instance of `verify bench` with the warm worker and with a fresh process per instance.

    python benchmarks/bench_overhead.py [-n 20] [--method auto] [--workers 1] [--worker warm,fresh]

Builds, in a temporary folder, a tiny ReLU network (2-8-8-2, onnx.helper) and ``-n`` specs whose answer
is immediate (half unsat: Y_0 >= 1000 on a small box; half sat: Y_0 <= 1000), with an instances.csv,
then runs ``python -m verifier.cli bench`` on it once per worker kind. Per instance, the overhead is the
row's wall time (``time_s``: from the start of its process, or its fork, to its end) minus the
verifier's own time (``solve_s``, what ``verify`` reports); the run's total wall time and the overhead
per instance over the whole command (runner and worker start-up included) are printed too. Every
verdict is checked against the expected one (the script exits 1 on a wrong answer or an error row).
"""
from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 0.3  # issue 23: under 0.3 s of overhead per instance with the warm worker


def tiny_net(path: Path, sizes=(2, 8, 8, 2), seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "X"
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
        b = (0.1 * rng.standard_normal(n_out)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{k}"), numpy_helper.from_array(b, f"b{k}")]
        last = k == len(sizes) - 2
        pre = "Y" if last else f"pre{k}"
        nodes.append(helper.make_node("Gemm", [x, f"W{k}", f"b{k}"], [pre], transB=1, name=f"gemm{k}"))
        if not last:
            nodes.append(helper.make_node("Relu", [pre], [f"h{k}"], name=f"relu{k}"))
        x = pre if last else f"h{k}"
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, sizes[0]])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, sizes[-1]])], initializer=inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def spec(centre: np.ndarray, sat: bool) -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(centre.size)] + ["(declare-const Y_0 Real)",
                                                                           "(declare-const Y_1 Real)"]
    for i, c in enumerate(centre):
        lines += [f"(assert (>= X_{i} {float(c) - 0.01!r}))", f"(assert (<= X_{i} {float(c) + 0.01!r}))"]
    lines.append("(assert (<= Y_0 1000.0))" if sat else "(assert (>= Y_0 1000.0))")
    return "\n".join(lines) + "\n"


def build(folder: Path, n: int) -> dict[str, str]:
    tiny_net(folder / "tiny.onnx")
    rng = np.random.default_rng(1)
    expected, rows = {}, []
    for i in range(n):
        sat = i % 2 == 1
        name = f"spec_{i:03d}.vnnlib"
        (folder / name).write_text(spec(rng.uniform(-1, 1, 2), sat))
        rows.append(f"tiny.onnx,{name},30\n")
        expected[name] = "sat" if sat else "unsat"
    (folder / "instances.csv").write_text("".join(rows))
    return expected


def run(folder: Path, worker: str, method: str, workers: int, expected: dict[str, str]) -> dict:
    out = folder / f"out-{worker}"
    cmd = [sys.executable, "-m", "verifier.cli", "bench", str(folder), "--method", method, "--workers",
           str(workers), "--worker", worker, "--out", str(out), "--no-report", "--no-progress"]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: exit {p.returncode}\n{p.stderr}")
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    bad = [r for r in rows if r["verdict"] != expected[r["vnnlib"]]]
    if bad or len(rows) != len(expected):
        sys.exit(f"{worker}: {len(rows)} rows, unexpected verdicts: "
                 + "; ".join(f"{r['vnnlib']} {r['verdict']} ({r['reason']})" for r in bad))
    over = [float(r["time_s"]) - float(r["solve_s"]) for r in rows]
    solve = sum(float(r["solve_s"]) for r in rows)
    return {"worker": worker, "n": len(rows), "wall": wall, "median": statistics.median(over), "mean":
            statistics.fmean(over), "max": max(over), "whole": (wall - solve) / len(rows)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20, help="instances (default 20)")
    ap.add_argument("--method", default="auto")
    ap.add_argument("--workers", type=int, default=1, help="worker slots (default 1: no contention between them)")
    ap.add_argument("--worker", default="warm,fresh", help="the worker kinds to measure, in order")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_overhead_") as tmp:
        folder = Path(tmp)
        expected = build(folder, args.n)
        results = [run(folder, w.strip(), args.method, args.workers, expected) for w in args.worker.split(",")]
    print(f"{args.n} trivially decided instances (--method {args.method}, --workers {args.workers}); overhead = "
          f"row wall time - verify's own time")
    print(f"{'worker':8s} {'median':>8s} {'mean':>8s} {'max':>8s}   {'run wall':>9s} {'per instance, whole run':>24s}")
    for r in results:
        print(f"{r['worker']:8s} {r['median']:7.3f}s {r['mean']:7.3f}s {r['max']:7.3f}s   {r['wall']:8.2f}s "
              f"{r['whole']:23.3f}s")
    warm = next((r for r in results if r["worker"] == "warm"), None)
    if warm is not None:
        verdict = "meets" if warm["median"] < TARGET_S else "MISSES"
        print(f"warm median overhead {warm['median']:.3f} s per instance: {verdict} the {TARGET_S} s target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
