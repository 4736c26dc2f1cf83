"""The VNN-LIB 2.0 standard's solver command line.

    vnnlib-solver --name | --version
    vnnlib-solver verify QUERY.vnnlib --network NAME=model.onnx [--timeout SECONDS]
    vnnlib-solver supports --vnnlib-versions | --onnx-element-types | --onnx-operators | ...

``verify`` prints the verdict as the first line of stdout: ``sat``, ``unsat``, ``unknown`` or
``timed-out``; after ``sat`` the satisfying assignment in the standard's command-line format (each
declared variable as ``NAME TYPE [d1,...]`` followed by its values one a line, row-major, in
declaration order). Logs and error messages go to stderr; an error (bad query, missing or extra
``--network``, unsupported model or element type) prints nothing on stdout and exits with 1.

What is supported is what ``supports`` reports: a single network (SNET) with one input and one
output (SIO), no hidden nodes (NH), boxes on the input and linear constraints on the output
(COUT), the ``real`` element type (bound computations are sound for real arithmetic with a
safety margin, not bit-exact for floating point; counterexamples are validated with onnxruntime).
A query that declares an ONNX element type such as ``float32`` is rejected, as the standard asks,
unless ``--treat-floats-as-real`` gives consent to real-arithmetic analysis. VNN-LIB 1.0 files
are accepted too (one ``--network`` of any name).

As ``verify``, it runs inside ``guard.clean_stdout()`` (what solver libraries print from C goes to
stderr), an unexpected exception is an error (one line on stderr naming it and where, the traceback
with ``-v``; exit 1), and a run as a program ends with ``os._exit`` once its output is flushed.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib.metadata import version

from verifier.cli.guard import clean_stdout, error_message, fast_exit

SOLVER_NAME = "nnverify (VNN-LIB 2.0 solver interface)"

def _version() -> str:
    try:
        return version("nnverify")
    except Exception:
        return "0.1.0"


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vnnlib-solver", description=__doc__.split("\n\n")[0] + "\n\n" +
                                "\n\n".join(__doc__.split("\n\n")[1:3]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", action="store_true", help="print the solver's full name")
    p.add_argument("--version", action="store_true", help="print the solver's version")
    sub = p.add_subparsers(dest="command")
    v = sub.add_parser("verify", help="decide a VNN-LIB query", description="Decide a VNN-LIB query: the first "
                       "line of stdout is sat, unsat, unknown or timed-out.")
    v.add_argument("query", help="the VNN-LIB query file (2.0, or 1.0; plain or .gz)")
    v.add_argument("--network", action="append", default=[], metavar="NAME=PATH",
                   help="the ONNX model of the declared network NAME")
    v.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="time limit (default none)")
    v.add_argument("--serialise-assignments", default=None, metavar="DIR", help="not supported: printed instead")
    v.add_argument("--unsat-proofs", default=None, metavar="FILE", help="not supported")
    v.add_argument("--method", default="auto", help="(non-standard) verification method, see `verify methods`")
    v.add_argument("--treat-floats-as-real", action="store_true",
                   help="(non-standard) analyse queries that declare float types in real arithmetic")
    v.add_argument("-v", "--verbose", action="store_true", help="(non-standard) progress on stderr")
    s = sub.add_parser("supports", help="report a capability")
    for k in _CAPABILITIES:
        s.add_argument(f"--{k}", action="store_true")
    return p


_CAPABILITIES = ["onnx-opset-versions", "onnx-element-types", "onnx-operators", "onnx-operators-unsat-proofs",
                 "vnnlib-versions", "hidden-node-theories", "multiple-input-output-theories",
                 "multiple-network-theories", "multiple-node-comparison-theories", "arithmetic-complexity-theories",
                 "optimised-disjunctive-reasoning", "serialise-assignments", "unsat-proofs"]


def main(argv: list[str] | None = None) -> int:
    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    with clean_stdout():
        code = _main(argv, as_program)
    if as_program:
        fast_exit(code)
    return code


def _main(argv: list[str], as_program: bool = False) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.since_process_start = as_program  # the time limit counts from the process start when run as a program
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
                        format="[%(name)s] %(message)s", force=True)
    if args.name:
        print(SOLVER_NAME)
        return 0
    if args.version:
        print(_version())
        return 0
    if args.command == "verify":
        try:
            return importlib.import_module("verifier.cli.vnnlib_commands").cmd_verify(args)
        except Exception as e:  # last resort: a bug is an error too (nothing on stdout, exit 1)
            print(f"error: {error_message(e, bool(args.verbose))}", file=sys.stderr)
            return 1
    if args.command == "supports":
        return importlib.import_module("verifier.cli.vnnlib_commands").cmd_supports(args)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
