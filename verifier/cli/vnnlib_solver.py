"""The VNN-LIB 2.0 standard's solver command line (chapter 5 of the standard).

    vnnlib-solver --name | --version
    vnnlib-solver verify QUERY.vnnlib --network NAME=model.onnx [--timeout SECONDS]
    vnnlib-solver supports --onnx-operators | --vnnlib-versions | ...   (alias: capabilities)

``verify`` prints the verdict as the first line of stdout: ``sat``, ``unsat``, ``unknown`` or
``timed-out``; after ``sat`` the satisfying assignment in the standard's command-line format (each
declared variable as ``NAME TYPE [d1,...]`` followed by its values one a line, row-major, in
declaration order). Logs and error messages go to stderr; an error in the query or the model (bad
query, missing or extra ``--network``, unsupported model or element type) prints nothing on stdout,
one line on stderr, and exits with 1; a malformed command line exits with 2.

What is supported is what ``supports`` reports (``vnnlib_supports``: the standard's eleven
capabilities, the standard's theory and element-type names, and only the ONNX operators whose every
form is handled). VNN-LIB 1.0 files are accepted too (one ``--network`` of any name).

``--help``, ``--name``, ``--version`` and ``supports`` import neither torch nor onnx nor onnxruntime:
they answer in well under a second. ``verify`` imports them once its arguments are read. As
``verify``, it runs inside ``guard.clean_stdout()`` (what solver libraries print from C goes to
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
from verifier.cli.vnnlib_supports import COMMAND_NAMES, add_capability_flags, cmd_supports

SOLVER_NAME = "nnverify (VNN-LIB 2.0 solver interface)"


def _version() -> str:
    try:
        return version("nnverify")
    except Exception:
        return "0.1.0"


def _seconds(text: str) -> float:
    """A --timeout value: a finite number of seconds, zero or more."""
    try:
        t = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 <= t < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds >= 0, got {text!r}")
    return t


# ----------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """A malformed command line is one line on stderr (``vnnlib-solver: error: ...``) and exit 2, no usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def build_parser() -> argparse.ArgumentParser:
    # no abbreviations: the standard defines exact spellings, and `--onnx-op` must not answer as `--onnx-operators`
    p = _Parser(prog="vnnlib-solver", description=__doc__.split("\n\n")[0] + "\n\n" +
                                "\n\n".join(__doc__.split("\n\n")[1:3]),
                                formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--name", action="store_true", help="print the solver's full name")
    g.add_argument("--version", action="store_true", help="print the solver's version")
    sub = p.add_subparsers(dest="command", metavar="{verify,supports}")
    v = sub.add_parser("verify", help="decide a VNN-LIB query", allow_abbrev=False,
                       description="Decide a VNN-LIB query: the first line of stdout is sat, unsat, unknown or "
                       "timed-out.")
    v.add_argument("query", help="the VNN-LIB query file (2.0, or 1.0; plain or .gz)")
    v.add_argument("--network", action="append", default=[], metavar="NAME=PATH",
                   help="the ONNX model of the declared network NAME")
    v.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS", help="time limit (default none)")
    v.add_argument("--serialise-assignments", default=None, metavar="DIR",
                   help="not supported (see `supports --serialise-assignments`): the assignment is printed")
    v.add_argument("--assignments", dest="serialise_assignments", help=argparse.SUPPRESS)  # section 5.3's usage
    v.add_argument("--method", default="auto", help="(non-standard) verification method, see `verify methods`")
    v.add_argument("-v", "--verbose", action="store_true", help="(non-standard) progress on stderr")
    for i, name in enumerate(COMMAND_NAMES):  # `supports`, and the standard's other name `capabilities`
        s = sub.add_parser(name, allow_abbrev=False, **({"help": "report one capability (alias: capabilities)"}
                                                        if i == 0 else {}))
        add_capability_flags(s)
    return p


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
    if args.command in COMMAND_NAMES:
        return cmd_supports(args)
    parser.error("name a command (verify, supports) or give --name or --version")


if __name__ == "__main__":
    sys.exit(main())
