"""White-box gradient attacks on a differentiable torch function: FGSM (one step) and PGD, in l_inf or l2.

Used on the substitute model (the transfer attack, cross-entropy loss) and, for l2 balls, on the verifier's
graph of the real model (margin loss; l_inf boxes use :func:`verifier.attack.pgd_attack`). The points they
return are candidates only: an adversarial example is what :mod:`verifier.robustness.adversarial` validates.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from verifier.attack.steps import ascent_direction, project_delta


def margin_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) ``max_{j != label} y_j - y_label`` (with ``targets``: ``y_target - y_label``); >= 0 when adversarial."""
    true = logits.gather(1, labels[:, None])[:, 0]
    if targets is not None:
        return logits.gather(1, targets[:, None])[:, 0] - true
    other = logits.clone()
    other.scatter_(1, labels[:, None], -torch.inf)
    return other.max(1).values - true


_FLOOR = 1e-30  # smallest norm divided by


def project(x: torch.Tensor, x0: torch.Tensor, eps, norm: str, domain) -> torch.Tensor:
    """``x`` moved into the ``norm`` ball of radius ``eps`` (scalar or (N,)) around ``x0``, then into ``domain``
    (clipping into a box around ``x0`` never increases the distance)."""
    eps = torch.as_tensor(eps, dtype=x.dtype).reshape(-1, 1)
    x = x0 + project_delta(x - x0, eps, norm, _FLOOR)
    if domain is not None:
        x = x.clamp(domain[0], domain[1])
    return x


def gradient_attack(fn: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, labels: torch.Tensor, eps,
                    norm: str = "linf", steps: int = 1, domain=None, loss: str = "ce",
                    step_size: float | None = None, targets: torch.Tensor | None = None,
                    stop_early: bool = False) -> torch.Tensor:
    """Candidates (N, n) that raise ``loss`` (``ce`` or ``margin``) of ``fn`` within the ``eps`` ball.

    ``steps`` 1 is FGSM (one step of size ``eps``); more steps are PGD from ``x0`` with steps of
    ``step_size`` (default ``2.5 eps / steps``) that end at the last step, or with ``stop_early`` keep for each
    input the first point where ``fn`` already misclassifies (margin >= 0): the point near the boundary that a
    minimal-distance search wants, where a transfer attack wants the full steps. ``targets`` (N,): the margin
    loss towards these classes.
    """
    x0 = x0.detach()
    eps_t = torch.as_tensor(eps, dtype=x0.dtype).reshape(-1, 1)
    alpha = eps_t if steps == 1 else (eps_t * 2.5 / steps if step_size is None else torch.full_like(eps_t, step_size))
    x = x0.clone()
    found = torch.zeros(len(x0), dtype=torch.bool)
    best = x0.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        logits = fn(x)
        if loss == "ce":
            value = F.cross_entropy(logits, labels, reduction="sum")
        else:
            value = margin_loss(logits, labels, targets).sum()
        g, = torch.autograd.grad(value, x)
        with torch.no_grad():
            x = project(x + alpha * ascent_direction(g, norm, _FLOOR), x0, eps_t, norm, domain)
            if stop_early and steps > 1:
                hit = (margin_loss(fn(x), labels) >= 0) & ~found
                best[hit] = x[hit]
                found |= hit
                if bool(found.all()):
                    break
    return torch.where(found[:, None], best, x.detach())
