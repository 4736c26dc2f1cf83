"""The substitute model of Papernot et al. 2017 ("Practical Black-Box Attacks against Machine Learning"),
trained with Jacobian-based dataset augmentation on the oracle's labels only.

Round ``rho`` trains the substitute F on the set S labelled by the oracle, then (except in the last round)
adds ``x + lambda_rho * sign(J_F(x)[O(x)])`` for the points x of S (``lambda_rho = lambda * (-1)^floor(rho /
tau)``: the periodic step size) and asks the oracle for their labels. From round ``sigma`` on (reservoir
sampling) only ``kappa`` points drawn uniformly from S are augmented, so the query count is
``|S_0| 2^sigma + kappa (rounds - 1 - sigma)`` instead of doubling every round.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from verifier.certificates.smoothing.train import make_mlp, train_noisy
from verifier.certificates.threads import torch_threads
from verifier.robustness.oracle import Oracle
from verifier.settings.robustness import SubstituteSettings

log = logging.getLogger("verifier.robustness")


@dataclass
class Substitute:
    model: nn.Module  # flat (N, n) inputs -> (N, K) logits
    queries: int  # oracle labels asked for during training
    sizes: list[int]  # |S| in each round
    agreement: float  # fraction of the final S on which the substitute agrees with the oracle


def jacobian_augment(model: nn.Module, X: np.ndarray, labels: np.ndarray, lam: float, domain) -> np.ndarray:
    """``X + lam * sign(dF_label / dx)`` (clipped to ``domain``)."""
    x = torch.as_tensor(X, dtype=torch.float32).requires_grad_(True)
    out = model(x).gather(1, torch.as_tensor(labels, dtype=torch.long)[:, None]).sum()
    g, = torch.autograd.grad(out, x)
    new = (x + lam * torch.sign(g)).detach().numpy()
    if domain is not None:
        new = np.clip(new, domain[0], domain[1])
    return new.astype(np.float32)


def train_substitute(oracle: Oracle, x_init: np.ndarray, n_classes: int, settings: SubstituteSettings,
                     domain=(0.0, 1.0), threads: int | None = 1) -> Substitute:
    """Train the substitute from the initial inputs ``x_init`` (N, n) with ``settings.rounds`` rounds."""
    rng = np.random.default_rng(settings.seed)
    start = oracle.queries
    S = np.asarray(x_init, dtype=np.float32).reshape(len(x_init), -1)
    labels = oracle.labels(S)
    model = make_mlp(S.shape[1], tuple(settings.hidden), n_classes, seed=settings.seed)
    sizes = []
    with torch_threads(threads):
        for rho in range(settings.rounds):
            sizes.append(len(S))
            train_noisy(model, S, labels, 0.0, epochs=settings.epochs, seed=settings.seed + rho, threads=None)
            if rho == settings.rounds - 1:
                break
            lam = settings.lam * (-1.0) ** (rho // max(1, settings.tau))
            if settings.reservoir > 0 and rho >= settings.reservoir_from and settings.reservoir < len(S):
                pick = rng.choice(len(S), settings.reservoir, replace=False)
            else:
                pick = np.arange(len(S))
            new = jacobian_augment(model, S[pick], labels[pick], lam, domain)
            S = np.concatenate([S, new])
            labels = np.concatenate([labels, oracle.labels(new)])
            log.info("substitute round %d: |S| = %d, %d oracle queries", rho + 1, len(S), oracle.queries - start)
        with torch.no_grad():
            agree = float((model(torch.as_tensor(S)).argmax(1).numpy() == labels).mean())
    return Substitute(model.eval(), oracle.queries - start, sizes, agree)
