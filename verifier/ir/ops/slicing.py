"""Operators that pick, repeat or join elements: ``Select`` (Slice, Gather, Split, nearest Resize, edge/reflect
Pad), ``Pad`` (constant mode) and ``Concat`` (of graph values and constants).

All are affine: the interval rule applies the op to both ends (``Select``, ``Concat``: a copy of elements; ``Pad``:
copies and a constant), and the linear rule scatters the coefficients back onto the picked input elements.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from verifier.ir.ops.base import Op, no_constant, sum_except_first


class Select(Op):
    """``y = x[..., idx_1, ..., idx_k, ...]``: along each listed ONNX axis the elements at a constant index list
    (any order, repeats allowed), one axis after the other."""

    kind = "Select"

    def __init__(self, picks: list[tuple[int, torch.Tensor]]):
        self.picks = [(int(a), torch.as_tensor(np.ascontiguousarray(i), dtype=torch.long)) for a, i in picks]

    def to(self, device=None, dtype=None) -> "Select":
        new = Select([])
        new.picks = [(a, i.to(device=device)) for a, i in self.picks]
        return new

    def forward(self, x):
        for axis, idx in self.picks:
            x = x.index_select(axis + 1, idx)  # the batch axis leads
        return x

    def ibp(self, b):
        return self.forward(b[0]), self.forward(b[1])

    def backward(self, A, in_shapes):
        shapes = [tuple(in_shapes[0])]
        for axis, idx in self.picks[:-1]:
            s = list(shapes[-1])
            s[axis] = len(idx)
            shapes.append(tuple(s))
        for (axis, idx), shape in zip(reversed(self.picks), reversed(shapes)):
            z = torch.zeros((A.shape[0], *shape), dtype=A.dtype, device=A.device)
            A = z.index_add(axis + 1, idx, A)
        return [A], no_constant(A)

    def linear_forward(self, fl):
        (Lw, Lb), (Uw, Ub) = fl

        def pick(t, lead):
            for axis, idx in self.picks:
                t = t.index_select(axis + lead, idx)
            return t
        return (pick(Lw, 2), pick(Lb, 1)), (pick(Uw, 2), pick(Ub, 1))

    def describe(self):
        return "Select(" + ", ".join(f"axis {a}: {len(i)}" for a, i in self.picks) + ")"


class Pad(Op):
    """Constant-mode Pad: ``pads`` in ONNX order (all begins, then all ends; negative values crop), ``value``
    the fill."""

    kind = "Pad"

    def __init__(self, pads, value: float = 0.0):
        self.pads = [int(p) for p in pads]
        self.value = float(value)
        r = len(self.pads) // 2
        begin, end = self.pads[:r], self.pads[r:]
        self.fpad = tuple(p for i in reversed(range(r)) for p in (begin[i], end[i]))  # F.pad: last axis first

    def forward(self, x):
        return F.pad(x, self.fpad, value=self.value)

    def ibp(self, b):
        return self.forward(b[0]), self.forward(b[1])

    def backward(self, A, in_shapes):
        A_in = F.pad(A, tuple(-p for p in self.fpad))
        if self.value == 0.0:
            return [A_in], no_constant(A)
        mask = F.pad(torch.ones((1, *in_shapes[0]), dtype=A.dtype, device=A.device), self.fpad)
        return [A_in], self.value * sum_except_first(A * (1 - mask))

    def linear_forward(self, fl):
        (Lw, Lb), (Uw, Ub) = fl
        return ((F.pad(Lw, self.fpad), self.forward(Lb)), (F.pad(Uw, self.fpad), self.forward(Ub)))

    def describe(self):
        return f"Pad{tuple(self.pads)}"


class Concat(Op):
    """Concatenation along an ONNX axis of graph values and constants: ``parts`` lists, in order, either the
    position of a graph input of the node (an int) or a constant tensor (no batch axis)."""

    kind = "Concat"
    _tensor_attrs = ()

    def __init__(self, axis: int, parts: list):
        self.axis = int(axis)
        self.parts = list(parts)
        self.n_inputs = sum(1 for p in self.parts if isinstance(p, int))

    def to(self, device=None, dtype=None) -> "Concat":
        return Concat(self.axis, [p if isinstance(p, int) else p.to(device=device, dtype=dtype) for p in self.parts])

    def _join(self, xs, lead: int = 1):
        B = xs[0].shape[:lead]
        pieces = [xs[p] if isinstance(p, int) else p.to(xs[0].dtype).expand(*B, *p.shape) for p in self.parts]
        return torch.cat(pieces, dim=self.axis + lead)

    def forward(self, *xs):
        return self._join(xs)

    def ibp(self, *bounds):
        return self._join([b[0] for b in bounds]), self._join([b[1] for b in bounds])

    def _sizes(self, in_shapes):
        return [in_shapes[p][self.axis] if isinstance(p, int) else p.shape[self.axis] for p in self.parts]

    def backward(self, A, in_shapes):
        chunks = torch.split(A, self._sizes(in_shapes), dim=self.axis + 1)
        outs: list = [None] * self.n_inputs
        c = no_constant(A)
        for p, ch in zip(self.parts, chunks):
            if isinstance(p, int):
                outs[p] = ch
            else:
                c = c + sum_except_first(ch * p.to(A.dtype))
        return outs, c

    def linear_forward(self, *fns):
        n = fns[0][0][0].shape[1]
        lo_w = [f[0][0] for f in fns]
        up_w = [f[1][0] for f in fns]
        B = lo_w[0].shape[0]

        def wjoin(ws):
            pieces = [ws[p] if isinstance(p, int) else torch.zeros((B, n, *p.shape), dtype=ws[0].dtype,
                                                                    device=ws[0].device) for p in self.parts]
            return torch.cat(pieces, dim=self.axis + 2)
        return ((wjoin(lo_w), self._join([f[0][1] for f in fns])), (wjoin(up_w), self._join([f[1][1] for f in fns])))

    def describe(self):
        return f"Concat(axis {self.axis}, {len(self.parts)} parts)"
