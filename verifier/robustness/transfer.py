"""The transfer attack: FGSM or PGD crafted on the substitute model, then run on the real model.

Each candidate costs one oracle query (the check on the real model, through
:func:`~verifier.robustness.adversarial.check_adversarial`, which is onnxruntime).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from verifier.robustness.adversarial import AttackOutcome, check_adversarial
from verifier.robustness.gradient import gradient_attack
from verifier.robustness.oracle import Oracle
from verifier.settings.robustness import TransferSettings


def craft(model: nn.Module, X: np.ndarray, labels: np.ndarray, settings: TransferSettings) -> np.ndarray:
    """Candidates crafted on ``model`` (cross-entropy loss, ``settings.attack`` fgsm or pgd)."""
    steps = 1 if settings.attack == "fgsm" else max(1, settings.steps)
    x0 = torch.as_tensor(np.asarray(X, dtype=np.float32).reshape(len(X), -1))
    y = torch.as_tensor(labels, dtype=torch.long)
    return gradient_attack(model, x0, y, settings.eps, settings.norm, steps, settings.domain, "ce").numpy()


def transfer_attack(model: nn.Module, oracle: Oracle, X: np.ndarray, labels: np.ndarray, n_outputs: int,
                    settings: TransferSettings, indices=None) -> list[AttackOutcome]:
    """Craft on the substitute ``model``, check each candidate on the real model (one query each)."""
    if len(X) == 0:
        return []
    cand = craft(model, X, labels, settings)
    out = []
    for k, (x0, c, xa) in enumerate(zip(np.asarray(X).reshape(len(X), oracle.n_inputs), labels, cand)):
        oracle.queries += 1
        adv = check_adversarial(oracle.reference, x0, int(c), xa, settings.norm, n_outputs,
                                settings.eps * (1 + 1e-6), settings.domain)
        out.append(AttackOutcome(k if indices is None else int(indices[k]), int(c), 1, adv))
    return out
