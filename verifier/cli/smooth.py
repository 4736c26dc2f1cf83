"""``verify smooth``: certify a labelled data set with randomized smoothing (Cohen et al. 2019)."""
from __future__ import annotations

import argparse
import math
import sys
import time

from verifier.certificates.smoothing.certify import SmoothingParams, certify_dataset
from verifier.certificates.smoothing.plot import plot_certified_accuracy
from verifier.certificates.smoothing.records import LOG_HEADER, certified_accuracy, format_certify_row
from verifier.cli.certify_args import ArgError, add_certify_parser, fail, load_model_and_data, log_output, parse_radii

DESCRIPTION = """\
Certify every example of a labelled data set with randomized smoothing (Cohen,
Rosenfeld and Kolter 2019). For each input x, the smoothed classifier
g(x) = argmax_c P(f(x + e) = c), e ~ N(0, sigma^2 I), is evaluated by sampling the
ONNX model f: n0 samples select a class, n fresh samples bound its probability
from below (Clopper-Pearson at confidence 1 - alpha), and the certified l2 radius
is sigma * PhiInv(pA_lower); the example abstains (predict = -1) when
pA_lower <= 1/2.

The certificate is a claim about the smoothed classifier that holds with
probability 1 - alpha, not a proof about the network itself.

DATA is an .npz file with arrays x (inputs, in the model's input shape after the
batch axis) and y (integer labels). The log has one row per example with the
columns of the reference implementation's certify.py:
idx, label, predict, radius, correct, time (tab-separated), followed on stdout
by the certified accuracy at a few radii."""

EPILOG = """\
example:
  python -m verifier.certificates.smoothing.train --sigma 0.25 --out digits.onnx --data-out digits.npz
  verify smooth digits.onnx --data digits.npz --sigma 0.25 --n 10000 --out certify.tsv"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_certify_parser(subparsers, "smooth", "randomized smoothing: certified l2 radii on a labelled data set",
                           DESCRIPTION, EPILOG)
    p.add_argument("--sigma", required=True, type=float, help="noise level (standard deviation of the Gaussian)")
    p.add_argument("--n", type=int, default=100_000, help="estimation samples per example (default 100000)")
    p.add_argument("--n0", type=int, default=100, help="selection samples per example (default 100)")
    p.add_argument("--alpha", type=float, default=0.001, help="failure probability (default 0.001)")
    p.add_argument("--batch", type=int, default=None,
                   help="noisy samples per forward pass (default 50000, capped by input size)")
    p.add_argument("--seed", type=int, default=0, help="random seed; example i uses seed + i (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads while sampling (default: torch's choice; 1 is often faster on a "
                        "busy machine)")
    p.add_argument("--skip", type=int, default=1, help="certify every SKIP-th example (default 1)")
    p.add_argument("--max", type=int, default=-1, help="stop after this many examples (default: all)")
    p.add_argument("--out", metavar="results.tsv", help="write the certify log here (default: stdout)")
    p.add_argument("--radii", default="0,0.25,0.5,0.75,1.0",
                   help="radii of the certified-accuracy summary, comma-separated (default 0,0.25,0.5,0.75,1.0)")
    p.add_argument("--plot", metavar="FILE.png", help="also save certified accuracy vs radius as a plot")
    return p


def _check_args(args) -> list[float]:
    """The summary radii; ArgError for a bad sampling argument or radius list."""
    if not (args.sigma > 0 and math.isfinite(args.sigma)):
        raise ArgError(f"--sigma must be a positive number, got {args.sigma}")
    if args.n < 1 or args.n0 < 1:
        raise ArgError("--n and --n0 must be at least 1")
    if not 0.0 < args.alpha < 1.0:
        raise ArgError(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.skip < 1:
        raise ArgError("--skip must be at least 1")
    return parse_radii(args.radii)


def _certify_log(args, graph, x, y, idx: list[int]) -> list:
    """Certify the examples ``idx``, each row written to the log as soon as it is known."""
    params = SmoothingParams(args.sigma, args.n0, args.n, args.alpha, args.batch, args.seed, args.threads)
    with log_output(args.out) as out:
        print(f"smoothing {args.model}: {len(idx)} examples, sigma={args.sigma:g}, n0={args.n0}, n={args.n}, "
              f"alpha={args.alpha:g}, device={args.device}", file=sys.stderr)
        print(LOG_HEADER, file=out, flush=True)

        def on_record(rec):
            print(format_certify_row(rec), file=out, flush=True)

        return certify_dataset(graph, x, y, params, indices=idx, on_record=on_record)


def run(args) -> int:
    try:
        radii = _check_args(args)
        graph, x, y = load_model_and_data(args.model, args.data, args.device, known_device=True)
        idx = list(range(0, len(x), args.skip))
        if args.max >= 0:
            idx = idx[: args.max]
        t0 = time.perf_counter()
        records = _certify_log(args, graph, x, y, idx)
    except ArgError as e:
        return fail(str(e))
    total = time.perf_counter() - t0
    samples = len(records) * (args.n + args.n0)
    abstain = sum(r.predict == -1 for r in records)
    print(f"certified {len(records)} examples in {total:.2f} s ({total / max(1, len(records)):.3f} s per example, "
          f"{samples / max(total, 1e-9):,.0f} samples/s); {abstain} abstentions", file=sys.stderr)
    print(f"# certified accuracy (sigma={args.sigma:g}, n={args.n}, alpha={args.alpha:g}, "
          f"{len(records)} examples)")
    acc = certified_accuracy(records, radii)
    print("radius\tcertified_accuracy")
    for r, a in zip(radii, acc):
        print(f"{r:g}\t{a:.4f}")
    if args.plot:
        try:
            plot_certified_accuracy({f"sigma={args.sigma:g}": records}, args.plot)
        except OSError as e:
            return fail(f"cannot write {args.plot}: {e.strerror}")
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
