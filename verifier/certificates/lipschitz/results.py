"""What the Lipschitz certificates return: :class:`LipschitzBound` (bounds on l2 Lipschitz constants of a
network's output map, overall and per class pair) and :class:`Radius` (certified radii of one input)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LipschitzBound:
    """Upper bounds on l2 Lipschitz constants of a graph's output map."""

    L: float  # bound on Lip(x -> f(x)) for the whole output vector
    pair: np.ndarray | None = None  # (K, K): bound on Lip(f_i - f_j); diagonal 0
    method: str = "product"
    layers: list[dict] = field(default_factory=list)  # per segment / activation: name, upper, estimate
    time_s: float = 0.0
    message: str = ""

    def pair_bound(self, i: int, j: int) -> float:
        if self.pair is not None:
            return float(self.pair[i, j])
        return math.sqrt(2.0) * self.L

    def pair_matrix(self, k: int) -> np.ndarray:
        if self.pair is not None:
            return self.pair
        m = np.full((k, k), math.sqrt(2.0) * self.L)
        np.fill_diagonal(m, 0.0)
        return m


@dataclass
class Radius:
    prediction: int  # argmax of the logits at x
    margin: float  # f_pred - max_{j != pred} f_j (float64)
    l2: float  # certified l2 radius (0 if none)
    linf: float  # certified l_inf radius, l2 / sqrt(n)
