"""Tabular-shaped nets (tens of inputs, a few hundred ReLUs; issue 23): every instance decided within 20 s?

Builds fully connected ReLU classifiers (random initialisation and briefly trained, ``tests/tabular_models.py``),
robustness instances in the band between the radius CROWN proves and the one PGD breaks, and runs ``verify``
on each, one process per instance as the competition does, with each method asked for. Prints per method the
instances decided, the verdicts and the wall times, and checks the methods never disagree.

    python benchmarks/tabular_nets.py --methods auto,milp --timeout 20
    python benchmarks/tabular_nets.py --folder /tmp/tab --reuse   # the instances written by an earlier run
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tests.tabular_models import make_net, synthetic_data, write_instances  # noqa: E402

SHAPES = {"30x64x64": (30, (64, 64), 3), "30x128x128": (30, (128, 128), 3), "40x100x100x100": (40, (100,) * 3, 2)}


def build(folder: Path, shapes, seeds, points: int, fractions) -> list[tuple[str, str]]:
    rows = []
    for shape in shapes:
        n_in, hidden, n_out = SHAPES[shape]
        for seed in seeds:
            for epochs in (0, 30):
                net = make_net(seed, n_in, hidden, n_out, epochs)
                x, _ = synthetic_data(1000 + seed, n=points, d=n_in, k=n_out)
                name = f"{shape}_s{seed}_{'trained' if epochs else 'random'}"
                for p in range(points):
                    for m, s in write_instances(net, folder, name, x[p], fractions, f"_p{p}"):
                        rows.append((m, s))
                        print(f"built {Path(s).name}", flush=True)
    with open(folder / "instances.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return rows


def run(model: str, spec: str, method: str, timeout: float) -> tuple[str, float]:
    extra = ["--solver", "gurobi"] if method == "milp-gurobi" else []
    cmd = [sys.executable, "-m", "verifier.cli", model, spec, "--method", method.split("-")[0],
           "--timeout", str(timeout), *extra]
    t = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60,
                         cwd=ROOT).stdout.strip().splitlines()  # this checkout's verifier, not another install
    verdict = out[0].split()[0] if out else "error"
    return verdict, time.monotonic() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", default="/tmp/tabular_nets", help="where the instances are written")
    ap.add_argument("--reuse", action="store_true", help="run the instances.csv an earlier run wrote there")
    ap.add_argument("--shapes", default="30x64x64,30x128x128,40x100x100x100")
    ap.add_argument("--seeds", type=int, default=2, help="nets per shape and kind (random, trained)")
    ap.add_argument("--points", type=int, default=2, help="points per net")
    ap.add_argument("--fractions", default="0.5,0.9", help="where in the CROWN..PGD band each spec lies")
    ap.add_argument("--methods", default="auto", help="comma-separated: auto, milp, milp-gurobi, bab, ...")
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args(argv)
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    if args.reuse:
        with open(folder / "instances.csv") as fh:
            rows = [tuple(r) for r in csv.reader(fh)]
    else:
        rows = build(folder, args.shapes.split(","), range(args.seeds), args.points,
                     [float(f) for f in args.fractions.split(",")])
    methods = args.methods.split(",")
    answers: dict[str, dict[str, tuple[str, float]]] = {m: {} for m in methods}
    for model, spec in rows:
        line = [Path(spec).stem]
        for m in methods:
            answers[m][spec] = run(model, spec, m, args.timeout)
            line.append(f"{m} {answers[m][spec][0]} {answers[m][spec][1]:.1f}s")
        print("  ".join(line), flush=True)
    print(f"\n{len(rows)} instances, timeout {args.timeout:g} s, one process per instance")
    wrong = 0
    for spec in answers[methods[0]]:
        decided = {answers[m][spec][0] for m in methods} & {"sat", "unsat"}
        wrong += len(decided) > 1
    for m in methods:
        res = list(answers[m].values())
        dec = [t for v, t in res if v in ("sat", "unsat")]
        counts = {v: sum(1 for r in res if r[0] == v) for v in sorted({r[0] for r in res})}
        print(f"{m:12s} decided {len(dec)}/{len(res)}  {counts}  wall total {sum(t for _, t in res):.1f} s  "
              f"max decided {max(dec) if dec else 0:.1f} s  median {np.median([t for _, t in res]):.1f} s")
    print(f"disagreements between methods: {wrong}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
