"""Operators that only move values around: Reshape (Flatten, Squeeze, ...) and Transpose."""
from __future__ import annotations

from verifier.ir.ops.base import Op, no_constant


class Reshape(Op):
    kind = "Reshape"

    def __init__(self, shape):
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)

    def ibp(self, b):
        return self.forward(b[0]), self.forward(b[1])

    def backward(self, A, in_shapes):
        return [A.reshape(A.shape[0], *in_shapes[0])], no_constant(A)

    def linear_forward(self, fl):
        (Lw, Lb), (Uw, Ub) = fl
        n = Lw.shape[1]
        B = Lw.shape[0]
        return ((Lw.reshape(B, n, *self.shape), Lb.reshape(B, *self.shape)),
                (Uw.reshape(B, n, *self.shape), Ub.reshape(B, *self.shape)))

    def describe(self):
        return f"Reshape{self.shape}"


class Transpose(Op):
    kind = "Transpose"

    def __init__(self, perm):
        self.perm = tuple(int(p) for p in perm)
        inv = [0] * len(self.perm)
        for i, p in enumerate(self.perm):
            inv[p] = i
        self.inv = tuple(inv)

    def forward(self, x):
        return x.permute(0, *[p + 1 for p in self.perm])

    def ibp(self, b):
        return self.forward(b[0]), self.forward(b[1])

    def backward(self, A, in_shapes):
        return [A.permute(0, *[p + 1 for p in self.inv])], no_constant(A)

    def linear_forward(self, fl):
        (Lw, Lb), (Uw, Ub) = fl
        pw = (0, 1, *[p + 2 for p in self.perm])
        return (Lw.permute(pw), self.forward(Lb)), (Uw.permute(pw), self.forward(Ub))
