"""Command line: ``verify MODEL.onnx SPEC.vnnlib`` and the subcommands.

stdout carries the verdict on its first line (and, after ``sat``, the
counterexample in the VNN-COMP format); logs go to stderr.
Exit codes: 0 for a computed verdict (sat, unsat, unknown, timeout), 2 for
``error`` (bad input, unsupported model).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand name -> module exposing add_parser(subparsers) and run(args) -> int
SUBCOMMANDS = {
    "compare": "verifier.cli_compare",
    "bench": "verifier.cli_bench",
    "smooth": "verifier.cli_smooth",
    "lipschitz": "verifier.cli_lipschitz",
    "methods": None,
}

DESCRIPTION = """\
Formal verification of ReLU networks (ONNX) against VNN-LIB properties.

  verify MODEL.onnx SPEC.vnnlib [options]     prove (unsat) or falsify (sat) a property
  verify compare MODEL SPEC                   run several methods side by side
  verify bench BENCH_DIR                      run a VNN-COMP benchmark folder
  verify smooth MODEL --data X.npz --sigma S  randomized-smoothing certificates
  verify lipschitz MODEL --data X.npz         Lipschitz certificates
  verify methods                              list the methods for --method

The first line of stdout is the verdict: sat (a counterexample, validated with
onnxruntime, follows), unsat (proven), unknown, timeout or error.
"""


def build_verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="verify", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="ONNX model (.onnx or .onnx.gz)")
    p.add_argument("spec", help="VNN-LIB property (.vnnlib or .vnnlib.gz)")
    p.add_argument("--method", default="auto",
                   help="verification method (default: auto; see `verify methods`): auto, bab, attack, ibp, crown, "
                        "alpha-crown, milp, lp, dual, lipschitz")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for the whole run (default 300)")
    p.add_argument("--result-file", help="write the VNN-COMP result file here")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="precision of bound computations (default float32)")
    p.add_argument("--solver", default="highs", choices=["highs", "gurobi", "cbc"],
                   help="MILP/LP solver for --method milp/lp (default highs)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the attack")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for PyTorch (default 0: every core, or OMP_NUM_THREADS when set; "
                        "use 1 when several runs share the machine)")
    p.add_argument("-v", "--verbose", action="store_true", help="progress and statistics on stderr")
    p.add_argument("-q", "--quiet", action="store_true", help="only the verdict")
    return p


def setup_logging(verbose: bool, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else (logging.ERROR if quiet else logging.WARNING)
    logging.basicConfig(stream=sys.stderr, level=level, format="[%(name)s] %(message)s", force=True)
    if verbose:
        for noisy in ("matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def run_verify(argv: list[str]) -> int:
    from dataclasses import replace

    from .api import verify
    from .options import AttackSettings, VerifyOptions
    from .result import Verdict
    from .resultfile import format_result, write_result_file

    args = build_verify_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    opts = VerifyOptions(device=args.device, dtype=args.dtype, solver=args.solver, verbose=args.verbose,
                         seed=args.seed, attack=replace(AttackSettings(), seed=args.seed), threads=args.threads)
    result = verify(args.model, args.spec, method=args.method, timeout=args.timeout, options=opts)
    text = format_result(result)
    sys.stdout.write(text)
    sys.stdout.flush()
    if not args.quiet:
        print(result.summary(), file=sys.stderr)
        if args.verbose and result.stats:
            print("stats: " + ", ".join(f"{k}={v}" for k, v in result.stats.items()), file=sys.stderr)
            print("timings: " + ", ".join(f"{k}={v:.3f}s" for k, v in result.timings.items()), file=sys.stderr)
    if args.result_file:
        try:
            write_result_file(args.result_file, result)
        except OSError as e:
            print(f"error: cannot write result file {args.result_file}: {e}", file=sys.stderr)
            return 2
    return 2 if result.verdict is Verdict.ERROR else 0


def list_methods() -> int:
    from .methods import available_methods

    for name, desc in available_methods().items():
        print(f"{name:12s} {desc}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        name = argv[0]
        if name == "methods":
            return list_methods()
        try:
            mod = importlib.import_module(SUBCOMMANDS[name])
        except ModuleNotFoundError as e:
            print(f"error: subcommand {name!r} is not available ({e})", file=sys.stderr)
            return 2
        parser = argparse.ArgumentParser(prog="verify")
        sub = parser.add_subparsers(dest="command")
        mod.add_parser(sub)
        args = parser.parse_args(argv)
        setup_logging(getattr(args, "verbose", False))
        return int(mod.run(args) or 0)
    if not argv or argv[0] in ("-h", "--help"):
        build_verify_parser().print_help()
        return 0 if argv else 2
    return run_verify(argv)


if __name__ == "__main__":
    sys.exit(main())
