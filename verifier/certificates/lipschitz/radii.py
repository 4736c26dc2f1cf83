"""Certified l2 / l_inf radii of one input from its float64 logits and Lipschitz pair bounds, with a
safety margin for the rounding of the network evaluation."""
from __future__ import annotations

import math

import numpy as np

from verifier.certificates.lipschitz.evaluate import logits64
from verifier.certificates.lipschitz.results import LipschitzBound, Radius
from verifier.certificates.threads import few_threads
from verifier.ir.graph import Graph


def safety_margin(z_i: float, z_j: float) -> float:
    """Allowance for the rounding of the network evaluation (float32 runtimes included)."""
    return 1e-5 * (1.0 + abs(z_i) + abs(z_j))


def radius_from_logits(z: np.ndarray, pair: np.ndarray, n_inputs: int, cls: int | None = None) -> Radius:
    """Certified radii for class ``cls`` (default: argmax) from float64 logits and pair bounds."""
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    pred = int(np.argmax(z))
    c = pred if cls is None else int(cls)
    others = [j for j in range(z.size) if j != c]
    if not others:
        return Radius(pred, math.inf, math.inf, math.inf)
    margin = float(min(z[c] - z[j] for j in others))
    r = math.inf
    for j in others:
        m = z[c] - z[j] - safety_margin(z[c], z[j])
        Lj = float(pair[c, j])
        if m <= 0:
            r = 0.0
            break
        r = min(r, m / Lj if Lj > 0 else math.inf)
    r = max(0.0, r)
    return Radius(pred, margin, r, r / math.sqrt(n_inputs))


@few_threads
def certified_radius(graph: Graph, x, bound: LipschitzBound, cls: int | None = None) -> Radius:
    """Certified l2 / l_inf radius of ``x`` (one example) for its predicted class (or ``cls``)."""
    z = logits64(graph, x)[0]
    return radius_from_logits(z, bound.pair_matrix(graph.n_outputs), graph.n_inputs, cls)
