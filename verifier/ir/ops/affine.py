"""Affine operators: matrix products, convolutions, element-wise scale/shift, pooling by average."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from verifier.ir.ops.base import Op, channel_bias_constant, no_constant, sum_except_first, vjp_linear


def _ibp_affine(op: Op, lo: torch.Tensor, hi: torch.Tensor, abs_linear):
    mid = (hi + lo) / 2
    rad = (hi - lo) / 2
    c = op.forward(mid)
    r = abs_linear(rad)
    return c - r, c + r


class Linear(Op):
    """``y = x @ W + b`` on the last axis (ONNX Gemm and MatMul with a constant right operand)."""

    kind = "Linear"
    _tensor_attrs = ("weight", "bias")

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        self.weight = weight  # (K, N)
        self.bias = bias  # broadcastable to the output shape (without batch), or None

    def forward(self, x):
        y = x @ self.weight
        return y if self.bias is None else y + self.bias

    def ibp(self, b):
        lo, hi = b
        w = self.weight.abs()
        return _ibp_affine(self, lo, hi, lambda r: r @ w)

    def backward(self, A, in_shapes):
        A_in = A @ self.weight.T
        if self.bias is None:
            c = no_constant(A)
        else:  # sum of A * bias over the node's axes, as one matrix-vector product
            c = A.reshape(A.shape[0], -1) @ self.bias.expand(A.shape[1:]).reshape(-1)
        return [A_in], c

    def linear_forward(self, fl):
        (Lw, Lb), (Uw, Ub) = fl
        Wp, Wn = self.weight.clamp(min=0), self.weight.clamp(max=0)
        b = 0 if self.bias is None else self.bias
        return ((Lw @ Wp + Uw @ Wn, Lb @ Wp + Ub @ Wn + b), (Uw @ Wp + Lw @ Wn, Ub @ Wp + Lb @ Wn + b))

    def describe(self):
        return f"Linear({self.weight.shape[0]}->{self.weight.shape[1]})"


class Conv(Op):
    """2-D (or 1-D) convolution on ``(B, N, C, H, W)``: the ONNX batch axis ``N`` is folded into ``B``."""

    kind = "Conv"
    _tensor_attrs = ("weight", "bias")

    def __init__(self, weight, bias, strides, pads, dilations, group):
        self.weight = weight
        self.bias = bias
        self.strides = tuple(strides)
        self.dilations = tuple(dilations)
        self.group = int(group)
        nd = weight.dim() - 2
        begin, end = list(pads[:nd]), list(pads[nd:])
        self.symmetric = begin == end
        self.pads = tuple(begin)
        # F.pad order: last dim first, (left, right) pairs
        self.fpad = tuple(p for i in reversed(range(nd)) for p in (begin[i], end[i]))
        self.nd = nd

    def _conv(self, x, bias):
        lead = x.shape[: x.dim() - self.nd - 1]
        x2 = x.reshape(-1, *x.shape[x.dim() - self.nd - 1:])
        fn = F.conv2d if self.nd == 2 else F.conv1d
        if self.symmetric:
            y = fn(x2, self.weight, bias, self.strides, self.pads, self.dilations, self.group)
        else:
            y = fn(F.pad(x2, self.fpad), self.weight, bias, self.strides, 0, self.dilations, self.group)
        return y.reshape(*lead, *y.shape[1:])

    def forward(self, x):
        return self._conv(x, self.bias)

    def ibp(self, b):
        lo, hi = b
        mid, rad = (hi + lo) / 2, (hi - lo) / 2
        c = self._conv(mid, self.bias)
        wabs = self.weight.abs()
        saved, self.weight = self.weight, wabs
        try:
            r = self._conv(rad, None)
        finally:
            self.weight = saved
        return c - r, c + r

    def backward(self, A, in_shapes):
        A_in = self.transpose(A, in_shapes[0])
        return [A_in], channel_bias_constant(A, self.bias, self.nd)

    def transpose(self, A, in_shape):
        """``A o J`` of the convolution (bias excluded) by one transposed convolution: coefficients on
        the padded input, cropped to the input. Differentiable in ``A`` like any torch op."""
        nd = self.nd
        lead = A.shape[: A.dim() - nd - 1]
        A2 = A.reshape(-1, *A.shape[A.dim() - nd - 1:])
        in_sp = in_shape[-nd:]
        begin, end = self.fpad[::2][::-1], self.fpad[1::2][::-1]  # per spatial dim, first to last
        k = self.weight.shape[2:]
        out_pad = []
        for i in range(nd):
            padded = in_sp[i] + begin[i] + end[i]
            reach = (A2.shape[2 + i] - 1) * self.strides[i] + self.dilations[i] * (k[i] - 1) + 1
            out_pad.append(padded - reach)
        fn = F.conv_transpose2d if nd == 2 else F.conv_transpose1d
        if all(0 <= op < max(s, d) for op, s, d in zip(out_pad, self.strides, self.dilations)):
            g = fn(A2, self.weight, None, self.strides, 0, tuple(out_pad), self.group, self.dilations)
        else:  # output padding out of range for conv_transpose: fall back to the vector-Jacobian product
            return vjp_linear(lambda x: self._conv(x, None), A, in_shape)
        idx = [slice(None), slice(None)] + [slice(begin[i], begin[i] + in_sp[i]) for i in range(nd)]
        g = g[tuple(idx)]
        return g.reshape(*lead, *g.shape[1:])

    def linear_forward(self, fl):
        (Lw, Lb), (Uw, Ub) = fl
        W = self.weight
        try:
            self.weight = W.clamp(min=0)
            lwp, lbp, uwp, ubp = (self._conv(t, None) for t in (Lw, Lb, Uw, Ub))
            self.weight = W.clamp(max=0)
            lwn, lbn, uwn, ubn = (self._conv(t, None) for t in (Lw, Lb, Uw, Ub))
        finally:
            self.weight = W
        shape = [1] * (Lb.dim() - self.nd - 1) + [-1] + [1] * self.nd
        b = 0 if self.bias is None else self.bias.reshape(shape)
        return (lwp + uwn, lbp + ubn + b), (uwp + lwn, ubp + lbn + b)

    def describe(self):
        return f"Conv({self.weight.shape[1] * self.group}->{self.weight.shape[0]}, k={tuple(self.weight.shape[2:])})"


class Scale(Op):
    """Element-wise ``y = x * s + t`` with constants broadcast to the input's shape.

    Covers Add/Sub/Mul/Div by constants (input normalisation) and BatchNormalization.
    """

    kind = "Scale"
    _tensor_attrs = ("scale", "shift")

    def __init__(self, scale: torch.Tensor | None, shift: torch.Tensor | None):
        self.scale = scale
        self.shift = shift

    def forward(self, x):
        if self.scale is not None:
            x = x * self.scale
        if self.shift is not None:
            x = x + self.shift
        return x

    def ibp(self, b):
        lo, hi = b
        if self.scale is not None:
            a, c = lo * self.scale, hi * self.scale
            lo, hi = torch.minimum(a, c), torch.maximum(a, c)
        if self.shift is not None:
            lo, hi = lo + self.shift, hi + self.shift
        return lo, hi

    def backward(self, A, in_shapes):
        A_in = A * self.scale if self.scale is not None else A
        if A_in.shape[1:] != tuple(in_shapes[0]):
            A_in = A_in.expand(A.shape[0], *in_shapes[0])
        if self.shift is None:
            c = no_constant(A)
        else:
            c = sum_except_first(A * self.shift)
        return [A_in], c

    def linear_forward(self, fl):
        (Lw, Lb), (Uw, Ub) = fl
        if self.scale is not None:
            sp, sn = self.scale.clamp(min=0), self.scale.clamp(max=0)
            Lw, Lb, Uw, Ub = Lw * sp + Uw * sn, Lb * sp + Ub * sn, Uw * sp + Lw * sn, Ub * sp + Lb * sn
        if self.shift is not None:
            Lb, Ub = Lb + self.shift, Ub + self.shift
        return (Lw, Lb), (Uw, Ub)


class AveragePool(Op):
    kind = "AveragePool"

    def __init__(self, kernel, strides, pads, count_include_pad: bool, ceil_mode: bool = False):
        self.kernel = tuple(kernel)
        self.strides = tuple(strides)
        nd = len(self.kernel)
        self.pads = tuple(pads[:nd])
        self.count_include_pad = bool(count_include_pad)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x):
        lead = x.shape[:-3]
        y = F.avg_pool2d(x.reshape(-1, *x.shape[-3:]), self.kernel, self.strides, self.pads,
                         ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)
        return y.reshape(*lead, *y.shape[1:])

    def ibp(self, b):
        return self.forward(b[0]), self.forward(b[1])

    def backward(self, A, in_shapes):
        A_in = vjp_linear(self.forward, A, in_shapes[0])
        return [A_in], no_constant(A)


class AddNodes(Op):
    """``y = s0 * x0 + s1 * x1`` for two graph nodes (residual Add, node-minus-node Sub)."""

    kind = "Add"
    n_inputs = 2

    def __init__(self, sign0: float = 1.0, sign1: float = 1.0):
        self.s0, self.s1 = sign0, sign1

    def forward(self, a, b):
        return self.s0 * a + self.s1 * b

    def ibp(self, ba, bb):
        def part(s, b):
            return (s * b[0], s * b[1]) if s > 0 else (s * b[1], s * b[0])

        (la, ha), (lb, hb) = part(self.s0, ba), part(self.s1, bb)
        return la + lb, ha + hb

    def backward(self, A, in_shapes):
        outs = []
        for s, shp in ((self.s0, in_shapes[0]), (self.s1, in_shapes[1])):
            a = s * A
            if a.shape[1:] != tuple(shp):  # input was broadcast: sum the broadcast axes back
                a = _unbroadcast(a, shp)
            outs.append(a)
        return outs, no_constant(A)

    def linear_forward(self, fa, fb):
        def part(s, f):
            (Lw, Lb), (Uw, Ub) = f
            return ((s * Lw, s * Lb), (s * Uw, s * Ub)) if s > 0 else ((s * Uw, s * Ub), (s * Lw, s * Lb))

        (la, ua), (lb, ub) = part(self.s0, fa), part(self.s1, fb)
        return (la[0] + lb[0], la[1] + lb[1]), (ua[0] + ub[0], ua[1] + ub[1])


def _unbroadcast(a: torch.Tensor, shape) -> torch.Tensor:
    shape = tuple(shape)
    extra = a.dim() - 1 - len(shape)
    if extra > 0:
        a = a.sum(dim=tuple(range(1, 1 + extra)))
    dims = tuple(i + 1 for i, s in enumerate(shape) if s == 1 and a.shape[i + 1] != 1)
    if dims:
        a = a.sum(dim=dims, keepdim=True)
    return a
