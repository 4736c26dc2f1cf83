"""``verify bench BENCH_DIR``: run a VNN-COMP benchmark folder, score it, plot it."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from verifier.bench.instances import BenchError
from verifier.bench.job import DEFAULT_GRACE
from verifier.bench.runner import BenchConfig, default_out_dir, plan, run_bench, split_extra
from verifier.bench.scoring import ReportRequest, report
from verifier.settings.bench import BENCH_WORKERS

DESCRIPTION = """\
Run every instance of a VNN-COMP benchmark folder (its instances.csv: onnx,vnnlib,timeout_s),
each in a process of its own hard-killed at timeout + grace, so a crash or an out-of-memory kill
becomes `error` for that instance only: forked from a warm worker per worker slot that imported
the verifier once (--worker warm, the default), or a fresh `python -m verifier.cli` process
(--worker fresh; always with --ray). Rows are appended to OUT/results.csv as instances
finish; running the same command again skips the instances already there (resume). Result
files are kept in OUT/results/.

At the end (or with --report-only) the run is scored with VNN-COMP rules (+10 correct, -150
wrong; sat counterexamples re-checked with onnxruntime) against BENCH_DIR/expected.csv or
--reference, printed as a table, written to OUT/summary.md, and plotted to OUT/cactus.png
(instances solved vs time) with any --compare results of other methods or tools.

