"""Classifiers for training: MLP and CNN builders with optional Lipschitz-bounded layers and activations.

- :class:`BoundedLinear` / :class:`BoundedConv2d`: the weight is used as stored (``none``), divided by its
  spectral norm (``spectral``: the largest singular value of the layer's operator, estimated by power iteration
  on the operator itself (for a convolution, the convolution with its padding and stride, not the reshaped
  kernel), one step per training forward pass, the singular vector kept as a buffer), or orthogonalised by
  Björck's iteration (``orthogonal``, matrices only). ``effective_weight()`` is what the forward pass, the
  bound graph and the ONNX export all use.
- :class:`GroupSort`: sorts each group of ``g`` consecutive features in decreasing order; ``MaxMin`` is
  ``GroupSort(2)`` (``(a, b) -> (max, min)``). Both are 1-Lipschitz and piecewise linear; the bound graph and
  the export write them as compare-and-swap layers of ReLUs (``verifier.training.plan``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from verifier.settings.training import TrainSettings

BJORCK_ITERS = 20
REFRESH_ITERS = 200  # power iterations run once after training, before evaluation and export


class _PowerIteration(nn.Module):
    """The largest singular value of a linear operator ``op`` (a function of the weight and the input) by
    power iteration; the right singular vector ``u`` (input-shaped) is a buffer updated without gradients."""

    def _init_u(self, shape, seed: int):
        g = torch.Generator().manual_seed(seed)
        u = torch.randn((1, *shape), generator=g)
        self.register_buffer("u", u / u.norm())

    @torch.no_grad()
    def _power_step(self, w: torch.Tensor, iters: int = 1) -> None:
        u = self.u
        for _ in range(iters):
            x = u.clone().requires_grad_(True)
            with torch.enable_grad():
                y = self.op(w, x)
                (v,) = torch.autograd.grad(y, x, grad_outputs=y)  # A^T A u
            n = v.norm()
            if not torch.isfinite(n) or n == 0:
                break
            u = v / n
        self.u.copy_(u)

    def sigma(self, w: torch.Tensor) -> torch.Tensor:
        """||op(u)|| for the current unit vector u: a lower estimate of the norm, differentiable in w."""
        if self.training:
            self._power_step(w.detach())
        return self.op(w, self.u).norm().clamp(min=1e-12)


class BoundedLinear(_PowerIteration):
    """``y = x W^T + b`` with ``W`` the raw weight, the spectrally normalised one or its Björck orthogonalisation."""

    def __init__(self, n_in: int, n_out: int, lipschitz: str = "none", seed: int = 0):
        super().__init__()
        ref = nn.Linear(n_in, n_out)  # torch's default initialisation
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone())
        self.lipschitz = lipschitz
        if lipschitz == "spectral":
            self._init_u((n_in,), seed)

    @staticmethod
    def op(w, x):
        return x @ w.T

    def effective_weight(self) -> torch.Tensor:
        if self.lipschitz == "spectral":
            return self.weight / self.sigma(self.weight)
        if self.lipschitz == "orthogonal":
            return bjorck(self.weight)
        return self.weight

    def forward(self, x):
        return F.linear(x, self.effective_weight(), self.bias)


class BoundedConv2d(_PowerIteration):
    """A 2-D convolution whose kernel is optionally divided by the spectral norm of the convolution operator
    on inputs of ``in_shape`` (C, H, W)."""

    def __init__(self, in_shape, c_out: int, kernel: int, stride: int = 1, padding: int = 0,
                 lipschitz: str = "none", seed: int = 0):
        super().__init__()
        ref = nn.Conv2d(in_shape[0], c_out, kernel, stride=stride, padding=padding)
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone())
        self.stride, self.padding = (stride, stride), (padding, padding)
        self.lipschitz = lipschitz
        if lipschitz == "orthogonal":
            raise ValueError("orthogonal convolutions are not supported; use spectral")
        if lipschitz == "spectral":
            self._init_u(tuple(in_shape), seed)

    def op(self, w, x):
        return F.conv2d(x, w, None, self.stride, self.padding)

    def effective_weight(self) -> torch.Tensor:
        if self.lipschitz == "spectral":
            return self.weight / self.sigma(self.weight)
        return self.weight

    def forward(self, x):
        return F.conv2d(x, self.effective_weight(), self.bias, self.stride, self.padding)


def bjorck(w: torch.Tensor, iters: int = BJORCK_ITERS) -> torch.Tensor:
    """Björck–Bowie orthogonalisation (first order): ``W <- 1.5 W - 0.5 W W^T W`` from ``W / ||W||_F`` (all
    singular values in (0, 1], so the iteration converges to the closest matrix with orthonormal rows or
    columns); differentiable."""
    w = w / w.norm().clamp(min=1e-12)
    for _ in range(iters):
        w = 1.5 * w - 0.5 * w @ (w.T @ w)
    return w


class GroupSort(nn.Module):
    """Sort each group of ``group`` consecutive features (last axis) in decreasing order; MaxMin for 2."""

    def __init__(self, group: int = 2):
        super().__init__()
        self.group = int(group)

    def forward(self, x):
        n = x.shape[-1]
        return x.reshape(*x.shape[:-1], n // self.group, self.group).sort(dim=-1, descending=True).values.reshape(
            x.shape)


def MaxMin() -> GroupSort:
    """``(a, b) -> (max(a, b), min(a, b))`` on consecutive pairs: GroupSort with groups of 2."""
    return GroupSort(2)


def _activation(settings: TrainSettings) -> nn.Module:
    return nn.ReLU() if settings.activation == "relu" else GroupSort(settings.groups)


def build_model(settings: TrainSettings, input_shape, n_classes: int) -> nn.Sequential:
    """The classifier of ``settings`` for inputs of ``input_shape`` (flat ``(n,)`` for the MLP, ``(C, H, W)`` for
    the CNN), seeded with ``settings.seed``.

    MLP: ``BoundedLinear`` layers of widths ``hidden`` with the activation between them. CNN (the smoothing
    trainer's architecture): conv 3x3 pad 1 -> activation -> conv 4x4 stride 2 pad 1 -> activation -> flatten ->
    linear."""
    torch.manual_seed(settings.seed)
    lip = settings.lipschitz
    layers: list[nn.Module] = []
    if settings.arch == "mlp":
        prev = int(math.prod(input_shape))
        for k, h in enumerate(settings.hidden):
            layers += [BoundedLinear(prev, int(h), lip, seed=settings.seed + k), _activation(settings)]
            prev = int(h)
        layers.append(BoundedLinear(prev, n_classes, lip, seed=settings.seed + len(settings.hidden)))
        return nn.Sequential(*layers)
    if len(input_shape) != 3:
        raise ValueError(f"--arch cnn needs image inputs (C, H, W), got examples of shape {tuple(input_shape)}")
    c, h, w = (int(s) for s in input_shape)
    c1, c2 = (int(s) for s in settings.hidden)
    h2, w2 = (h + 2 - 4) // 2 + 1, (w + 2 - 4) // 2 + 1
    if h2 < 1 or w2 < 1:
        raise ValueError(f"--arch cnn needs images of at least 2x2, got {h}x{w}")
    return nn.Sequential(
        BoundedConv2d((c, h, w), c1, 3, padding=1, lipschitz=lip, seed=settings.seed), _activation(settings),
        BoundedConv2d((c1, h, w), c2, 4, stride=2, padding=1, lipschitz=lip, seed=settings.seed + 1),
        _activation(settings), nn.Flatten(),
        BoundedLinear(c2 * h2 * w2, n_classes, lip, seed=settings.seed + 2))


@torch.no_grad()
def refresh_normalisation(model: nn.Module, iters: int = REFRESH_ITERS) -> None:
    """Run more power iterations on every spectrally normalised layer (after training, so that the stored
    singular vectors, hence the evaluated and exported weights, are converged)."""
    for m in model.modules():
        if isinstance(m, _PowerIteration) and m.lipschitz == "spectral":
            m._power_step(m.weight.detach(), iters)
