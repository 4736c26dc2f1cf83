"""What ``verify attack-blackbox`` and ``verify radius`` share: the input domain, the norm, the common
options (``--max``, ``--seed``, ``--threads``, ``--out``, ``-q``, ``-v``), the model with its reference and
data (a bad file is an :class:`ArgError`) and progress lines on stderr."""
from __future__ import annotations

import math
import sys

from verifier.cli.certify_args import ArgError
from verifier.ir.errors import VerifierError
from verifier.robustness.inputs import load_inputs


def add_common(p, out_help: str) -> None:
    p.add_argument("--norm", choices=("linf", "l2"), default="linf", help="perturbation norm (default linf)")
    p.add_argument("--domain", default="0,1",
                   help="valid input range LO,HI that perturbed inputs are clipped to, or 'none' (default 0,1)")
    p.add_argument("--max", type=int, default=-1, help="stop after this many examples (default: all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--out", metavar="FILE.csv", help=out_help)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="debug log (and tracebacks) on stderr")


def parse_domain(text: str) -> tuple[float, float] | None:
    if text.strip().lower() == "none":
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError
    except ValueError:
        raise ArgError(f"--domain must be LO,HI with LO < HI (finite) or 'none', got {text!r}") from None
    return lo, hi


def positive(value: float, name: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ArgError(f"{name} must be a positive number, got {value}")
    return value


def at_least(value: int, low: int, name: str) -> int:
    if value < low:
        raise ArgError(f"{name} must be at least {low}, got {value}")
    return value


def load(model: str, data: str):
    """``(model, x, y)`` (``model`` with ``.graph`` and ``.reference``); ArgError for a bad file."""
    try:
        loaded, x, y = load_inputs(model, data)
    except VerifierError as e:
        raise ArgError(str(e)) from None
    k = loaded.graph.n_outputs
    if k < 2:
        raise ArgError(f"{model}: the model gives {k} output; a classifier with at least 2 class scores is needed")
    if y.min() < 0 or y.max() >= k:
        raise ArgError(f"{data}: labels must lie in 0..{k - 1} (the model's classes), found {y.min()}..{y.max()}")
    return loaded, x, y


def progress(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr, flush=True)
