"""Does `verify --timeout T` answer within T + 1 s wall? A sweep over the hardest shared instances.

Usage: python benchmarks/timeout_sweep.py [--timeout 20] [--per-bench 3] [--benchmarks acasxu,mnist_fc,oval21,eran]
       [--root ../shared] [--threads 1] [--method auto] [--csv OUT.csv] [-- EXTRA VERIFY ARGS]

Each instance runs as its own `python -m verifier.cli MODEL SPEC --timeout T --threads 1` process, one at a
time; the wall time is measured from before the process starts until it has exited (interpreter start-up,
imports, loading and shutdown included: what a user's shell sees). Prints per instance the wall time, the
verdict (first line of stdout) and the overrun (wall - timeout), then the worst overrun.

The instances are picked by features, not by names: per benchmark, those whose expected answer
(expected.csv) is unknown or a tie first, then those the VNN-COMP tools (../shared/vnncomp_results/*.csv)
took longest on (the median time of the tools that answered sat or unsat; a tool's timeout counts as its
time limit): the instances a verifier is most likely to spend its whole budget on.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BENCHMARKS = ("acasxu", "mnist_fc", "oval21", "eran")


def _plain(name: str) -> str:
    return name[:-3] if name.endswith(".gz") else name


def competition_times(results_dir: Path, bench: str) -> dict[tuple[str, str], list[float]]:
    """(onnx, vnnlib) -> the times of every tool and year that answered it (timeouts count as their limit)."""
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for path in sorted(results_dir.glob(f"*_{bench}.csv")):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    t = float(row["time_s"])
                except (KeyError, ValueError):
                    continue
                if row.get("result") in ("sat", "unsat", "timeout"):
                    times[(_plain(row["onnx"]), _plain(row["vnnlib"]))].append(t)
    return times


def instances_csv(bdir: Path) -> Path | None:
    """``instances.csv`` of a benchmark folder, or its one ``*instances.csv`` (eran names it so)."""
    if (bdir / "instances.csv").exists():
        return bdir / "instances.csv"
    found = sorted(bdir.glob("*instances.csv"))
    return found[0] if found else None


def hardest(root: Path, bench: str, n: int) -> list[tuple[str, str, str, float]]:
    """The ``n`` hardest instances of ``bench``: (onnx, vnnlib, expected, hardness); unknown/tie first."""
    bdir = root / "benchmarks" / bench
    expected = {}
    with open(bdir / "expected.csv", newline="") as f:
        for row in csv.DictReader(f):
            expected[(_plain(row["onnx"]), _plain(row["vnnlib"]))] = row["expected"]
    times = competition_times(root / "vnncomp_results", bench)
    scored = []
    with open(instances_csv(bdir), newline="") as f:
        for row in csv.reader(f):
            if len(row) < 3:
                continue
            key = (_plain(row[0].strip()), _plain(row[1].strip()))
            exp = expected.get(key, "unknown")
            ts = times.get(key, [])
            med = statistics.median(ts) if ts else 0.0
            first = 1 if exp in ("unknown", "tie", "timeout") else 0
            scored.append((first, med, key, exp))
    scored.sort(key=lambda s: (-s[0], -s[1]))
    seen, out = set(), []
    for first, med, key, exp in scored:
        if key in seen:
            continue
        seen.add(key)
        out.append((key[0], key[1], exp, med))
        if len(out) == n:
            break
    return out


def run_one(model: Path, spec: Path, timeout: float, threads: int, method: str, extra: list[str]):
    cmd = [sys.executable, "-m", "verifier.cli", str(model), str(spec), "--timeout", repr(timeout),
           "--threads", str(threads), "--method", method, *extra]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout + 120)
    wall = time.monotonic() - t0
    lines = proc.stdout.splitlines()
    verdict = lines[0].strip() if lines else "(none)"
    summary = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return wall, verdict, proc.returncode, summary[-1] if summary else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--per-bench", type=int, default=3)
    ap.add_argument("--benchmarks", default=",".join(DEFAULT_BENCHMARKS))
    ap.add_argument("--root", default=str(ROOT.parent / "shared"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--method", default="auto")
    ap.add_argument("--csv", default="")
    ap.add_argument("--list", action="store_true", help="only list the instances picked")
    ap.add_argument("extra", nargs="*", help="more arguments for each verify process (after --)")
    args = ap.parse_args(argv)
    root = Path(args.root)
    picked = []
    for bench in [b.strip() for b in args.benchmarks.split(",") if b.strip()]:
        if instances_csv(root / "benchmarks" / bench) is None:
            print(f"skip {bench}: no instances CSV in {root / 'benchmarks' / bench}", file=sys.stderr)
            continue
        picked += [(bench, *h) for h in hardest(root, bench, args.per_bench)]
    if args.list:
        for bench, onnx, vnnlib, exp, med in picked:
            print(f"{bench:9s} {onnx} {vnnlib} expected={exp} median_competition_time={med:.1f}s")
        return 0
    out = open(args.csv, "w", newline="") if args.csv else None
    if out:
        out.write("bench,onnx,vnnlib,expected,verdict,exit,wall_s,overrun_s\n")
    print(f"timeout {args.timeout:g} s, --threads {args.threads}, method {args.method}, {len(picked)} instances")
    print(f"{'benchmark':9s} {'instance':60s} {'expected':8s} {'verdict':8s} {'wall':>7s} {'overrun':>8s}")
    rows = []
    for bench, onnx, vnnlib, exp, _ in picked:
        bdir = root / "benchmarks" / bench
        wall, verdict, rc, last = run_one(bdir / onnx, bdir / vnnlib, args.timeout, args.threads, args.method,
                                          args.extra)
        over = wall - args.timeout
        rows.append((bench, onnx, vnnlib, exp, verdict, rc, wall, over))
        name = f"{Path(onnx).stem}/{Path(vnnlib).stem}"
        print(f"{bench:9s} {name[:60]:60s} {exp:8s} {verdict:8s} {wall:6.2f}s {over:+7.2f}s", flush=True)
        if verdict not in ("sat", "unsat", "unknown", "timeout") or rc not in (0,):
            print(f"          exit {rc}: {last}", flush=True)
        if out:
            out.write(f"{bench},{onnx},{vnnlib},{exp},{verdict},{rc},{wall:.3f},{over:.3f}\n")
            out.flush()
    if rows:
        worst = max(rows, key=lambda r: r[7])
        print(f"\nworst overrun {worst[7]:+.2f} s ({worst[0]} {Path(worst[1]).stem}/{Path(worst[2]).stem}, "
              f"wall {worst[6]:.2f} s); over T + 1 s: {sum(r[7] > 1.0 for r in rows)} of {len(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
