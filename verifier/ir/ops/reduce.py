"""Sums over axes: ``ReduceSum`` (ReduceSum, and ReduceMean as a sum times ``1 / count``)."""
from __future__ import annotations

import torch

from verifier.ir.ops.base import Op, no_constant


class ReduceSum(Op):
    """``y = scale * sum of x over the ONNX axes ``axes``` (kept as size-1 axes with ``keepdims``)."""

    kind = "ReduceSum"

    def __init__(self, axes, keepdims: bool, scale: float = 1.0):
        self.axes = tuple(sorted(int(a) for a in axes))
        self.keepdims = bool(keepdims)
        self.scale = float(scale)

    def forward(self, x):
        if not self.axes:
            return x * self.scale if self.scale != 1.0 else x
        y = x.sum(dim=tuple(a + 1 for a in self.axes), keepdim=self.keepdims)
        return y * self.scale if self.scale != 1.0 else y

    def ibp(self, b):
        lo, hi = self.forward(b[0]), self.forward(b[1])
        return (lo, hi) if self.scale >= 0 else (hi, lo)

    def backward(self, A, in_shapes):
        if not self.keepdims:
            for a in self.axes:
                A = A.unsqueeze(a + 1)
        A_in = A.expand(A.shape[0], *in_shapes[0])
        if self.scale != 1.0:
            A_in = A_in * self.scale
        return [A_in], no_constant(A)

    def describe(self):
        return f"ReduceSum(axes {self.axes}{', x%g' % self.scale if self.scale != 1.0 else ''})"


class AxisMatrix(Op):
    """``y = x`` multiplied along each listed ONNX axis by a constant matrix ``M`` (``(out, in)``): a separable
    linear map, such as Resize/Upsample (nearest, linear or cubic with constant scales)."""

    kind = "AxisMatrix"

    def __init__(self, mats: list[tuple[int, torch.Tensor]]):
        self.mats = [(int(a), m) for a, m in mats]

    def to(self, device=None, dtype=None) -> "AxisMatrix":
        return AxisMatrix([(a, m.to(device=device, dtype=dtype)) for a, m in self.mats])

    def _apply(self, x, mats, lead: int = 1):
        for axis, m in mats:
            x = torch.movedim(torch.movedim(x, axis + lead, -1) @ m.T.to(x.dtype), -1, axis + lead)
        return x

    def forward(self, x):
        return self._apply(x, self.mats)

    def ibp(self, b):
        lo, hi = b
        c = self._apply((lo + hi) / 2, self.mats)
        r = self._apply((hi - lo) / 2, [(a, m.abs()) for a, m in self.mats])
        return c - r, c + r

    def backward(self, A, in_shapes):
        for axis, m in reversed(self.mats):
            A = torch.movedim(torch.movedim(A, axis + 1, -1) @ m.to(A.dtype), -1, axis + 1)
        return [A], no_constant(A)

    def describe(self):
        return "AxisMatrix(" + ", ".join(f"axis {a}: {m.shape[1]}->{m.shape[0]}" for a, m in self.mats) + ")"
