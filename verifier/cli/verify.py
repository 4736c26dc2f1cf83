"""``verify MODEL SPEC``: run the asked method and print the verdict (the first line of stdout).

The run is guarded: an unexpected exception (a bug, not a ``VerifierError``) becomes the verdict
``error`` with the message ``internal error: <Type>: <message> (at file:line; rerun with -v for the
traceback)`` (``out of memory`` for a ``MemoryError``), printed and written to the result file like
any other verdict, exit 2; ``-v`` prints the traceback on stderr.
"""
from __future__ import annotations

import argparse
import sys

from frontends.result_file import format_result, write_result_file
from verifier.api import verify
from verifier.cli.guard import error_message
from verifier.ir.deadline import Deadline
from verifier.ir.result import Result, Verdict
from verifier.settings import VerifyOptions

VERDICT_PRINTED = False  # set once this run's verdict line is on stdout (the last-resort guard of main.py reads it)


def guarded_verify(args: argparse.Namespace, options: VerifyOptions, deadline: Deadline) -> Result:
    """``api.verify``; any exception it lets through becomes an ``error`` result naming it."""
    try:
        return verify(args.model, args.spec, options=options, deadline=deadline)
    except Exception as e:
        return Result(Verdict.ERROR, options.method, message=error_message(e, bool(args.verbose)),
                      time_s=deadline.elapsed())


def run(args: argparse.Namespace, options: VerifyOptions, deadline: Deadline) -> int:
    global VERDICT_PRINTED
    VERDICT_PRINTED = False
    result = guarded_verify(args, options, deadline)
    try:
        text = format_result(result)
    except Exception as e:  # a result that cannot be printed (a bug): still a verdict
        result = Result(Verdict.ERROR, options.method, message=error_message(e, bool(args.verbose)))
        text = "error\n"
    sys.stdout.write(text)
    sys.stdout.flush()
    VERDICT_PRINTED = True
    if not args.quiet:
        print(result.summary(), file=sys.stderr)
        if args.verbose and result.stats:
            print("stats: " + ", ".join(f"{k}={v}" for k, v in result.stats.items()), file=sys.stderr)
            print("timings: " + ", ".join(f"{k}={v:.3f}s" for k, v in result.timings.items()), file=sys.stderr)
    elif result.verdict is Verdict.ERROR and result.message:
        print(f"error: {result.message}", file=sys.stderr)
    if args.result_file:
        try:
            write_result_file(args.result_file, result)
        except OSError as e:
            print(f"error: cannot write result file {args.result_file}: {e}", file=sys.stderr)
            return 2
    return 2 if result.verdict is Verdict.ERROR else 0
