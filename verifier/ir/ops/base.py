"""The operator interface: every node of the layer graph holds one ``Op``.

Tensors flowing through the graph carry a leading batch axis in front of the
node's own (ONNX) shape: a node of ONNX shape ``S`` holds ``(B, *S)``.

Each operator knows
- ``forward(*xs)``: concrete batched execution;
- ``ibp(*bounds)``: interval bounds, each bound a ``(lo, hi)`` pair of batched tensors;
- for affine operators (``affine = True``) ``backward(A)``: given linear
  coefficients ``A`` of shape ``(N, *out_shape)`` on the op's output, return the
  coefficients on each input (``(N, *in_shape)``) and the constant term
  ``(N,)`` that the op's bias adds, i.e. ``A . f(x) = sum_i A_i . x_i + c``;
- for element-wise nonlinear operators (``affine = False``) ``relax(lo, hi, alpha)``:
  sound linear lower and upper lines ``a_l x + b_l <= f(x) <= a_u x + b_u`` on ``[lo, hi]``
  (``b_l`` may be None, meaning 0).
"""
from __future__ import annotations

import copy

import torch


class Op:
    kind: str = "op"
    affine: bool = True
    n_inputs: int = 1
    # nonlinear ops: whether the upper line's constant ``b_u`` from ``relax`` is never negative
    # (lets the CROWN pass reuse its constant sum as the rounding-allowance sum)
    upper_bias_nonneg: bool = False

    # names of tensor attributes moved by ``to``
    _tensor_attrs: tuple[str, ...] = ()

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def ibp(self, *bounds: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f"{self.kind}: no interval rule")

    def backward(self, A: torch.Tensor, in_shapes: list[tuple[int, ...]]) -> tuple[list[torch.Tensor], torch.Tensor]:
        raise NotImplementedError(f"{self.kind}: no linear rule")

    def linear_forward(self, *fns):
        raise NotImplementedError(f"{self.kind}: no forward linear rule")

    def relax_forward(self, lo, hi, Lw, Lb, Uw, Ub):
        raise NotImplementedError(f"{self.kind}: no forward linear relaxation")

    def relax(self, lo: torch.Tensor, hi: torch.Tensor, alpha: torch.Tensor | None = None):
        raise NotImplementedError(f"{self.kind}: no linear relaxation")

    def to(self, device=None, dtype=None) -> "Op":
        new = copy.copy(self)
        for name in self._tensor_attrs:
            t = getattr(self, name)
            if t is not None:
                setattr(new, name, t.to(device=device, dtype=dtype if t.is_floating_point() else None))
        return new

    def describe(self) -> str:
        return self.kind


def sum_except_first(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).sum(dim=1)


def no_constant(A: torch.Tensor) -> torch.Tensor:
    """The ``(N,)`` constant term of an affine op without a bias: zeros."""
    return torch.zeros(A.shape[0], dtype=A.dtype, device=A.device)


def channel_bias_constant(A: torch.Tensor, bias: torch.Tensor | None, nd: int) -> torch.Tensor:
    """The ``(N,)`` constant ``A . b`` of a per-channel ``bias`` (None: zeros) on an output ``(N, ..., C, *spatial)``
    with ``nd`` spatial axes (Conv, ConvTranspose)."""
    if bias is None:
        return no_constant(A)
    shape = [1] * (A.dim() - nd - 1) + [-1] + [1] * nd
    return sum_except_first(A * bias.reshape(shape))


def vjp_linear(fn, A: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
    """Coefficients on the input of the linear map ``fn`` (bias excluded): ``A o J``.

    Differentiable in ``A`` when ``A`` is part of a graph (slope optimisation backpropagates
    through the backward pass), hence ``create_graph``.
    """
    keep = torch.is_grad_enabled() and A.requires_grad
    x = torch.zeros((A.shape[0], *in_shape), dtype=A.dtype, device=A.device, requires_grad=True)
    with torch.enable_grad():
        y = fn(x)
        (g,) = torch.autograd.grad(y, x, grad_outputs=A, create_graph=keep)
    return g
