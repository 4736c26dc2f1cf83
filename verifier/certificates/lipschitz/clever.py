"""CLEVER-style (Weng et al. 2018) sampling of gradient norms near a point with a reverse-Weibull fit.

It is an ESTIMATE, never a certificate: useful to see how loose the certified bounds (``analysis.py``,
``local.py``) are.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import weibull_max

from verifier.certificates.lipschitz.evaluate import gradient_norms, logits64
from verifier.certificates.threads import few_threads
from verifier.ir.graph import Graph


@dataclass
class CleverEstimate:
    """CLEVER-style ESTIMATE (not a certificate) of local Lipschitz constants and the robust radius."""

    label: int
    lipschitz: dict[int, float]  # per other class j: estimated local Lipschitz constant of f_label - f_j
    max_sampled: dict[int, float]  # per j: the largest gradient norm actually seen
    radius: float  # min_j margin_j / lipschitz_j (an estimate of the l2 robustness radius)
    samples: int
    kind: str = "estimate"


@few_threads
def clever_estimate(graph: Graph, x, label: int | None = None, radius: float = 0.5, n_batches: int = 50,
                    batch_size: int = 100, seed: int = 0) -> CleverEstimate:
    """CLEVER (Weng et al. 2018): sample gradient norms of ``f_label - f_j`` in the l2 ball of ``radius``.

    The maxima of ``n_batches`` batches are fitted by a reverse Weibull distribution; its
    location is the estimate (never below the largest norm seen). It is an estimate, not
    a bound: it can be below the true constant.
    """

    x = np.asarray(x, dtype=np.float64).reshape(-1)
    n = x.size
    z = logits64(graph, x)[0]
    c = int(np.argmax(z)) if label is None else int(label)
    rng = np.random.default_rng(seed)
    S = n_batches * batch_size
    d = rng.standard_normal((S, n))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    d *= radius * rng.random((S, 1)) ** (1.0 / n)
    pts = x[None, :] + d
    norms = []
    step = max(1, min(1000, (1 << 24) // max(1, n * z.size)))
    for k in range(0, S, step):
        norms.append(gradient_norms(graph, pts[k:k + step])["pair"][:, c, :])
    G = np.concatenate(norms, 0).reshape(n_batches, batch_size, -1)  # (batches, per, K)
    est, seen = {}, {}
    r = math.inf
    for j in range(z.size):
        if j == c:
            continue
        maxima = G[:, :, j].max(axis=1)
        top = float(maxima.max())
        val = top
        if top > 0 and np.ptp(maxima) > 1e-12 * top:
            try:
                _, loc, _ = weibull_max.fit(maxima, loc=top * 1.01)
                if math.isfinite(loc) and top <= loc <= 10 * top:
                    val = float(loc)
            except Exception:
                pass
        est[j], seen[j] = val, top
        m = z[c] - z[j]
        r = min(r, (m / val) if val > 0 else math.inf)
    return CleverEstimate(c, est, seen, max(0.0, r), S)
