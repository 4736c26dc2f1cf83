"""Sampling a base classifier under Gaussian noise: the classifier wrapper (:func:`as_classifier`: a
Graph, a ``torch.nn.Module``, an ONNX path or a callable) and the batched, seeded class counts of
``f(x + e)``, ``e ~ N(0, sigma^2 I)`` (:func:`sample_counts`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from frontends.onnx.loader import load_onnx
from verifier.ir.graph import Graph

# Large batches amortise the per-call overhead of torch's CPU kernels (which grows a lot when
# the machine is busy); the noisy input batch is capped at MAX_BATCH_ELEMENTS scalars (memory).
DEFAULT_BATCH = 50_000
MAX_BATCH_ELEMENTS = 1 << 24


@dataclass
class BaseClassifier:
    """A batched logit function with the shape of one example and where it runs."""

    fn: Callable[[torch.Tensor], torch.Tensor]  # (B, *example_shape) -> (B, K)
    example_shape: tuple[int, ...] | None  # None: take the shape of the given x
    device: torch.device
    dtype: torch.dtype
    name: str = ""


def _module_classifier(model: torch.nn.Module, device, dtype) -> BaseClassifier:
    params = list(model.parameters()) + list(model.buffers())
    dev = torch.device(device) if device is not None else (params[0].device if params else torch.device("cpu"))
    dt = dtype or (params[0].dtype if params and params[0].is_floating_point() else torch.float32)
    module = model.to(device=dev, dtype=dt).eval()

    def fn(x):
        y = module(x)
        return y.reshape(y.shape[0], -1)

    return BaseClassifier(fn, None, dev, dt, type(model).__name__)


def as_classifier(model, device=None, dtype=None) -> BaseClassifier:
    """Wrap a Graph, ``torch.nn.Module``, ONNX path or callable as a batched classifier."""

    if isinstance(model, (str, os.PathLike)):

        model = load_onnx(model, dtype=dtype or torch.float32, device=device or "cpu")
    if isinstance(model, BaseClassifier):
        return model
    if isinstance(model, Graph):
        g = model
        dev = torch.device(device) if device is not None else g.device
        dt = dtype or g.dtype
        if dev != g.device or dt != g.dtype:
            g = g.to(dev, dt)
        n = g.n_inputs
        return BaseClassifier(lambda x: g.forward(x.reshape(x.shape[0], n)), None, dev, dt, g.source)
    if isinstance(model, torch.nn.Module):
        return _module_classifier(model, device, dtype)
    if callable(model):
        return BaseClassifier(model, None, torch.device(device or "cpu"), dtype or torch.float32, "callable")
    raise TypeError(f"cannot use {type(model).__name__} as a classifier")


def _auto_batch(batch: int | None, n_elements: int) -> int:
    b = DEFAULT_BATCH if batch is None or batch <= 0 else int(batch)
    return max(1, min(b, MAX_BATCH_ELEMENTS // max(1, n_elements)))


def seeded_generator(clf: BaseClassifier, seed: int) -> torch.Generator:
    """A fresh ``torch.Generator`` on the classifier's device, seeded with ``seed``."""
    g = torch.Generator(device=clf.device)
    g.manual_seed(int(seed))
    return g


def sample_counts(clf: BaseClassifier, x, sigma: float, num: int, batch: int | None = None,
                  generator: torch.Generator | None = None, num_classes: int | None = None) -> np.ndarray:
    """Counts of the base classifier's top class over ``num`` samples of ``x + N(0, sigma^2 I)``."""
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(clf.device, clf.dtype)
    shape = tuple(x.shape) if clf.example_shape is None else clf.example_shape
    flat = x.reshape(1, -1)
    d = flat.shape[1]
    b = _auto_batch(batch, d)
    with torch.inference_mode():
        if num_classes is None:
            num_classes = int(clf.fn(x.reshape(1, *shape)).shape[1])
        counts = torch.zeros(num_classes, dtype=torch.int64, device=clf.device)
        noise = None
        left = int(num)
        while left > 0:
            m = min(b, left)
            if noise is None or noise.shape[0] != m:
                noise = torch.empty((m, d), device=clf.device, dtype=clf.dtype)
            noise.normal_(0.0, float(sigma), generator=generator)
            noise.add_(flat)
            logits = clf.fn(noise.view(m, *shape))
            counts += torch.bincount(logits.argmax(1), minlength=num_classes)[:num_classes]
            left -= m
    return counts.cpu().numpy()
