"""The random-noise baseline: perturbations of the attack's norm and size in random directions (l_inf: a
random corner of the box; l2: a uniformly random direction), each checked on the real model."""
from __future__ import annotations

import numpy as np

from verifier.robustness.adversarial import AttackOutcome, check_adversarial
from verifier.robustness.oracle import Oracle


def random_perturbation(x0: np.ndarray, eps: float, norm: str, rng: np.random.Generator, domain=None) -> np.ndarray:
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    if norm == "linf":
        delta = eps * rng.choice((-1.0, 1.0), size=x0.size)
    else:
        g = rng.standard_normal(x0.size)
        delta = eps * g / max(np.linalg.norm(g), 1e-30)
    x = x0 + delta
    return np.clip(x, domain[0], domain[1]) if domain is not None else x


def noise_attack(oracle: Oracle, X: np.ndarray, labels: np.ndarray, eps: float, norm: str, n_outputs: int,
                 tries: int = 1, domain=(0.0, 1.0), seed: int = 0, indices=None) -> list[AttackOutcome]:
    """``tries`` random perturbations of size ``eps`` per example; success when one is adversarial."""
    rng = np.random.default_rng(seed)
    out = []
    for k, (x0, c) in enumerate(zip(np.asarray(X).reshape(len(X), oracle.n_inputs), labels)):
        adv, used = None, 0
        for _ in range(max(1, tries)):
            oracle.queries += 1
            used += 1
            x = random_perturbation(x0, eps, norm, rng, domain)
            adv = check_adversarial(oracle.reference, x0, int(c), x, norm, n_outputs, eps * (1 + 1e-6), domain)
            if adv is not None:
                break
        out.append(AttackOutcome(k if indices is None else int(indices[k]), int(c), used, adv))
    return out
