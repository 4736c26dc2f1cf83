"""What ``verify smooth`` and ``verify lipschitz`` share: the subcommand with its model and ``--data``
arguments, a bad argument as :class:`ArgError` (one ``error:`` line and exit status 2 through :func:`fail`),
the ``--radii`` list, the ``--device`` check, the model and its labelled data set, and the log stream
(``--out`` or stdout)."""
from __future__ import annotations

import argparse
import contextlib
import math
import sys

import torch

from frontends.onnx.loader import load_onnx
from verifier.certificates.data import DataError, load_labelled_npz
from verifier.ir.errors import VerifierError


class ArgError(Exception):
    """An argument, model or data file the command cannot use (the message is printed after ``error:``)."""


def add_certify_parser(subparsers, name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """The subcommand ``name`` with its two positional inputs: the ONNX model and ``--data FILE.npz``."""
    p = subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="ONNX model (.onnx or .onnx.gz) giving class scores")
    p.add_argument("--data", required=True, metavar="FILE.npz", help="labelled inputs: arrays x and y")
    return p


def fail(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def parse_radii(text: str) -> list[float]:
    """The comma-separated ``--radii`` as numbers (ArgError unless non-negative and finite, at least one)."""
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
        if not vals or any(not math.isfinite(v) or v < 0 for v in vals):
            raise ValueError
    except ValueError:
        raise ArgError(f"--radii must be a comma-separated list of non-negative numbers, got {text!r}") from None
    return vals


def check_device(device: str, known: bool = False) -> None:
    """ArgError for ``--device cuda`` without CUDA (``known``: also for a name torch does not know)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ArgError("--device cuda was asked for but CUDA is not available")
    if known:
        try:
            torch.device(device)
        except (RuntimeError, ValueError):
            raise ArgError(f"unknown device {device!r}") from None


def load_model_and_data(model: str, data: str, device: str, known_device: bool = False):
    """``(graph, x, y)``: the ONNX model on ``device`` and its labelled data set.

    ArgError when the device cannot be used (:func:`check_device`, ``known_device`` as its ``known``), or the
    model or the data file cannot be.
    """
    check_device(device, known_device)
    try:
        graph = load_onnx(model, device=device)
        x, y = load_labelled_npz(data, graph.n_inputs)
    except (VerifierError, DataError) as e:
        raise ArgError(str(e)) from None
    return graph, x, y


@contextlib.contextmanager
def log_output(path: str | None):
    """The log stream: the file ``path`` (closed afterwards; ArgError when it cannot be written) or stdout."""
    try:
        out = open(path, "w") if path else sys.stdout
    except OSError as e:
        raise ArgError(f"cannot write {path}: {e.strerror}") from None
    try:
        yield out
    finally:
        if out is not sys.stdout:
            out.close()
