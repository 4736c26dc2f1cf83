"""SimBA (Guo et al. 2019, "Simple Black-box Adversarial Attacks"), pixel basis: the score-based baseline.

Coordinates are taken in a random order; for each, ``x - step e_q`` is queried and kept when the true
class's probability drops, else ``x + step e_q``. Every query is one onnxruntime run counted by the
oracle. With ``norm`` linf the step never exceeds ``eps`` (each coordinate moves once); with l2 the walk
stops before its distance would pass ``eps``. The example found is validated like every other.
"""
from __future__ import annotations

import numpy as np

from verifier.robustness.adversarial import AttackOutcome, check_adversarial
from verifier.robustness.oracle import Oracle


def _prob(scores: np.ndarray, label: int) -> float:
    z = scores - scores.max()
    p = np.exp(z)
    return float(p[label] / p.sum())


def simba(oracle: Oracle, x0: np.ndarray, label: int, eps: float, norm: str = "linf", queries: int = 1000,
          step: float | None = None, domain=(0.0, 1.0), seed: int = 0, index: int = 0) -> AttackOutcome:
    """One example: a validated adversarial example within ``eps`` or none after ``queries`` queries."""
    rng = np.random.default_rng(seed)
    x0 = np.asarray(x0, dtype=np.float32).reshape(-1)
    x = x0.copy()
    if step is None:
        step = eps if norm == "linf" else min(eps, 0.2)
    elif norm == "linf":
        step = min(step, eps)
    start = oracle.queries
    y = oracle.scores(x[None])[0]
    p = _prob(y, label)
    sq = 0.0
    n_out = y.size
    for q in rng.permutation(x.size):
        if np.argmax(y) != label or oracle.queries - start >= queries:
            break
        if norm == "l2" and sq + step * step > eps * eps:
            break
        for sign in (-1.0, 1.0):
            if oracle.queries - start >= queries:
                break
            xt = x.copy()
            xt[q] = x0[q] + sign * step
            if domain is not None:
                xt[q] = np.clip(xt[q], domain[0], domain[1])
            if xt[q] == x[q]:
                continue
            yt = oracle.scores(xt[None])[0]
            pt = _prob(yt, label)
            if pt < p:
                sq += float(xt[q] - x0[q]) ** 2
                x, y, p = xt, yt, pt
                break
    used = oracle.queries - start
    adv = None
    if np.argmax(y) != label or y[label] <= np.max(np.delete(y, label)):
        adv = check_adversarial(oracle.reference, x0, label, x, norm, n_out, eps * (1 + 1e-6), domain)
    return AttackOutcome(index, label, used, adv)
