"""``verify lipschitz``: deterministic l2 / l_inf robustness radii from Lipschitz bounds."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from verifier.certificates.lipschitz.clever import clever_estimate
from verifier.certificates.lipschitz.global_bound import global_lipschitz
from verifier.certificates.lipschitz.local import local_certified_radius
from verifier.certificates.lipschitz.radii import certified_radius
from verifier.cli.certify_args import ArgError, add_certify_parser, fail, load_model_and_data, log_output, parse_radii
from verifier.ir.errors import UnsupportedError

DESCRIPTION = """\
Certified robustness radii from Lipschitz bounds (deterministic certificates).

For each labelled input x, the class margins f_p(x) - f_j(x) (p = predicted
class, computed in float64) are divided by upper bounds on the l2 Lipschitz
constants of f_p - f_j:

  global  a bound valid everywhere: the product of layer operator norms
          (--method product) or LipSDP-Neuron (--method lipsdp, small
          feed-forward networks only; falls back to the product bound when it
          does not fit or runs out of --time-limit);
  local   a bound valid on an l_inf box around x, with the ReLUs that are
          inactive on the box (from --local-bounds) masked out; never smaller
          than the global radius.

The global l_inf radius is the l2 radius / sqrt(n_inputs); the local one comes
from the local bound on the l_inf box itself (often much larger). With --clever
the log also gets a CLEVER-style sampled ESTIMATE (not a certificate) of the l2
radius, to show how loose the certified one is.

DATA is an .npz file with arrays x (inputs, in the model's input shape after the
batch axis) and y (integer labels). The log (tab-separated) has one row per
example: idx, label, predict, margin, radius_global, radius_local, linf_global,
linf_local, correct, time (and clever_radius); certified accuracy at a few radii
follows on stdout."""


EPILOG = """\
example:
  python -m verifier.certificates.smoothing.train --sigma 0 --out digits.onnx --data-out digits.npz
  verify lipschitz digits.onnx --data digits.npz --out lipschitz.tsv"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_certify_parser(subparsers, "lipschitz", "Lipschitz certificates: certified l2 / l_inf radii on a data set",
                           DESCRIPTION, EPILOG)
    p.add_argument("--method", choices=("product", "lipsdp"), default="product",
                   help="global bound: product of operator norms (default) or LipSDP")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds for the LipSDP solve (default 60)")
    p.add_argument("--local-bounds", choices=("crown", "ibp", "none"), default="crown",
                   help="bounds that decide which ReLUs are inactive near x (default crown; none: skip local radii)")
    p.add_argument("--clever", action="store_true", help="add a sampled CLEVER estimate of the radius (not certified)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--max", type=int, default=-1, help="stop after this many examples (default: all)")
    p.add_argument("--out", metavar="results.tsv", help="write the log here (default: stdout)")
    p.add_argument("--radii", default="0,0.1,0.25,0.5,1.0",
                   help="l2 radii of the certified-accuracy summary, comma-separated (default 0,0.1,0.25,0.5,1.0)")
    return p


HEADER = "idx\tlabel\tpredict\tmargin\tradius_global\tradius_local\tlinf_global\tlinf_local\tcorrect\ttime"


def _example_row(args, graph, bound, i: int, xi: np.ndarray, label: int) -> tuple[str, tuple]:
    """The log line of example ``i`` and its ``(correct, global l2 radius, local l2 radius)``."""
    t1 = time.perf_counter()
    g = certified_radius(graph, xi, bound)
    if args.local_bounds != "none":
        loc = local_certified_radius(graph, xi, bound, args.local_bounds)
    else:
        loc = g
    correct = int(g.prediction == label)
    line = (f"{i}\t{label}\t{g.prediction}\t{g.margin:.6g}\t{g.l2:.6g}\t{loc.l2:.6g}\t{g.linf:.6g}\t"
            f"{loc.linf:.6g}\t{correct}\t{time.perf_counter() - t1:.4f}")
    if args.clever:
        ce = clever_estimate(graph, xi, radius=max(4 * loc.l2, 0.1), n_batches=20, batch_size=50, seed=i)
        line += f"\t{ce.radius:.6g}"
    return line, (correct, g.l2, loc.l2)


def _radii_log(args, graph, bound, x, y, n_ex: int) -> np.ndarray:
    """Write the log of the first ``n_ex`` examples; rows ``(correct, global l2 radius, local l2 radius)``."""
    rows = []
    with log_output(args.out) as out:
        print(HEADER + ("\tclever_radius" if args.clever else ""), file=out, flush=True)
        for i in range(n_ex):
            line, row = _example_row(args, graph, bound, i, x[i].reshape(-1).astype(np.float64), int(y[i]))
            print(line, file=out, flush=True)
            rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def run(args) -> int:
    try:
        radii = parse_radii(args.radii)
        if not args.time_limit > 0:
            raise ArgError("--time-limit must be positive")
        graph, x, y = load_model_and_data(args.model, args.data, args.device)
    except ArgError as e:
        return fail(str(e))
    n_ex = len(x) if args.max < 0 else min(len(x), args.max)
    try:
        t0 = time.perf_counter()
        bound = global_lipschitz(graph, args.method, time_limit=args.time_limit)
    except UnsupportedError as e:
        return fail(f"{args.model}: {e}")
    print(f"global l2 Lipschitz bound L <= {bound.L:.6g} ({bound.method}, {time.perf_counter() - t0:.2f} s)"
          + (f"; {bound.message}" if bound.message else ""), file=sys.stderr)
    try:
        arr = _radii_log(args, graph, bound, x, y, n_ex)
    except ArgError as e:
        return fail(str(e))
    print(f"# certified accuracy from Lipschitz bounds ({n_ex} examples, global L <= {bound.L:.6g}, {bound.method})")
    print("radius_l2\tglobal\tlocal")
    for r in radii:
        ok = arr[:, 0] > 0
        print(f"{r:g}\t{np.mean(ok & (arr[:, 1] >= r)) if len(arr) else 0:.4f}\t"
              f"{np.mean(ok & (arr[:, 2] >= r)) if len(arr) else 0:.4f}")
    return 0
