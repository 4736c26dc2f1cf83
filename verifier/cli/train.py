"""``verify train``: train a small classifier for verifiability and export it as ONNX that ``verify`` reads."""
from __future__ import annotations

import argparse
import math
import os

import numpy as np

from verifier.certificates.data import DataError
from verifier.cli.certify_args import fail
from verifier.settings.training import ACTIVATIONS, ARCHS, EVAL_BOUNDS, LIPSCHITZ, MODES, NORMS, TrainSettings
from verifier.training import export_onnx, load_dataset, train_model
from verifier.training.export import check_export

DESCRIPTION = """\
Train a small MLP or CNN classifier and export it as ONNX for `verify`,
`verify lipschitz`, `verify smooth` (and --data-out writes the labelled test
split as .npz for them).

Data: scikit-learn's 8x8 digits scaled to [0, 1] (--data digits, no download)
or any .npz with arrays x (examples) and y (integer labels), split into train
and test sets by --seed.

Modes (--mode):
  standard   cross-entropy on clean inputs
  fgsm, pgd  adversarial training in the --norm ball of radius --eps (FGSM with
             a random start; PGD with --attack-steps steps)
  ibp        certified training on l_inf boxes with interval bounds
  crown-ibp  certified training with CROWN-IBP bounds (this project's CROWN
             backward pass over interval intermediate bounds), mixed with IBP
  noise      Gaussian noise augmentation with --sigma (for `verify smooth`)
The adversarial and certified modes ramp eps from 0 to --eps between
--ramp-start and --ramp-end (fractions of training); the certified ones mix
kappa * natural + (1 - kappa) * certified loss, kappa from 1 to --kappa-end.

Lipschitz-bounded layers (--lipschitz): spectral (each layer divided by its
spectral norm, power iteration) or orthogonal (Bjorck, MLP only); activations
(--activation): relu, maxmin or groupsort (MLP only; exported as ReLU
compare-and-swap layers that `verify` reads exactly).

Each epoch: a progress line on stderr and, with --log, a CSV row: epoch, eps,
kappa, loss, clean_acc, pgd_acc, verified_acc (test set, at --eps; verified by
this project's --eval-bound on the l_inf box, for l2 also by the Lipschitz
certificate's radius), seconds. Seeded: the same command gives the same model."""

EPILOG = """\
examples:
  verify train --mode standard --out std.onnx --data-out digits_test.npz
  verify train --mode pgd --eps 0.15 --out pgd.onnx --log pgd.csv
  verify train --mode ibp --eps 0.15 --epochs 40 --out ibp.onnx
  verify train --lipschitz orthogonal --out lip.onnx
  verify lipschitz lip.onnx --data digits_test.npz"""


def _hidden(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one size")
    return vals


def add_parser(subparsers) -> argparse.ArgumentParser:
    d = TrainSettings()
    p = subparsers.add_parser("train", help="train a classifier for verifiability and export it to ONNX",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", metavar="digits|FILE.npz",
                   help="training data: digits (default) or an .npz with arrays x and y")
    p.add_argument("--arch", choices=ARCHS, default=d.arch, help="mlp (default) or cnn")
    p.add_argument("--hidden", type=_hidden, default=None, metavar="N,N",
                   help="MLP hidden widths (default 64,64) or the CNN's two conv channel counts (default 8,16)")
    p.add_argument("--mode", choices=MODES, default=d.mode, help="training mode (default standard)")
    p.add_argument("--norm", choices=NORMS, default=d.norm, help="perturbation norm (default linf)")
    p.add_argument("--eps", type=float, default=d.eps, help=f"training / evaluation radius (default {d.eps})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate, cosine-annealed (default {d.lr})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the split, initialisation and batches")
    p.add_argument("--lipschitz", choices=LIPSCHITZ, default=d.lipschitz, help="Lipschitz-bounded layers")
    p.add_argument("--activation", choices=ACTIVATIONS, default=d.activation, help="default relu")
    p.add_argument("--group-size", type=int, default=d.group_size, help=f"GroupSort group (default {d.group_size})")
    p.add_argument("--sigma", type=float, default=d.sigma, help=f"noise of --mode noise (default {d.sigma})")
    p.add_argument("--attack-steps", type=int, default=d.attack_steps, help="PGD steps in training")
    p.add_argument("--ramp-start", type=float, default=d.ramp_start, help="eps ramp start (fraction of training)")
    p.add_argument("--ramp-end", type=float, default=d.ramp_end, help="eps ramp end (fraction of training)")
    p.add_argument("--kappa-end", type=float, default=d.kappa_end, help="final weight of the natural loss")
    p.add_argument("--eval-bound", choices=EVAL_BOUNDS, default=d.eval_bound,
                   help="bound of the verified accuracy (default crown)")
    p.add_argument("--eval-every", type=int, default=d.eval_every, help="evaluate every N epochs (default 1)")
    p.add_argument("--eval-max", type=int, default=d.eval_max, help="test examples per evaluation (0: all)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (default 1)")
    p.add_argument("--out", required=True, metavar="MODEL.onnx", help="ONNX file to write")
    p.add_argument("--data-out", metavar="TEST.npz", help="write the labelled test split here (arrays x, y)")
    p.add_argument("--log", metavar="LOG.csv", help="write the per-epoch CSV log here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks for unexpected errors")
    return p


def settings_from_args(args) -> TrainSettings:
    """The ``TrainSettings`` of the parsed arguments (ValueError for a bad combination)."""
    hidden = args.hidden or ((64, 64) if args.arch == "mlp" else (8, 16))
    for name in ("eps", "lr", "sigma", "ramp_start", "ramp_end", "kappa_end"):
        if not math.isfinite(getattr(args, name)):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number")
    return TrainSettings(data=args.data, arch=args.arch, hidden=hidden, mode=args.mode, norm=args.norm, eps=args.eps,
                         epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                         lipschitz=args.lipschitz, activation=args.activation, group_size=args.group_size,
                         sigma=args.sigma, attack_steps=args.attack_steps, ramp_start=args.ramp_start,
                         ramp_end=args.ramp_end, kappa_end=args.kappa_end, eval_bound=args.eval_bound,
                         eval_every=args.eval_every, eval_max=args.eval_max, threads=args.threads)


def _check_writable(path: str, option: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{option}: folder {folder} does not exist")


def run(args) -> int:
    try:
        settings = settings_from_args(args)
        for path, opt in ((args.out, "--out"), (args.data_out, "--data-out"), (args.log, "--log")):
            if path:
                _check_writable(path, opt)
    except ValueError as e:
        return fail(str(e))
    try:
        data = load_dataset(settings)
    except DataError as e:
        return fail(str(e))
    try:
        model = train_model(settings, data.x_train, data.y_train, n_classes=data.n_classes, domain=data.domain,
                            x_test=data.x_test, y_test=data.y_test, log_path=args.log, progress=not args.quiet,
                            history=(hist := []))
    except ValueError as e:
        return fail(str(e))
    export_onnx(model, args.out, data.example_shape)
    diff = check_export(model, args.out, data.x_test[:64])
    if args.data_out:
        np.savez(args.data_out, x=data.x_test, y=data.y_test)
    r = hist[-1]
    print(f"clean_acc {r.clean_acc:.4f} pgd_acc {r.pgd_acc:.4f} verified_acc {r.verified_acc:.4f} "
          f"(test set of {len(data.y_test)}, {settings.norm} eps {settings.eps:g}); wrote {args.out} "
          f"(onnxruntime max |diff| {diff:.2e})" + (f" and {args.data_out}" if args.data_out else ""))
    return 0
