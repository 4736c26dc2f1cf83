"""The fuzz suite at scale: seeded mutations of the shipped examples and the benchmark files run through
``verify`` (in forked children of one warm process), judged, counted and grouped by cause.

    python benchmarks/fuzz.py --cases 3000 --seed 1 --timeout 3 --jobs 2 --out /tmp/fuzz1

Prints the counts per failure class and per mutation kind, then each distinct cause (class, normalised
message or exception and where it was raised) with how often it happened, its area, one mutation note and one
reproducer ``verify ...`` command. Writes under ``--out``: ``failures/<case>_<kind>.*`` (the mutated files of the
failing cases, which the reproducers name), ``failures.jsonl`` (every failing case: kind, seed, expectation,
exit, first stdout line, stderr tail, failures, command), ``report.txt`` (what was printed) and ``summary.json``.
The mutated files of passing cases are deleted as soon as they are judged (``--keep`` keeps them). Mutations and
judging: ``tests/fuzzing.py``. Exit status 1 when any case failed.
"""
from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzzing  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=3.0, help="--timeout of each verify run (s)")
    ap.add_argument("--jobs", type=int, default=2, help="cases at once (forked children)")
    ap.add_argument("--mem-cap-mb", type=float, default=3000, help="peak RSS a case may add to the parent's")
    ap.add_argument("--hang-grace", type=float, default=5.0, help="kill a case this long after its timeout")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: a new one under /tmp)")
    ap.add_argument("--kinds", default="", help="comma-separated kinds or prefixes (spec:, model:bad_number, ...)")
    ap.add_argument("--per-benchmark", type=int, default=6, help="specs sampled per benchmark folder")
    ap.add_argument("--no-bench", action="store_true", help="mutate only the shipped examples")
    ap.add_argument("--keep", action="store_true", help="keep the mutated files of passing cases")
    ap.add_argument("--progress", type=int, default=100, help="print a progress line every N cases (0: never)")
    args = ap.parse_args(argv)

    out = (args.out or Path(tempfile.mkdtemp(prefix=f"nnverify-fuzz-s{args.seed}-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work, fail_dir = out / "cases", out / "failures"
    fail_dir.mkdir(exist_ok=True)
    kinds = None
    if args.kinds:
        wanted = [k.strip() for k in args.kinds.split(",") if k.strip()]
        kinds = [k for k in fuzzing.ALL_KINDS if any(k == w or k.startswith(w) for w in wanted)]
        if not kinds:
            ap.error(f"no kind matches {args.kinds!r}; kinds: {', '.join(fuzzing.ALL_KINDS)}")
    bench = Path("/nonexistent") if args.no_bench else fuzzing.BENCH

    t0 = time.monotonic()
    done = [0]
    jsonl = open(out / "failures.jsonl", "w")

    def on_done(run: fuzzing.Run) -> None:
        done[0] += 1
        c = run.case
        mutated = [p for p in (c.spec, c.model) if Path(p).name.startswith(c.id + "_") and Path(p).exists()]
        if run.failures:
            for p in mutated:
                dest = fail_dir / Path(p).name
                shutil.move(p, dest)
                if c.spec == p:
                    c.spec = str(dest)
                if c.model == p:
                    c.model = str(dest)
            jsonl.write(json.dumps(fuzzing.case_record(run)) + "\n")
            jsonl.flush()
        elif not args.keep:
            for p in mutated:
                Path(p).unlink(missing_ok=True)
        if args.progress and done[0] % args.progress == 0:
            print(f"  {done[0]} cases, {time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)

    cases = fuzzing.iter_cases(args.cases, args.seed, work, timeout=args.timeout, kinds=kinds, bench=bench,
                               per_benchmark=args.per_benchmark)
    runs = fuzzing.run_cases(cases, jobs=args.jobs, mem_cap_mb=args.mem_cap_mb, hang_grace=args.hang_grace,
                             on_done=on_done)
    jsonl.close()
    elapsed = time.monotonic() - t0
    report = render(runs, args, elapsed)
    print(report)
    (out / "report.txt").write_text(report + "\n")
    (out / "summary.json").write_text(json.dumps(summary(runs, args, elapsed), indent=1))
    print(f"\noutput: {out}")
    return 1 if any(r.failures for r in runs) else 0


def summary(runs, args, elapsed) -> dict:
    by_class = collections.Counter(cls for r in runs for cls in {k for k, _ in r.failures})
    return {"cases": len(runs), "seed": args.seed, "timeout": args.timeout, "elapsed_s": round(elapsed, 1),
            "failing_cases": sum(1 for r in runs if r.failures),
            "by_class": {k: by_class.get(k, 0) for k in fuzzing.CLASSES},
            "verdicts": dict(collections.Counter(r.first_line or "(none)" for r in runs)),
            "expectations": dict(collections.Counter(r.case.expect for r in runs)),
            "per_kind": {k: {"cases": len(rs), "failing": sum(1 for r in rs if r.failures),
                             "mean_wall_s": round(sum(r.wall for r in rs) / len(rs), 3),
                             "mean_cpu_s": round(sum(r.cpu for r in rs) / len(rs), 3),
                             "verdicts": dict(collections.Counter(r.first_line or "(none)" for r in rs))}
                         for k, rs in sorted(_by_kind(runs).items())}}


def _by_kind(runs) -> dict:
    out = collections.defaultdict(list)
    for r in runs:
        out[r.case.kind].append(r)
    return out


def render(runs, args, elapsed) -> str:
    s = summary(runs, args, elapsed)
    lines = [f"fuzz: {s['cases']} cases, seed {args.seed}, --timeout {args.timeout:g}, {elapsed:.0f}s; "
             f"{s['failing_cases']} failing",
             "expectations: " + ", ".join(f"{k} {v}" for k, v in sorted(s["expectations"].items())),
             "verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(s["verdicts"].items())),
             "", "failing cases per class:"]
    lines += [f"  {k:24s} {v}" for k, v in s["by_class"].items()]
    lines.append(f"  {'(wall / cpu s, all)':24s} {sum(r.wall for r in runs):.0f} / {sum(r.cpu for r in runs):.0f}")
    per_kind = collections.defaultdict(lambda: [0, 0, collections.Counter()])
    for r in runs:
        row = per_kind[r.case.kind]
        row[0] += 1
        if r.failures:
            row[1] += 1
            row[2].update({k for k, _ in r.failures})
    lines += ["", "per mutation kind (failing / cases: classes):"]
    for kind in sorted(per_kind):
        total, bad, classes = per_kind[kind]
        detail = ", ".join(f"{k} {v}" for k, v in classes.most_common())
        lines.append(f"  {kind:28s} {bad:4d} / {total:4d}  {detail}")
    lines += ["", "causes (class, count, cause | area | kinds; a mutation; a reproducer):",
              fuzzing.describe(runs, limit=200) or "  none"]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
