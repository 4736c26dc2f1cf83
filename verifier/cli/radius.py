"""``verify radius``: a bracket [certified, attacked] on each example's minimal adversarial perturbation."""
from __future__ import annotations

import argparse
import math
import time

from frontends.load import check_model_on_spec
from verifier.cli.certify_args import ArgError, add_certify_parser, fail, log_output
from verifier.cli.robustness_args import add_common, at_least, load, parse_domain, positive, progress
from verifier.ir.errors import VerifierError
from verifier.methods import available_methods
from verifier.robustness.adversarial import robustness_spec
from verifier.robustness.plot import plot_available, plot_brackets
from verifier.robustness.radius import RadiusSearch
from verifier.robustness.records import bracket_row, bracket_summary, bracket_writer
from verifier.settings.robustness import RadiusSettings

DESCRIPTION = """\
For each labelled example, a bracket [certified, attacked] on the smallest
perturbation (in --norm, inside --domain) that changes the model's answer
(y_label <= y_j for some j != label):

  certified  the largest radius proven: the Lipschitz radius (global and local
             bounds), raised by a binary search with each of --methods in turn
             on the local-robustness property (unsat at eps proves eps; each
             call gets --time-per-call seconds; for l2 the box of half-width
             eps holds the l2 ball of radius eps);
  attacked   the distance of the closest adversarial example found: PGD in a
             binary search over the radius up to --eps-max, then SimBA where
             PGD finds nothing; every attacked radius is the distance of a
             point that onnxruntime confirmed.

The bracket is exact when the two ends meet within --tol (relative). With
--smoothing-sigma, randomized smoothing's l2 radius (a claim about the smoothed
classifier, with probability 1 - 0.001) is reported in a column apart.

DATA is an .npz file with arrays x and y. The CSV (--out, or stdout) has one
row per example: idx, label, predict, norm, certified, certified_by, attacked,
attacked_by, exact, lipschitz, smoothing_radius, verifier_calls, time; a
summary (mean certified, mean attacked, fraction exact) follows on stdout."""

