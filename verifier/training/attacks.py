"""Untargeted FGSM and PGD on a torch classifier's cross-entropy, in l_inf or l2 balls clipped to the data's
value range: the inner maximisation of adversarial training and the PGD accuracy of the training log.

(``verifier.attack.pgd`` searches one spec's input region on the layer graph for a validated counterexample;
training needs batched ascent of the loss on the torch model, with l2 balls, hence this module.)"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from verifier.attack.steps import ascent_direction, per_example_norm, project_delta

_FLOOR = 1e-12  # smallest norm divided by


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """``delta`` projected onto the ``norm`` ball of radius ``eps`` (per example)."""
    return project_delta(delta, eps, norm, _FLOOR)


def random_start(x: torch.Tensor, eps: float, norm: str, gen: torch.Generator) -> torch.Tensor:
    if norm == "linf":
        return (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    d = torch.randn(x.shape, generator=gen)
    r = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), generator=gen)
    return d / per_example_norm(d, _FLOOR) * eps * r


def perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str, steps: int,
            step_size: float, domain: tuple[float, float], gen: torch.Generator, rand_init: bool = True):
    """Adversarial inputs: ``steps`` signed-gradient (l_inf) or normalised-gradient (l2) ascent steps of the
    cross-entropy from a random start in the ball, each projected onto the ball and the domain. The model is
    run in eval mode (its normalisation layers do not update) and left in the mode it had."""
    if eps <= 0:
        return x
    was_training = model.training
    model.eval()
    lo, hi = domain
    delta = random_start(x, eps, norm, gen) if rand_init else torch.zeros_like(x)
    delta = (x + delta).clamp(lo, hi) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(x + delta), y)
            (g,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = project(delta + step_size * ascent_direction(g, norm, _FLOOR), eps, norm)
            delta = (x + delta).clamp(lo, hi) - x
    model.train(was_training)
    return (x + delta).detach()


def fgsm(model, x, y, eps, norm, domain, gen):
    """FGSM with a random start and step 1.25 eps (Wong et al.'s fast adversarial training)."""
    return perturb(model, x, y, eps, norm, 1, 1.25 * eps, domain, gen)


def pgd(model, x, y, eps, norm, steps, domain, gen):
    """PGD with a random start, ``steps`` steps of 2.5 eps / steps."""
    return perturb(model, x, y, eps, norm, steps, 2.5 * eps / steps, domain, gen)
