"""``verify MODEL SPEC``: run the asked method and print the verdict (the first line of stdout)."""
from __future__ import annotations

import argparse
import sys

from frontends.result_file import format_result, write_result_file
from verifier.api import verify
from verifier.ir.deadline import Deadline
from verifier.ir.result import Verdict
from verifier.settings import VerifyOptions


def run(args: argparse.Namespace, options: VerifyOptions, deadline: Deadline) -> int:
    result = verify(args.model, args.spec, options=options, deadline=deadline)
    sys.stdout.write(format_result(result))
    sys.stdout.flush()
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