EPILOG = """\
example:
  python -m verifier.certificates.smoothing.train --sigma 0 --out digits.onnx --data-out digits.npz
  verify radius digits.onnx --data digits.npz --norm linf --methods crown,alpha-crown --max 20 \\
      --out brackets.csv --plot brackets.png"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_certify_parser(subparsers, "radius", "radius brackets [certified, attacked] of each example",
                           DESCRIPTION, EPILOG)
    p.add_argument("--methods", default="crown,alpha-crown",
                   help="verifier methods of the certified binary search, in order (`verify methods`; 'none': "
                        "Lipschitz only; default crown,alpha-crown)")
    p.add_argument("--time-per-call", type=float, default=10.0, help="seconds per verifier call (default 10)")
    p.add_argument("--tol", type=float, default=0.01, help="relative width at which a search stops (default 0.01)")
    p.add_argument("--max-steps", type=int, default=12, help="binary-search steps per method and example (default 12)")
    p.add_argument("--eps-max", type=float, default=1.0, help="largest radius searched (default 1)")
    p.add_argument("--attack-steps", type=int, default=100, help="PGD steps (default 100)")
    p.add_argument("--attack-restarts", type=int, default=16, help="PGD restarts per round, l_inf (default 16)")
    p.add_argument("--attack-search-steps", type=int, default=12,
                   help="binary-search steps of the attacked end (default 12)")
    p.add_argument("--attack-time", type=float, default=10.0, help="seconds per PGD call (default 10)")
    p.add_argument("--no-blackbox", action="store_true", help="no SimBA where PGD finds nothing")
    p.add_argument("--blackbox-queries", type=int, default=2000, help="SimBA queries per call (default 2000)")
    p.add_argument("--no-lipschitz", action="store_true", help="no Lipschitz radius")
    p.add_argument("--smoothing-sigma", type=float, default=0.0,
                   help="also report randomized smoothing's l2 radius at this sigma (probabilistic; default off)")
    p.add_argument("--smoothing-n", type=int, default=2000, help="smoothing samples per example (default 2000)")
    p.add_argument("--plot", metavar="FILE.png", help="also save a plot of the brackets (needs matplotlib)")
    add_common(p, "write the CSV here (default: stdout)")
    return p


def settings_from_args(args) -> RadiusSettings:
    text = args.methods.strip()
    methods = () if text.lower() == "none" else tuple(m.strip() for m in text.split(",") if m.strip())
    known = available_methods()
    bad = [m for m in methods if m not in known]
    if bad:
        raise ArgError(f"unknown method(s) {', '.join(bad)} in --methods; available: {', '.join(known)}")
    for name in ("time_per_call", "tol", "eps_max", "attack_time"):
        positive(getattr(args, name), "--" + name.replace("_", "-"))
    if args.tol >= 1:
        raise ArgError(f"--tol must be below 1, got {args.tol}")
    if args.smoothing_sigma < 0 or not math.isfinite(args.smoothing_sigma):
        raise ArgError(f"--smoothing-sigma must be a non-negative number, got {args.smoothing_sigma}")
    for name, v, low in (("--max-steps", args.max_steps, 1), ("--attack-steps", args.attack_steps, 1),
                         ("--attack-restarts", args.attack_restarts, 1),
                         ("--attack-search-steps", args.attack_search_steps, 1),
                         ("--blackbox-queries", args.blackbox_queries, 1),
                         ("--smoothing-n", args.smoothing_n, 1), ("--threads", args.threads, 1)):
        at_least(v, low, name)
    return RadiusSettings(args.norm, methods, args.time_per_call, args.tol, args.max_steps, args.eps_max,
                          parse_domain(args.domain), args.attack_steps, args.attack_restarts,
                          attack_time=args.attack_time, attack_search_steps=args.attack_search_steps,
                          blackbox=not args.no_blackbox, blackbox_queries=args.blackbox_queries,
                          lipschitz=not args.no_lipschitz,
                          smoothing_sigma=args.smoothing_sigma, smoothing_n=args.smoothing_n, seed=args.seed,
                          threads=args.threads)


def run(args) -> int:
    try:
        settings = settings_from_args(args)
        model, x, y = load(args.model, args.data)
        n = len(x) if args.max < 0 else min(len(x), args.max)
        try:  # the layer graph against onnxruntime on points of the first example's property
            check_model_on_spec(model, robustness_spec(x[0], int(y[0]) % model.graph.n_outputs, settings.eps_max,
                                                       model.graph.n_outputs, settings.domain))
        except VerifierError as e:
            raise ArgError(str(e)) from None
        if args.plot and not plot_available():
            progress(args, "matplotlib is not installed: --plot skipped")
            args.plot = None
        search = RadiusSearch(model.graph, model.reference, settings, args.model)
        if search.message:
            progress(args, search.message)
        progress(args, f"radius {args.model}: {n} examples, {args.norm}, methods "
                       f"{','.join(settings.methods) or 'none'}, {settings.time_per_call:g} s per call")
        brackets = []
        t0 = time.perf_counter()
        with log_output(args.out) as out:
            w = bracket_writer(out)
            for i in range(n):
                b = search.bracket(i, x[i], int(y[i]))
                brackets.append(b)
                w.writerow(bracket_row(b))
                out.flush()
                progress(args, f"[{i + 1}/{n}] certified {b.certified:.4g} ({b.certified_by}), attacked "
                               f"{b.attacked:.4g} ({b.attacked_by}){' exact' if b.exact else ''}, {b.time_s:.1f} s")
    except ArgError as e:
        return fail(str(e))
    s = bracket_summary(brackets)
    progress(args, f"done in {time.perf_counter() - t0:.1f} s")
    print(f"# radius brackets ({args.norm}, {s['examples']} examples): mean certified {s['mean_certified']:.6g}, "
          f"mean attacked {s['mean_attacked']:.6g} ({s['attacked_found']} found), exact {s['exact']:.3f}, "
          f"consistent {s['consistent']:.3f}")
    if args.plot:
        try:
            plot_brackets(brackets, args.plot)
        except OSError as e:
            return fail(f"cannot write {args.plot}: {e.strerror}")
        progress(args, f"wrote {args.plot}")
    return 0
