"""Command line: ``verify MODEL.onnx SPEC.vnnlib`` and the subcommands.

stdout carries the verdict on its first line (and, after ``sat``, the counterexample in the VNN-COMP
format); logs go to stderr. Exit codes: 0 for a computed verdict (sat, unsat, unknown, timeout), 2 for
``error`` (bad input, unsupported model, bad settings).

The run's deadline starts when the process started (imports and loading count against ``--timeout``).
A subcommand's module is loaded from the table below when that subcommand runs, so that ``--help``,
``--print-config`` and argument errors answer without loading torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from verifier.cli.logs import setup_logging
from verifier.cli.options import build_verify_parser, options_from_args
from verifier.ir.deadline import Deadline
from verifier.ir.errors import VerifierError
from verifier.settings.config import to_toml

# subcommand name -> module exposing add_parser(subparsers) and run(args) -> int
SUBCOMMANDS = {
    "compare": "verifier.cli.compare",
    "bench": "verifier.cli.bench",
    "smooth": "verifier.cli.smooth",
    "lipschitz": "verifier.cli.lipschitz",
    "methods": "verifier.cli.methods",
}
VERIFY_MODULE = "verifier.cli.verify"  # run(args, options, deadline) of `verify MODEL SPEC`


def run_subcommand(argv: list[str]) -> int:
    name = argv[0]
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


def run_verify(argv: list[str], since_process_start: bool = False) -> int:
    parser = build_verify_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    try:
        options = options_from_args(args)
    except VerifierError as e:  # the verdict is still the first line of stdout
        print("error", flush=True)
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        sys.stdout.write(to_toml(options))
        return 0
    if args.model is None or args.spec is None:
        parser.error("MODEL and SPEC are required (or --print-config)")
    deadline = Deadline.since_process_start(options.timeout) if since_process_start else Deadline(options.timeout)
    return int(importlib.import_module(VERIFY_MODULE).run(args, options, deadline))


def main(argv: list[str] | None = None) -> int:
    """The ``verify`` command. Run as a program (``argv`` None) the budget counts from the process start; called
    with ``argv`` from Python, from the call."""
    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return run_subcommand(argv)
    if not argv:
        build_verify_parser().print_help()
        return 2
    return run_verify(argv, since_process_start=as_program)


if __name__ == "__main__":
    sys.exit(main())
