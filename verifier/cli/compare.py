"""``verify compare model.onnx spec.vnnlib``: run several methods on one instance and print a table.

``add_parser(subparsers)`` adds the subcommand to the main CLI; ``run(args)``
executes it. Also runnable alone: ``python -m verifier.cli.compare model spec``.
"""
from __future__ import annotations

import argparse
import sys

from verifier.api.compare import DEFAULT_METHODS, compare, format_table


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("compare", help="run several methods on one instance and print method/verdict/bound/time",
                              description="Run several verification methods (complete and incomplete) on the same "
                                          "instance and print a table of verdicts, bounds and times. Every bound "
                                          "is a lower bound of min over the input set of max_i (C y - d)_i.")
    _arguments(p)
    p.set_defaults(func=run)
    return p


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="ONNX model (.onnx or .onnx.gz)")
    p.add_argument("spec", help="VNN-LIB property (.vnnlib or .vnnlib.gz)")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS),
                   help="comma-separated methods (default: %(default)s); ibp, crown, alpha-crown, dual, lp, milp, "
                        "or any registered method")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per method (default: %(default)s)")
    p.add_argument("--solver", default="highs", choices=["highs", "gurobi", "cbc"],
                   help="LP/MILP solver (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="device for the dual backend (cpu or cuda)")
    p.add_argument("--exact", action="store_true",
                   help="solve the MILP to optimality (exact bound) instead of stopping once the sign is known")


def run(args) -> int:
    methods = [m.strip() for m in str(args.methods).split(",") if m.strip()]
    rows = compare(args.model, args.spec, methods=methods, timeout=args.timeout, solver=args.solver,
                   exact=getattr(args, "exact", False), device=getattr(args, "device", "cpu"))
    print(format_table(rows))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="verify compare")
    _arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
