"""The steps of gradient attacks in an l_inf or l2 ball, shared by the batched attacks on torch models (adversarial
training, ``verifier.training.attacks``; the substitute and l2 attacks, ``verifier.robustness.gradient``): the ascent
direction of a gradient and the projection of a perturbation onto the ball, per example (axis 0)."""
from __future__ import annotations

import torch


def per_example_norm(t: torch.Tensor, floor: float) -> torch.Tensor:
    """The l2 norm of each example of ``t`` over all its other axes, shaped to broadcast against ``t``, at least
    ``floor``."""
    return t.reshape(t.shape[0], -1).norm(dim=1).reshape(-1, *([1] * (t.dim() - 1))).clamp(min=floor)


def ascent_direction(g: torch.Tensor, norm: str, floor: float) -> torch.Tensor:
    """The steepest-ascent step of unit ``norm`` for the gradient ``g``: its sign (l_inf) or ``g / ||g||`` (l2)."""
    return g.sign() if norm == "linf" else g / per_example_norm(g, floor)


def project_delta(delta: torch.Tensor, eps, norm: str, floor: float) -> torch.Tensor:
    """``delta`` projected onto the ``norm`` ball of radius ``eps`` (a number, or a tensor that broadcasts against
    ``delta``, one radius per example)."""
    if norm == "linf":
        eps = torch.as_tensor(eps, dtype=delta.dtype)
        return torch.maximum(torch.minimum(delta, eps), -eps)
    return delta * torch.clamp(eps / per_example_norm(delta, floor), max=1.0)
