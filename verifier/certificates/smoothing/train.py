"""Train small base classifiers with Gaussian noise augmentation and export them to ONNX.

Cohen et al. train the base classifier of a smoothed classifier on inputs
corrupted with the same noise ``N(0, sigma^2 I)`` that smoothing adds; this
module applies that recipe to small models on scikit-learn's ``digits`` data set
(8x8 grey images, 10 classes, shipped with scikit-learn: no download), scaled
to ``[0, 1]``.

Command line (writes a model and a labelled test set for ``verify smooth`` /
``verify lipschitz``)::

    python -m verifier.certificates.smoothing.train --sigma 0.25 --arch mlp --out digits_mlp.onnx \
        --data-out digits_test.npz

``verify train --mode noise --sigma 0.25`` (``verifier.training``) trains such models too, with the other
training modes and Lipschitz-bounded layers.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np
import torch
from torch import nn

from verifier.certificates.data import load_digits_split
from verifier.certificates.onnx_writer import sequential_steps, write_onnx
from verifier.certificates.threads import torch_threads

DIGITS_SHAPE = {"mlp": (64,), "cnn": (1, 8, 8)}
__all__ = ["DIGITS_SHAPE", "load_digits_split", "make_mlp", "make_cnn", "train_noisy", "accuracy",
           "train_digits_model", "export_onnx", "main"]


# --------------------------------------------------------------------------- models
def make_mlp(n_in: int = 64, hidden=(128, 128), n_out: int = 10, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    prev = n_in
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    layers.append(nn.Linear(prev, n_out))
    return nn.Sequential(*layers)


def make_cnn(channels=(8, 16), n_out: int = 10, seed: int = 0) -> nn.Sequential:
    """For (1, 8, 8) inputs: conv3x3 (pad 1), conv4x4 stride 2 (pad 1), one linear layer."""
    torch.manual_seed(seed)
    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),
        nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(c2 * 4 * 4, n_out))


# --------------------------------------------------------------------------- training
def train_noisy(model: nn.Module, x: np.ndarray, y: np.ndarray, sigma: float, epochs: int = 60,
                lr: float = 2e-3, batch: int = 64, seed: int = 0, input_shape=None,
                weight_decay: float = 0.0, threads: int | None = 1) -> nn.Module:
    """Train with Adam and cross-entropy on inputs ``x + N(0, sigma^2 I)`` (fresh noise every batch)."""
    with torch_threads(threads):
        g = torch.Generator().manual_seed(seed)
        X = torch.as_tensor(x, dtype=torch.float32)
        if input_shape is not None:
            X = X.reshape(len(X), *input_shape)
        Y = torch.as_tensor(y, dtype=torch.long)
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(len(X), generator=g)
            for k in range(0, len(X), batch):
                idx = perm[k:k + batch]
                xb = X[idx]
                if sigma > 0:
                    xb = xb + sigma * torch.randn(xb.shape, generator=g)
                opt.zero_grad()
                loss = loss_fn(model(xb), Y[idx])
                loss.backward()
                opt.step()
            sched.step()
        model.eval()
        return model


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, input_shape=None) -> float:
    X = torch.as_tensor(x, dtype=torch.float32)
    if input_shape is not None:
        X = X.reshape(len(X), *input_shape)
    with torch.no_grad():
        return float((model(X).argmax(1).numpy() == np.asarray(y)).mean())


def train_digits_model(sigma: float, arch: str = "mlp", epochs: int = 60, seed: int = 0, hidden=(128, 128)):
    """Train a digits classifier at noise level ``sigma``; returns ``(model, (x_tr, y_tr, x_te, y_te))``."""
    data = load_digits_split(seed=seed)
    if arch == "mlp":
        model = make_mlp(hidden=hidden, seed=seed)
    elif arch == "cnn":
        model = make_cnn(seed=seed)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose mlp or cnn")
    train_noisy(model, data[0], data[1], sigma, epochs=epochs, seed=seed, input_shape=DIGITS_SHAPE[arch])
    return model, data


# --------------------------------------------------------------------------- ONNX export
def export_onnx(model: nn.Module, path: str | os.PathLike, input_shape, method: str = "auto") -> str:
    """Write ``model`` as ONNX with a dynamic batch axis; input shape ``(batch, *input_shape)``.

    ``method``: ``torch`` (``torch.onnx.export`` with the TorchScript exporter, which
    needs no onnxscript), ``helper`` (write the graph with ``onnx.helper`` from the
    weights; ``nn.Sequential`` of Linear / Conv2d / ReLU / Flatten only), or
    ``auto`` (torch, then helper if that fails).
    """
    path = str(path)
    model = model.eval().cpu()
    if method in ("auto", "torch"):
        try:
            dummy = torch.zeros(1, *input_shape)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (dummy,), path, dynamo=False, input_names=["input"],
                                  output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                                  opset_version=13)
            return path
        except Exception:
            if method == "torch":
                raise
    if method not in ("auto", "helper"):
        raise ValueError(f"unknown export method {method!r}")
    _export_sequential_helper(model, path, input_shape)
    return path


def _export_sequential_helper(model: nn.Module, path: str, input_shape) -> None:
    with torch.no_grad():
        n_out = int(model(torch.zeros(1, *input_shape)).reshape(1, -1).shape[1])
    write_onnx(sequential_steps(model), path, input_shape, n_out, name="smoothing_model")


# --------------------------------------------------------------------------- command line
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m verifier.certificates.smoothing.train",
                                 description="Train a digits classifier with Gaussian noise augmentation and export "
                                             "it to ONNX (and the test split as .npz for `verify smooth`).")
    ap.add_argument("--sigma", type=float, default=0.25, help="noise level of the augmentation (default 0.25)")
    ap.add_argument("--arch", choices=("mlp", "cnn"), default="mlp")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--data-out", help="write the test split here as .npz (arrays x, y)")
    args = ap.parse_args(argv)
    model, (xtr, ytr, xte, yte) = train_digits_model(args.sigma, args.arch, args.epochs, args.seed)
    shape = DIGITS_SHAPE[args.arch]
    export_onnx(model, args.out, shape)
    print(f"clean test accuracy {accuracy(model, xte, yte, shape):.3f}; wrote {args.out}", file=sys.stderr)
    if args.data_out:
        np.savez(args.data_out, x=xte.reshape(len(xte), *shape), y=yte)
        print(f"wrote {args.data_out} ({len(xte)} examples)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
