"""The arguments of ``verify MODEL SPEC`` and the settings they make (no torch here: ``--help``,
``--print-config`` and argument errors answer at once).

The settings are built in this order, each step overriding the one before: the defaults, the
``--config`` file, the flags (``--timeout``, ``--method``, ``--seed``, ...), the ``--set KEY=VALUE``
overrides in the order given.
"""
from __future__ import annotations

import argparse

from verifier.settings import VerifyOptions
from verifier.settings.config import build_options

DESCRIPTION = """\
Formal verification of neural networks (ONNX) against VNN-LIB properties.

  verify MODEL.onnx SPEC.vnnlib [options]     prove (unsat) or falsify (sat) a property
  verify compare MODEL SPEC                   run several methods side by side
  verify bench BENCH_DIR                      run a VNN-COMP benchmark folder
  verify smooth MODEL --data X.npz --sigma S  randomized-smoothing certificates
  verify lipschitz MODEL --data X.npz         Lipschitz certificates
  verify train --out MODEL.onnx [--mode M]    train a classifier for verifiability
  verify radius MODEL --data X.npz            [certified, attacked] robustness radii
  verify attack-blackbox MODEL --data X.npz   black-box attacks (substitute model, SimBA)
  verify methods                              list the methods for --method

The first line of stdout is the verdict: sat (a counterexample, validated with
onnxruntime, follows), unsat (proven), unknown, timeout or error.
"""

EPILOG = """\
settings:
  Every setting of a run (the attack, the bounds, the branch and bound) can be set in a TOML file
  (--config) and by --set KEY=VALUE; `verify --print-config` prints them all with their current
  values. Order: defaults < --config < flags < --set. Examples:
    verify model.onnx spec.vnnlib --set bab.relu_branching=babsr --set bab.relu_batch=128
    verify --config run.toml --set timeout=60 --print-config > effective.toml
"""


def build_verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="verify", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="ONNX model (.onnx or .onnx.gz)")
    p.add_argument("spec", nargs="?", help="VNN-LIB property (.vnnlib or .vnnlib.gz)")
    p.add_argument("--method", default=None,
                   help="verification method (default: auto; see `verify methods`): auto, bab, attack, ibp, crown, "
                        "alpha-crown, milp, lp, dual, lipschitz")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds for the whole run, counted from the start of the process (default 300)")
    p.add_argument("--result-file", help="write the VNN-COMP result file here")
    p.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default=None, choices=["float32", "float64"],
                   help="precision of bound computations (default float32)")
    p.add_argument("--solver", default=None, choices=["highs", "gurobi", "cbc"],
                   help="MILP/LP solver for --method milp/lp (default highs)")
    p.add_argument("--seed", type=int, default=None, help="random seed of the attacks (attack.seed; default 0)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for PyTorch (default 0: every core, or OMP_NUM_THREADS when set; "
                        "use 1 when several runs share the machine)")
    p.add_argument("--config", metavar="FILE.toml", help="read the settings from this TOML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="set one setting, e.g. bab.relu_branching=babsr or attack.restarts=128 (repeatable)")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective settings as TOML and exit (MODEL and SPEC are not needed)")
    p.add_argument("-v", "--verbose", action="store_true", help="progress and statistics on stderr")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="only the verdict on stdout and errors on stderr (no summary line)")
    return p


def options_from_args(args: argparse.Namespace) -> VerifyOptions:
    """The settings the arguments ask for (``ConfigError`` on an unknown key or a bad value)."""
    flags = {k: v for k, v in (("method", args.method), ("timeout", args.timeout), ("device", args.device),
                               ("dtype", args.dtype), ("solver", args.solver), ("threads", args.threads))
             if v is not None}
    if args.verbose:
        flags["verbose"] = True
    if args.seed is not None:
        flags["attack"] = {"seed": args.seed}
    return build_options(args.config, args.overrides, **flags)
