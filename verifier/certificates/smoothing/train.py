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
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from verifier.certificates.threads import torch_threads

DIGITS_SHAPE = {"mlp": (64,), "cnn": (1, 8, 8)}


# --------------------------------------------------------------------------- data
def load_digits_split(test_fraction: float = 0.3, seed: int = 0):
    """scikit-learn's digits, pixels scaled to [0, 1]: ``(x_train, y_train, x_test, y_test)``, x as (N, 64) float32."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


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
    mods = list(model) if isinstance(model, nn.Sequential) else [model]
    nodes, inits = [], []
    cur = "input"
    for k, m in enumerate(mods):
        out = f"t{k}"
        if isinstance(m, nn.Linear):
            w = m.weight.detach().numpy().astype(np.float32)
            inits.append(numpy_helper.from_array(w, f"W{k}"))
            ins = [cur, f"W{k}"]
            if m.bias is not None:
                inits.append(numpy_helper.from_array(m.bias.detach().numpy().astype(np.float32), f"B{k}"))
                ins.append(f"B{k}")
            nodes.append(helper.make_node("Gemm", ins, [out], name=f"gemm{k}", transB=1))
        elif isinstance(m, nn.Conv2d):
            if isinstance(m.padding, str):
                raise ValueError("string padding is not supported by the helper exporter")
            inits.append(numpy_helper.from_array(m.weight.detach().numpy().astype(np.float32), f"W{k}"))
            ins = [cur, f"W{k}"]
            if m.bias is not None:
                inits.append(numpy_helper.from_array(m.bias.detach().numpy().astype(np.float32), f"B{k}"))
                ins.append(f"B{k}")
            ph, pw = m.padding
            nodes.append(helper.make_node("Conv", ins, [out], name=f"conv{k}", kernel_shape=list(m.kernel_size),
                                          strides=list(m.stride), pads=[ph, pw, ph, pw], dilations=list(m.dilation),
                                          group=m.groups))
        elif isinstance(m, nn.ReLU):
            nodes.append(helper.make_node("Relu", [cur], [out], name=f"relu{k}"))
        elif isinstance(m, nn.Flatten):
            nodes.append(helper.make_node("Flatten", [cur], [out], name=f"flatten{k}", axis=1))
        else:
            raise ValueError(f"the helper exporter does not support {type(m).__name__}")
        cur = out
    with torch.no_grad():
        n_out = int(model(torch.zeros(1, *input_shape)).reshape(1, -1).shape[1])
    nodes.append(helper.make_node("Identity", [cur], ["logits"], name="output"))
    graph = helper.make_graph(
        nodes, "smoothing_model",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *input_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_out])], inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, path)


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
