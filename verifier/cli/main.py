"""Command line: ``verify MODEL.onnx SPEC.vnnlib`` and the subcommands.

stdout carries the verdict on its first line (and, after ``sat``, the counterexample in the VNN-COMP
format); logs go to stderr. Exit codes: 0 for a computed verdict (sat, unsat, unknown, timeout), 2 for
``error`` (bad input, unsupported model, bad settings).

The run's deadline starts when the process started (imports and loading count against ``--timeout``), and a
run as a program ends with ``os._exit`` once its output is flushed (``guard.fast_exit``: the interpreter's
shutdown with torch loaded takes most of a second). Every command runs inside ``guard.clean_stdout()``
(descriptor 1 on stderr: what solver libraries print from C never reaches stdout) and a last-resort guard:
an unexpected exception still gives ``error`` (for ``verify MODEL SPEC``, as the first line of stdout),
exit 2 and one line on stderr naming the exception and where it was raised (the traceback with ``-v``).
A subcommand's module is loaded from the table below when that subcommand runs, so that ``--help``,
``--print-config`` and argument errors answer without loading torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from verifier.cli.guard import END_RESERVE_S, clean_stdout, error_message, fast_exit
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
    "train": "verifier.cli.train",
    "attack-blackbox": "verifier.cli.attack_blackbox",
    "radius": "verifier.cli.radius",
}
VERIFY_MODULE = "verifier.cli.verify"  # run(args, options, deadline) of `verify MODEL SPEC`


def run_subcommand(argv: list[str]) -> int:
    name = argv[0]
    try:
        mod = importlib.import_module(SUBCOMMANDS[name])
    except ModuleNotFoundError as e:
        print(f"error: subcommand {name!r} is not available ({e})", file=sys.stderr)
        return 2
    except Exception as e:  # a module that fails to load (a broken install): one line, exit 2
        print(f"error: {error_message(e, '-v' in argv or '--verbose' in argv)}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="verify")
    sub = parser.add_subparsers(dest="command")
    mod.add_parser(sub)
    args = parser.parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    setup_logging(verbose)
    try:
        return int(mod.run(args) or 0)
    except Exception as e:  # last resort: a bug or an unhandled bad input ends as one line, exit 2
        print(f"error: {error_message(e, verbose)}", file=sys.stderr)
        return 2


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
    if since_process_start:  # the run's phases end END_RESERVE_S early: the verdict, the result file and the exit
        deadline = Deadline.since_process_start(max(0.0, options.timeout - END_RESERVE_S))
    else:
        deadline = Deadline(options.timeout)
    try:
        return int(importlib.import_module(VERIFY_MODULE).run(args, options, deadline))
    except Exception as e:  # last resort (cli/verify.py guards the run itself): the verdict is still `error`
        msg = error_message(e, args.verbose)
        if not verdict_printed():
            print("error", flush=True)
            if args.result_file:  # written plainly: the module that writes result files may be what failed
                try:
                    with open(args.result_file, "w") as f:
                        f.write("error\n")
                except OSError:
                    pass
        print(f"error: {msg}", file=sys.stderr)
        return 2


def verdict_printed() -> bool:
    """Whether ``cli/verify.py`` has written the verdict line (then nothing may come before it)."""
    mod = sys.modules.get(VERIFY_MODULE)
    return bool(mod is not None and getattr(mod, "VERDICT_PRINTED", False))


def main(argv: list[str] | None = None) -> int:
    """The ``verify`` command. Run as a program (``argv`` None) the budget counts from the process start; called
    with ``argv`` from Python, from the call."""
    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        with clean_stdout():
            return run_subcommand(argv)
    if not argv:
        build_verify_parser().print_help()
        return 2
    with clean_stdout():
        code = run_verify(argv, since_process_start=as_program)
    if as_program:
        fast_exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