Exit status: 0 done, 1 some answer of ours is wrong, 2 bad arguments, 130 interrupted.
"""

EPILOG = """\
examples:
  verify bench ../shared/benchmarks/test --method crown
  verify bench ../shared/benchmarks/acasxu --workers 2 --timeout-scale 0.1
  verify bench ../shared/benchmarks/acasxu --filter 'prop_[12]' --instances 10
  verify bench ../shared/benchmarks/acasxu --report-only \\
      --compare ../shared/vnncomp_results/2023_acasxu.csv --tools alpha_beta_crown,nnenum
  verify bench ../shared/benchmarks/acasxu --ray auto          # on a running Ray cluster
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="run a VNN-COMP benchmark folder (instances.csv), score and plot it",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bench", metavar="BENCH_DIR", help="folder with instances.csv (or the instances CSV itself)")
    run = p.add_argument_group("running")
    run.add_argument("--method", default="auto", help="verification method for every instance (default auto; "
                                                      "see `verify methods`)")
    run.add_argument("--workers", type=int, default=0,
                     help=f"instances run at the same time (default: number of cores, {os.cpu_count()})")
    run.add_argument("--timeout-scale", type=float, default=1.0, metavar="S",
                     help="multiply every instance's timeout by S (default 1)")
    run.add_argument("--timeout", type=float, default=None, metavar="T",
                     help="use T seconds for every instance instead of instances.csv's (then scaled)")
    run.add_argument("--grace", type=float, default=None, metavar="G",
                     help="seconds after the timeout before the process is killed (default 20)")
    run.add_argument("--out", default=None, metavar="DIR",
                     help="output folder (default bench_results/<benchmark>-<method>)")
    run.add_argument("--instances", type=int, default=None, metavar="N", help="run only the first N instances")
    run.add_argument("--filter", default=None, metavar="REGEX",
                     help="run only instances whose 'onnx,vnnlib' matches REGEX (before --instances)")
    run.add_argument("--retry-errors", action="store_true", help="run again the instances recorded as error")
    run.add_argument("--memory-limit", type=int, default=None, metavar="MB",
                     help="address-space limit of each verifier process (an instance over it becomes error)")
    run.add_argument("--verifier-args", action="append", default=[], metavar="ARGS",
                     help="extra arguments for each `verify` process, e.g. --verifier-args='--dtype float64'")
    run.add_argument("--ray", default=None, metavar="ADDRESS",
                     help="run the instances as tasks on a Ray cluster: 'auto' (the running cluster), "
                          "'ray://HOST:10001', or 'local' (start one here); needs `pip install ray` and the "
                          "benchmark files at the same paths on every node")
    run.add_argument("--worker", choices=BENCH_WORKERS, default="warm",
                     help="warm (default): each instance forked from a worker that imported the verifier once "
                          "(a few hundredths of a second per instance); fresh: a new `python -m verifier.cli` "
                          "per instance (1.3-2 s of start-up each)")
    run.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    rep = p.add_argument_group("scoring and plots")
    rep.add_argument("--report-only", action="store_true", help="do not run anything; score and plot OUT's CSV")
    rep.add_argument("--reference", default=None, metavar="CSV",
                     help="reference answers: an expected.csv or another tool's results CSV "
                          "(default BENCH_DIR/expected.csv)")
    rep.add_argument("--reference-tool", default=None, metavar="TOOL",
                     help="the tool to take from --reference when it holds several")
    rep.add_argument("--compare", action="append", default=[], metavar="CSV",
                     help="more results to put in the table and the plot: our results.csv of another run, or a "
                          "competition CSV (../shared/vnncomp_results/*.csv); repeatable")
    rep.add_argument("--tools", default=None, metavar="A,B",
                     help="only these tools from --compare competition CSVs")
    rep.add_argument("--plot", default=None, metavar="PNG", help="cactus plot path (default OUT/cactus.png)")
    rep.add_argument("--no-validate", action="store_true",
                     help="do not re-check sat counterexamples (trust the verdict words)")
    rep.add_argument("--no-report", action="store_true", help="run only; no scoring, summary or plot")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def run(args) -> int:
    out = Path(args.out) if args.out else default_out_dir(args.bench, args.method)
    cfg = BenchConfig(bench=args.bench, out=str(out), method=args.method, workers=args.workers,
                      timeout_scale=args.timeout_scale, timeout=args.timeout,
                      grace=DEFAULT_GRACE if args.grace is None else args.grace, first=args.instances,
                      pattern=args.filter, extra_args=split_extra(args.verifier_args),
                      memory_limit_mb=args.memory_limit, retry_errors=args.retry_errors, ray_address=args.ray,
                      progress=not args.no_progress, worker=args.worker)
    try:
        inst_csv, instances, _, _ = plan(cfg)
    except (BenchError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    interrupted = False
    if not args.report_only:
        try:
            res = run_bench(cfg)
        except BenchError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        interrupted = res.interrupted
        print(f"results: {cfg.csv_path} ({len(res.new_rows)} new, {res.skipped} from before)", file=sys.stderr)
    elif not cfg.csv_path.exists():
        print(f"error: --report-only but {cfg.csv_path} does not exist", file=sys.stderr)
        return 2
    if args.no_report:
        return 130 if interrupted else 0
    return _report(args, cfg, inst_csv.parent, [i.key for i in instances], interrupted)


def _report(args, cfg, bench_dir: Path, keys, interrupted: bool) -> int:
    tools = [t.strip() for t in args.tools.split(",") if t.strip()] if args.tools else None
    plot = Path(args.plot) if args.plot else Path(cfg.out) / "cactus.png"
    md = Path(cfg.out) / "summary.md"
    try:
        rep = report(ReportRequest([cfg.csv_path], bench_dir=bench_dir, method=cfg.method, reference=args.reference,
                                   reference_tool=args.reference_tool, compare=args.compare, tools=tools, keys=keys,
                                   plot=plot, markdown=md, validate=not args.no_validate,
                                   title=f"{bench_dir.name} ({cfg.method})"))
    except (ValueError, OSError) as e:
        print(f"error: cannot score: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(rep.text)
    done = sum(1 for o in rep.scores[0].outcomes if o.note != "no result") if rep.scores else 0
    print(f"\n{done}/{len(keys)} instances have a result; score {rep.scores[0].score if rep.scores else 0}"
          f" of {rep.scores[0].max_score if rep.scores else 0}", file=sys.stdout)
    print(f"summary: {md}\nplot:    {rep.plot}", file=sys.stderr)
    if interrupted:
        return 130
    return 1 if rep.scores and any(s.wrong() for s in rep.scores[:1]) else 0
