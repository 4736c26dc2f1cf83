"""ONNX export of a trained model: its steps (``verifier.training.plan``) written by
``verifier.certificates.onnx_writer``: Gemm / Conv with the effective weights (spectral-normalised and
orthogonal layers as their plain matrices), Relu, Flatten, and GroupSort / MaxMin as compare-and-swap layers
(Gemm, Relu, Add), all of which the verifier's ONNX front end loads exactly."""
from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from verifier.certificates.onnx_writer import write_onnx
from verifier.training.plan import model_steps


def export_onnx(model: nn.Module, path: str | os.PathLike, input_shape) -> str:
    """Write ``model`` (evaluated as in eval mode) to ``path`` with input ``(batch, *input_shape)`` and output
    ``logits``; returns the path."""
    model.eval()
    with torch.no_grad():
        n_out = int(model(torch.zeros(1, *input_shape)).reshape(1, -1).shape[1])
        steps = model_steps(model, input_shape)
    return write_onnx(steps, path, input_shape, n_out, name="trained_model")


EXPORT_TOL = 1e-4


def check_export(model: nn.Module, path: str | os.PathLike, x, tol: float = EXPORT_TOL) -> float:
    """The largest |difference| between ``model`` and the ONNX file ``path`` run by onnxruntime on inputs ``x``
    (N, *input_shape); ValueError if it exceeds ``tol`` relative to the logits' size."""
    x = np.asarray(x, dtype=np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    model.eval()
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    diff = float(np.abs(got - want).max()) if x.size else 0.0
    if diff > tol * (1.0 + float(np.abs(want).max(initial=0.0))):
        raise ValueError(f"the exported model differs from the trained one by {diff:.3g} (onnxruntime)")
    return diff
