"""Local robustness as a verification property, and the validation of adversarial examples.

The property of example ``x0`` with label ``c`` at radius ``eps`` is a :class:`~verifier.ir.spec.Spec` whose
unsafe set is ``y_c <= y_j`` for some ``j != c`` (one disjunct per other class) on the l_inf box of radius
``eps`` around ``x0`` intersected with the input domain: the convention of the VNN-LIB robustness properties,
so a tie counts as adversarial. An adversarial example is accepted only when
:func:`verifier.attack.validate_candidate` (onnxruntime, no tolerance) confirms it; its distance is measured
on the float32 point that onnxruntime ran.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from frontends.onnx.reference import OnnxReference
from verifier.attack.validate import validate_candidate
from verifier.ir.spec import Disjunct, Spec


@dataclass
class Adversarial:
    """A validated adversarial example: the float32 point (as float64), onnxruntime's output, the class it
    reaches and its distance from the clean input in the attack's norm."""

    x: np.ndarray
    y: np.ndarray
    target: int
    distance: float


def distance(delta: np.ndarray, norm: str) -> float:
    delta = np.asarray(delta, dtype=np.float64).reshape(-1)
    if norm == "linf":
        return float(np.max(np.abs(delta))) if delta.size else 0.0
    if norm == "l2":
        return float(np.linalg.norm(delta))
    raise ValueError(f"unknown norm {norm!r}; choose linf or l2")


def robustness_spec(x0: np.ndarray, label: int, eps: float, n_outputs: int,
                    domain: tuple[float, float] | None = None) -> Spec:
    """The unsafe set ``exists j != label: y_label <= y_j`` on ``[x0 - eps, x0 + eps]`` (within ``domain``)."""
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    lo, hi = x0 - eps, x0 + eps
    if domain is not None:
        lo, hi = np.maximum(lo, domain[0]), np.minimum(hi, domain[1])
        lo, hi = np.minimum(lo, x0), np.maximum(hi, x0)  # an input outside the domain keeps its own point
    disjuncts = []
    for j in range(n_outputs):
        if j == label:
            continue
        C = np.zeros((1, n_outputs))
        C[0, label], C[0, j] = 1.0, -1.0
        disjuncts.append(Disjunct(lo, hi, C, np.zeros(1)))
    return Spec(x0.size, n_outputs, tuple(disjuncts), source=f"robustness(label={label}, eps={eps:g})")


def check_adversarial(reference: OnnxReference, x0: np.ndarray, label: int, x: np.ndarray, norm: str,
                      n_outputs: int, eps: float | None = None,
                      domain: tuple[float, float] | None = None) -> Adversarial | None:
    """The validated adversarial example made from ``x``, or None.

    ``x`` is rounded to float32 and clipped to ``domain``; it must then lie within ``eps`` of ``x0`` in
    ``norm`` (no ``eps``: any distance) and onnxruntime must give ``y_label <= y_j`` for some ``j != label``.
    """
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    x32 = np.asarray(x, dtype=np.float32).reshape(-1)
    if domain is not None:
        x32 = np.clip(x32, np.float32(domain[0]), np.float32(domain[1]))
    d = distance(x32.astype(np.float64) - x0, norm)
    if eps is not None and d > eps:
        return None
    box = distance(x32.astype(np.float64) - x0, "linf")
    spec = robustness_spec(x0, label, box, n_outputs, domain)
    cex = validate_candidate(reference, spec, x32.astype(np.float64))
    if cex is None:
        return None
    d = distance(cex.x - x0, norm)
    if eps is not None and d > eps:
        return None
    others = [j for j in range(n_outputs) if j != label]
    target = max(others, key=lambda j: cex.y[j])
    return Adversarial(cex.x, cex.y, int(target), d)


@dataclass
class AttackOutcome:
    """One example under one attack: the validated adversarial example (None: failed) and the queries spent."""

    index: int
    label: int
    queries: int
    adversarial: Adversarial | None = None

    @property
    def success(self) -> bool:
        return self.adversarial is not None
