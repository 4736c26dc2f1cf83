"""Transposed convolution (ONNX ConvTranspose), 1-D to 3-D, with pads and output padding."""
from __future__ import annotations

import torch.nn.functional as F

from verifier.ir.ops.base import Op, channel_bias_constant, vjp_linear

_FNS = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


class ConvTranspose(Op):
    """``y = conv_transpose(x, W) + b`` on ``(B, N, C, *spatial)``; ``pads`` (all begins, then all ends) crop the
    full output and ``output_padding`` adds rows at the end of each spatial axis (before the crop)."""

    kind = "ConvTranspose"
    _tensor_attrs = ("weight", "bias")

    def __init__(self, weight, bias, strides, pads, dilations, group, output_padding):
        self.weight = weight  # (C_in, C_out / group, *k)
        self.bias = bias
        self.nd = weight.dim() - 2
        self.strides = tuple(int(s) for s in strides)
        self.dilations = tuple(int(d) for d in dilations)
        self.group = int(group)
        self.begin = tuple(int(p) for p in pads[: self.nd])
        self.end = tuple(int(p) for p in pads[self.nd:])
        self.output_padding = tuple(int(p) for p in output_padding)

    def _apply(self, x, weight, bias):
        nd = self.nd
        lead = x.shape[: x.dim() - nd - 1]
        x2 = x.reshape(-1, *x.shape[x.dim() - nd - 1:])
        y = _FNS[nd](x2, weight, None, self.strides, 0, 0, self.group, self.dilations)
        extra = tuple(p for i in reversed(range(nd)) for p in (0, self.output_padding[i]))
        if any(extra):
            y = F.pad(y, extra)
        idx = [slice(None), slice(None)] + [slice(self.begin[i], y.shape[2 + i] - self.end[i]) for i in range(nd)]
        y = y[tuple(idx)]
        if bias is not None:
            y = y + bias.reshape([1, -1] + [1] * nd)
        return y.reshape(*lead, *y.shape[1:])

    def forward(self, x):
        return self._apply(x, self.weight, self.bias)

    def ibp(self, b):
        lo, hi = b
        c = self._apply((hi + lo) / 2, self.weight, self.bias)
        r = self._apply((hi - lo) / 2, self.weight.abs(), None)
        return c - r, c + r

    def backward(self, A, in_shapes):
        A_in = vjp_linear(lambda x: self._apply(x, self.weight, None), A, in_shapes[0])
        return [A_in], channel_bias_constant(A, self.bias, self.nd)

    def describe(self):
        return f"ConvTranspose({self.weight.shape[0]}->{self.weight.shape[1] * self.group}, " \
               f"k={tuple(self.weight.shape[2:])})"
