#!/usr/bin/env python3
"""Attack acceptance benchmark: ``verify --method attack`` on the ACAS Xu instances.

The acceptance criterion: validated counterexamples for at least 40 of the 47 ACAS Xu
instances whose expected answer (``expected.csv``) is ``sat``, each within its own timeout,
and never ``sat`` on an instance whose expected answer is ``unsat``.

Every ``sat`` is re-checked here with the competition checker's rules
(``verifier.resultfile.check_counterexample`` with onnxruntime) after a round trip through
the result-file text, so a counterexample that would fail the competition checker does not
count.

Usage::

    python benchmarks/bench_attack.py [--bench DIR] [--timeout-scale 1.0] [--max-timeout S]
                                      [--unsat-timeout S] [--threads 1] [--csv out.csv]

``--unsat-timeout S`` also runs the attack on every expected-``unsat`` instance for S seconds
(0, the default, skips them). Runs in one process, one instance after the other.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_BENCH = ROOT.parent / "shared" / "benchmarks" / "acasxu"


def read_instances(bench: Path) -> list[tuple[str, str, float, str]]:
    timeouts = {}
    with open(bench / "instances.csv") as f:
        for row in csv.reader(f):
            if len(row) >= 3 and row[0].strip():
                timeouts[(row[0].strip(), row[1].strip())] = float(row[2])
    out = []
    with open(bench / "expected.csv") as f:
        for row in csv.DictReader(f):
            key = (row["onnx"], row["vnnlib"])
            out.append((row["onnx"], row["vnnlib"], timeouts.get(key, 116.0), row["expected"]))
    return out


def run_one(bench: Path, onnx: str, vnnlib: str, timeout: float, seed: int):
    import numpy as np

    from frontends.onnx.reference import OnnxReference
    from frontends.result_file import check_counterexample, format_result, parse_result_text
    from verifier.api import verify
    from verifier.settings.options import AttackSettings, VerifyOptions

    opts = VerifyOptions(seed=seed, attack=AttackSettings(seed=seed))
    t0 = time.monotonic()
    res = verify(bench / onnx, bench / vnnlib, method="attack", timeout=timeout, options=opts)
    wall = time.monotonic() - t0
    checked = ""
    if str(res.verdict) == "sat":
        from frontends.vnnlib.v1 import load_vnnlib

        word, x, y = parse_result_text(format_result(res))
        spec = load_vnnlib(bench / vnnlib)
        ref = OnnxReference(bench / onnx)
        ok, why = check_counterexample(ref.run, spec, np.asarray(x), np.asarray(y))
        checked = "ok" if ok else f"REJECTED: {why}"
    return str(res.verdict), wall, checked, res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, default=DEFAULT_BENCH)
    ap.add_argument("--timeout-scale", type=float, default=1.0, help="multiply each instance's timeout")
    ap.add_argument("--max-timeout", type=float, default=None, help="cap each instance's timeout (seconds)")
    ap.add_argument("--unsat-timeout", type=float, default=0.0,
                    help="also attack the expected-unsat instances for this many seconds each (0: skip)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="substring filter on 'onnx,vnnlib'")
    ap.add_argument("--csv", type=Path, help="write per-instance rows here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if not args.bench.is_dir():
        print(f"benchmark folder not found: {args.bench}", file=sys.stderr)
        return 2
    rows = []
    inst = [i for i in read_instances(args.bench) if args.only in f"{i[0]},{i[1]}"]
    sat_inst = [i for i in inst if i[3] == "sat"]
    unsat_inst = [i for i in inst if i[3] == "unsat"] if args.unsat_timeout > 0 else []
    found = wrong = rejected = late = 0
    t_all = time.monotonic()
    print(f"{'instance':60s} {'expect':6s} {'verdict':8s} {'time_s':>8s} {'limit':>6s}  check", flush=True)
    for onnx, vnnlib, timeout, expected in sat_inst + unsat_inst:
        limit = timeout * args.timeout_scale if expected == "sat" else args.unsat_timeout
        if args.max_timeout is not None:
            limit = min(limit, args.max_timeout)
        verdict, wall, checked, res = run_one(args.bench, onnx, vnnlib, limit, args.seed)
        name = f"{Path(onnx).name.replace('_batch_2000.onnx', '')},{Path(vnnlib).name}"
        if verdict == "sat":
            if expected == "unsat":
                wrong += 1
            elif checked != "ok":
                rejected += 1
            elif wall > timeout:
                late += 1
            else:
                found += 1
        print(f"{name:60s} {expected:6s} {verdict:8s} {wall:8.2f} {limit:6.0f}  {checked}", flush=True)
        rows.append(dict(onnx=onnx, vnnlib=vnnlib, expected=expected, verdict=verdict, time_s=f"{wall:.3f}",
                         timeout=limit, check=checked, best_loss=res.stats.get("attack_best", ""),
                         rounds=res.stats.get("attack_rounds", "")))
    total = time.monotonic() - t_all
    sat_times = sorted(float(r["time_s"]) for r in rows if r["expected"] == "sat" and r["verdict"] == "sat")
    print(f"\nfound {found} of {len(sat_inst)} expected-sat instances (validated, within timeout); "
          f"rejected by checker: {rejected}; over timeout: {late}; "
          f"sat on expected-unsat: {wrong} of {len(unsat_inst)} run")
    if sat_times:
        print(f"time to counterexample: median {sat_times[len(sat_times) // 2]:.2f}s, max {sat_times[-1]:.2f}s, "
              f"sum {sum(sat_times):.1f}s; whole run {total:.1f}s")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["onnx"])
            w.writeheader()
            w.writerows(rows)
    ok = found >= min(40, len(sat_inst)) and wrong == 0 and rejected == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
