"""Run a benchmark folder in-process with --method auto and print solved counts and times.

Usage: python benchmarks/run_suite.py BENCH_DIR [BENCH_DIR ...] [--method auto] [--timeout-scale 1.0]
       [--limit N] [--every K] [--filter REGEX] [--csv OUT.csv] [--threads N] [--device cpu|cuda]
Compares every answer with BENCH_DIR/expected.csv (wrong = sat where unsat is expected or the
reverse) and ends with a table per folder. The acceptance run of the branch and bound:
    python benchmarks/run_suite.py ../shared/benchmarks/{test,acasxu,mnist_fc,oval21}
This is how the figures of the branch-and-bound note are produced (one instance at a time, on every
core unless --threads says otherwise); `verify bench` is the isolated, parallel runner for whole suites.
"""
from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from verifier.api import verify  # noqa: E402
from verifier.settings.options import VerifyOptions  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", nargs="+", help="benchmark folders (each with instances.csv)")
    ap.add_argument("--method", default="auto")
    ap.add_argument("--timeout-scale", type=float, default=1.0)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--every", type=int, default=1,
                    help="only every K-th instance of instances.csv (the 1st, the K+1-th, ...), after --filter")
    ap.add_argument("--filter", default="", type=re.compile,
                    help="only the instances whose instances.csv line matches this regular expression, e.g. "
                         "'256x4.*prop_(5|10)_0.05' or 'img(3568|8517)' (a plain substring works too)")
    ap.add_argument("--csv", default="")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads per instance (0: every core)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    out = open(args.csv, "w", newline="") if args.csv else None
    if out:
        out.write("bench,onnx,vnnlib,verdict,expected,time_s,method\n")
    table = [run_bench(Path(b), args, out) for b in args.bench]
    if len(table) > 1:
        print("\n| benchmark | solved | wrong | total time of solved | median |")
        print("|---|---|---|---|---|")
        for name, solved, n, wrong, times in table:
            med = f"{statistics.median(times):.2f}s" if times else "-"
            print(f"| {name} | {solved}/{n} | {wrong} | {sum(times):.1f}s | {med} |")


def run_bench(bench: Path, args, out):
    """Run one folder; print each instance and the folder's summary. Returns (name, solved, n, wrong, times)."""
    inst = bench / "instances.csv"
    if not inst.exists():
        inst = next(bench.glob("*instances.csv"))
    expected = {}
    if (bench / "expected.csv").exists():
        for row in csv.DictReader(open(bench / "expected.csv")):
            expected[(row["onnx"], row["vnnlib"])] = row["expected"]
    rows = [r for r in csv.reader(open(inst)) if r and args.filter.search(",".join(r))]
    rows = rows[:: max(1, args.every)]
    if args.limit:
        rows = rows[: args.limit]
    counts, wrong, times, by_net = Counter(), [], [], {}
    for onnx, spec, timeout in rows:
        t0 = time.monotonic()
        r = verify(bench / onnx, bench / spec, method=args.method, timeout=float(timeout) * args.timeout_scale,
                   options=VerifyOptions(threads=args.threads, device=args.device))
        dt = time.monotonic() - t0
        exp = expected.get((onnx, spec), "?")
        v = str(r.verdict)
        counts[v] += 1
        bad = (v == "sat" and exp == "unsat") or (v == "unsat" and exp == "sat")
        if bad:
            wrong.append((onnx, spec, v, exp))
        if v in ("sat", "unsat"):
            times.append(dt)
        net = Path(onnx).stem
        s, n = by_net.get(net, (0, 0))
        by_net[net] = (s + (v in ("sat", "unsat")), n + 1)
        print(f"{onnx},{spec},{v},{exp},{dt:.2f},{r.method}{'  WRONG' if bad else ''}", flush=True)
        if out:
            out.write(f"{bench.name},{onnx},{spec},{v},{exp},{dt:.3f},{r.method}\n")
            out.flush()
    solved = counts["sat"] + counts["unsat"]
    print(f"\n{bench.name}: solved {solved}/{len(rows)}  ({dict(counts)})  wrong {len(wrong)}")
    if times:
        print(f"time of solved: total {sum(times):.1f}s  median {statistics.median(times):.2f}s")
    for net, (s, n) in sorted(by_net.items()):
        print(f"  {net}: {s}/{n}")
    for w in wrong:
        print("WRONG:", *w)
    return bench.name, solved, len(rows), len(wrong), times


if __name__ == "__main__":
    main()
