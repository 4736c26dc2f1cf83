"""Bound computations on the shared benchmarks: time per bound and instances proved, per method.

For every instance of the chosen benchmark folders (default mnist_fc and oval21) this computes the
IBP, CROWN and alpha-CROWN bounds of the spec's objective (no attack, no branching) and reports:
- the median time of one bound computation per network and method;
- how many instances each method proves (every disjunct's lower bound positive beyond rounding);
- any proof on an instance whose expected answer is sat (must be zero: that would be unsound).

Usage: python benchmarks/bench_bounds.py [--bench mnist_fc oval21] [--limit N] [--threads 1]
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from frontends.load import load_problem  # noqa: E402
from verifier.bounds.spec_bounds import bound_spec  # noqa: E402
from verifier.settings import BoundSettings  # noqa: E402

BENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
METHODS = ("ibp", "crown", "alpha-crown")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", nargs="+", default=["mnist_fc", "oval21"])
    ap.add_argument("--limit", type=int, default=0, help="instances per benchmark (0 = all)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.bench:
        folder = BENCH / name
        expected = {(r["onnx"], r["vnnlib"]): r["expected"] for r in csv.DictReader(open(folder / "expected.csv"))}
        rows = [r for r in csv.reader(open(folder / "instances.csv")) if r]
        if args.limit:
            rows = rows[: args.limit]
        times = defaultdict(list)  # (net, method) -> seconds
        proved = defaultdict(int)
        proved_net = defaultdict(int)
        unsound = []
        for onnx, spec, _ in rows:
            p = load_problem(folder / onnx, folder / spec)
            net = Path(onnx).name.replace(".onnx", "")
            for m in METHODS:
                t = time.perf_counter()
                ok, _ = bound_spec(p, BoundSettings(m))
                times[(net, m)].append(time.perf_counter() - t)
                if all(ok):
                    proved[m] += 1
                    proved_net[(net, m)] += 1
                    if expected.get((onnx, spec)) == "sat":
                        unsound.append((onnx, spec, m))
            print(f"{onnx} {spec} " + " ".join(f"{m}={times[(net, m)][-1] * 1000:.0f}ms" for m in METHODS),
                  file=sys.stderr, flush=True)
        print(f"\n== {name}: {len(rows)} instances")
        print(f"{'network':28s} " + " ".join(f"{m + ' ms':>16s}" for m in METHODS) + "   proved " + "/".join(METHODS))
        for net in sorted({k[0] for k in times}):
            med = [statistics.median(times[(net, m)]) * 1000 for m in METHODS]
            n = len(times[(net, METHODS[0])])
            print(f"{net:28s} " + " ".join(f"{v:16.1f}" for v in med) + "   "
                  + "/".join(str(proved_net[(net, m)]) for m in METHODS) + f" of {n}")
        print("proved: " + ", ".join(f"{m} {proved[m]}" for m in METHODS) + f" of {len(rows)}")
        print(f"proofs on expected-sat instances: {len(unsound)} {unsound if unsound else ''}")


if __name__ == "__main__":
    main()
