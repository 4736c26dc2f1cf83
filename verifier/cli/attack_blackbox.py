"""``verify attack-blackbox``: black-box attacks that see only the model's answers (onnxruntime)."""
from __future__ import annotations

import argparse
import time

from verifier.certificates.data import load_labelled_npz
from verifier.certificates.threads import torch_threads
from verifier.cli.certify_args import ArgError, add_certify_parser, fail, log_output
from verifier.cli.robustness_args import add_common, at_least, load, parse_domain, positive, progress
from verifier.ir.errors import VerifierError
from verifier.robustness.blackbox import run_blackbox
from verifier.robustness.records import format_summaries, write_attack_rows
from verifier.settings.robustness import BlackboxSettings, ScoreAttackSettings, SubstituteSettings, TransferSettings

DESCRIPTION = """\
Black-box attacks on an ONNX classifier that only query it (onnxruntime) and
count the queries:

  substitute  Papernot et al. 2017: a substitute MLP trained on the model's
              LABELS only, its training set grown by Jacobian-based dataset
              augmentation (x + lambda sign(dF_label/dx), lambda flipping sign
              every --tau rounds, --rounds rounds, reservoir sampling of
              --reservoir points per round from round --reservoir-from on);
              FGSM or PGD crafted on the substitute is then transferred to the
              model (one query per example).
  simba       SimBA (Guo et al. 2019), a score-based attack: one coordinate at
              a time, at most --queries queries per example.
  noise       random perturbations of the same norm and size (baseline).

The first --initial examples of DATA seed the substitute (or --initial-data);
the others that the model classifies correctly are attacked with budget --eps
in --norm. Every adversarial example counted is checked on the real model with
onnxruntime (y_label <= y_j for some j, its distance measured on the float32
point that ran). stdout: per attack the success rate, queries per example, the
one-off substitute training queries and the mean perturbation of the successes;
--out writes one CSV row per example and attack."""

EPILOG = """\
example:
  python -m verifier.certificates.smoothing.train --sigma 0 --out digits.onnx --data-out digits.npz
  verify attack-blackbox digits.onnx --data digits.npz --eps 0.2 --out attacks.csv"""

ATTACKS = ("substitute", "simba", "noise")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = add_certify_parser(subparsers, "attack-blackbox",
                           "black-box attacks: substitute-model transfer, SimBA, random noise", DESCRIPTION, EPILOG)
    p.add_argument("--eps", type=float, default=0.3, help="perturbation budget in --norm (default 0.3)")
    p.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated subset of substitute,simba,noise")
    p.add_argument("--attack", choices=("fgsm", "pgd"), default="fgsm", help="crafted on the substitute (default fgsm)")
    p.add_argument("--steps", type=int, default=20, help="PGD steps on the substitute (default 20)")
    p.add_argument("--initial", type=int, default=150, help="initial substitute training examples (default 150)")
    p.add_argument("--initial-data", metavar="FILE.npz", help="take the initial examples from this file instead")
    p.add_argument("--rounds", type=int, default=6, help="substitute augmentation rounds rho (default 6)")
    p.add_argument("--lambda", dest="lam", type=float, default=0.1, help="augmentation step lambda (default 0.1)")
    p.add_argument("--tau", type=int, default=3, help="lambda changes sign every tau rounds (default 3)")
    p.add_argument("--reservoir", type=int, default=400,
                   help="kappa: points augmented per round under reservoir sampling (default 400; 0: off)")
    p.add_argument("--reservoir-from", type=int, default=3, help="sigma: first reservoir round (default 3)")
    p.add_argument("--hidden", default="200,200", help="hidden layers of the substitute MLP (default 200,200)")
    p.add_argument("--epochs", type=int, default=60, help="substitute training epochs per round (default 60)")
    p.add_argument("--queries", type=int, default=1000, help="SimBA queries per example (default 1000)")
    p.add_argument("--simba-step", type=float, default=None,
                   help="SimBA step per coordinate (default: eps for linf, min(eps, 0.2) for l2)")
    p.add_argument("--noise-tries", type=int, default=1, help="random perturbations per example (default 1)")
    add_common(p, "write one CSV row per example and attack here")
    return p


def settings_from_args(args) -> tuple[BlackboxSettings, tuple[str, ...]]:
    attacks = tuple(a.strip() for a in args.attacks.split(",") if a.strip())
    bad = [a for a in attacks if a not in ATTACKS]
    if not attacks or bad:
        raise ArgError(f"--attacks must name some of {', '.join(ATTACKS)}, got {args.attacks!r}")
    try:
        hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
        if not hidden or min(hidden) < 1:
            raise ValueError
    except ValueError:
        raise ArgError(f"--hidden must be comma-separated positive integers, got {args.hidden!r}") from None
    positive(args.eps, "--eps")
    positive(args.lam, "--lambda")
    if args.simba_step is not None:
        positive(args.simba_step, "--simba-step")
    for name, v, low in (("--steps", args.steps, 1), ("--initial", args.initial, 1), ("--rounds", args.rounds, 1),
                         ("--tau", args.tau, 1), ("--reservoir", args.reservoir, 0), ("--epochs", args.epochs, 1),
                         ("--reservoir-from", args.reservoir_from, 0), ("--queries", args.queries, 1),
                         ("--noise-tries", args.noise_tries, 1), ("--threads", args.threads, 1)):
        at_least(v, low, name)
    sub = SubstituteSettings(args.initial, args.rounds, args.lam, args.tau, args.reservoir, args.reservoir_from,
                             hidden, args.epochs, args.seed)
    tr = TransferSettings(args.attack, args.eps, args.norm, args.steps, parse_domain(args.domain))
    return BlackboxSettings(sub, tr, ScoreAttackSettings(args.queries, args.simba_step, args.seed), args.noise_tries,
                            args.threads), attacks


def run(args) -> int:
    try:
        settings, attacks = settings_from_args(args)
        model, x, y = load(args.model, args.data)
        initial = None
        if args.initial_data:
            try:
                initial, _ = load_labelled_npz(args.initial_data, model.graph.n_inputs)
            except VerifierError as e:
                raise ArgError(str(e)) from None
        if initial is None and "substitute" in attacks and len(x) <= args.initial:
            raise ArgError(f"{args.data} holds {len(x)} examples: more than --initial {args.initial} are needed "
                           "(the first seed the substitute, the others are attacked), or give --initial-data")
        progress(args, f"attack-blackbox {args.model}: {', '.join(attacks)}, {args.norm} eps={args.eps:g}")
        t0 = time.perf_counter()
        with torch_threads(args.threads):
            report = run_blackbox(model.reference, x, y, settings, initial, args.max, attacks)
        if report.substitute is not None:
            s = report.substitute
            progress(args, f"substitute: {s.queries} label queries, |S| per round {s.sizes}, agrees with the model "
                           f"on {s.agreement:.3f} of S")
        progress(args, f"clean accuracy {report.clean_accuracy:.4f}; done in {time.perf_counter() - t0:.1f} s")
        if args.out:
            with log_output(args.out) as out:
                write_attack_rows(out, report.outcomes)
            progress(args, f"wrote {args.out}")
    except ArgError as e:
        return fail(str(e))
    print(format_summaries(report.summaries, args.eps, args.norm))
    return 0
