"""Op handlers of the ONNX loader for products of network values and Softmax.

- Mul of two network values: one ``Mul`` node (numpy broadcasting; McCormick bounds).
- Div of two network values: ``x * Reciprocal(y)`` (bounds need ``y``'s interval to exclude 0);
  ``constant / y`` is ``Reciprocal(y)`` scaled (the Add/Sub/Mul/Div handler of ``handlers_affine`` calls here).
- MatMul of two network values ``X (..., m, k) @ Y (..., k, n)``: the sum over ``k`` of the bilinear products,
  ``ReduceSum_k(Mul(X[..., m, k, 1], Y[..., 1, k, n]))``.
- Softmax over one axis (opset 13) or over the flattened axes from ``axis`` on (opsets 1-12): per element,
  ``softmax(x)_i = 1 / sum_j exp(x_j - x_i)``: a ``Linear`` map to the differences, ``exp(min(d, cap))``
  (``CappedExp``: no bound of an exponential overflows; the value moves by less than ``exp(-cap)``, which the
  reciprocal's lower bounds allow for), a ``ReduceSum`` and a ``Reciprocal`` (its divisor is at least 1,
  the term ``j = i``: ``FlooredReciprocal``); no ``x - max`` is needed.
"""
from __future__ import annotations

import math

import numpy as np

from frontends.onnx.context import LoadContext, OnnxNode
from frontends.onnx.registry import handler
from verifier.ir.ops import Linear, Reshape, Transpose
from verifier.ir.ops.bilinear import SOFTMAX_EXP_CAP, CappedExp, FlooredReciprocal, Mul
from verifier.ir.ops.reduce import ReduceSum
from verifier.ir.ops.smooth import Reciprocal


def mul_values(ctx: LoadContext, n: OnnxNode) -> None:
    """Mul(x, y) of two network values (x * x when both are the same value)."""
    x, y = ctx.name_of(n.inputs[0]), ctx.name_of(n.inputs[1])
    ctx.add(n.out, Mul(n.label, square=x == y), [x, y], n.label)


def div_values(ctx: LoadContext, n: OnnxNode) -> None:
    """Div(x, y) of two network values: x * (1 / y)."""
    recip = n.out + "__recip"
    ctx.add(recip, Reciprocal(n.label), [ctx.name_of(n.inputs[1])], n.label)
    ctx.add(n.out, Mul(n.label), [ctx.name_of(n.inputs[0]), recip], n.label)


def reciprocal_of(ctx: LoadContext, n: OnnxNode, x: str) -> str:
    """A ``Reciprocal`` node of the network value ``x`` (for ``constant / x``); its name."""
    recip = n.out + "__recip"
    ctx.add(recip, Reciprocal(n.label), [x], n.label)
    return recip


def matmul_values(ctx: LoadContext, n: OnnxNode) -> None:
    """MatMul(X, Y) of two network values, both of rank 2 or more (leading axes broadcast)."""
    x, y = ctx.name_of(n.inputs[0]), ctx.name_of(n.inputs[1])
    sx, sy = ctx.shapes[x], ctx.shapes[y]
    if len(sx) < 2 or len(sy) < 2:
        raise ctx.error(n.label, f"MatMul of two network values of shapes {list(sx)} and {list(sy)}: 1-D operands "
                        "are not supported")
    if sx[-1] != sy[-2]:
        raise ctx.error(n.label, f"MatMul of shapes {list(sx)} and {list(sy)}: inner dimensions differ")
    ctx.add(n.out + "__x", Reshape((*sx, 1)), [x], n.label)
    ctx.add(n.out + "__y", Reshape((*sy[:-2], 1, *sy[-2:])), [y], n.label)
    ctx.add(n.out + "__prod", Mul(n.label), [n.out + "__x", n.out + "__y"], n.label)
    rank = len(ctx.shapes[n.out + "__prod"])
    ctx.add(n.out, ReduceSum([rank - 2], keepdims=False), [n.out + "__prod"], n.label)


@handler("Softmax")
def softmax(ctx: LoadContext, n: OnnxNode) -> None:
    """Softmax(x) as ``1 / sum_j exp(x_j - x_i)`` along its axis."""
    x, label, out = ctx.name_of(n.inputs[0]), n.label, n.out
    shape = tuple(ctx.shapes[x])
    r = len(shape)
    new = ctx.opset >= 13
    axis = int(n.attrs.get("axis", -1 if new else 1))
    if not -r <= axis < r:
        raise ctx.error(label, f"axis {axis} is out of range for an input of rank {r}")
    axis %= r
    perm = None
    if not new and axis != r - 1:  # opsets 1-12: over the flattened axes axis.. (coerced to 2-D)
        ctx.add(out + "__flat", Reshape((*shape[:axis], math.prod(shape[axis:]))), [x], label)
        x = out + "__flat"
    elif new and axis != r - 1:
        perm = [a for a in range(r) if a != axis] + [axis]
        ctx.add(out + "__last", Transpose(perm), [x], label)
        x = out + "__last"
    lead, m = tuple(ctx.shapes[x][:-1]), ctx.shapes[x][-1]
    w = np.zeros((m, m, m))  # column (i, j): x_j - x_i
    idx = np.arange(m)
    w[idx[None, :], idx[:, None], idx[None, :]] += 1.0
    w[idx[:, None], idx[:, None], idx[None, :]] -= 1.0
    ctx.add(out + "__diff", Linear(ctx.tens(w.reshape(m, m * m)), None), [x], label)
    ctx.add(out + "__diff2", Reshape((*lead, m, m)), [out + "__diff"], label)
    ctx.add(out + "__exp", CappedExp(SOFTMAX_EXP_CAP, label), [out + "__diff2"], label)
    ctx.add(out + "__sum", ReduceSum([len(lead) + 1], keepdims=False), [out + "__exp"], label)
    if perm is None and tuple(ctx.shapes[out + "__sum"]) == shape:
        ctx.add(out, FlooredReciprocal(1.0, label, math.exp(-SOFTMAX_EXP_CAP)), [out + "__sum"], label)
        return
    ctx.add(out + "__soft", FlooredReciprocal(1.0, label, math.exp(-SOFTMAX_EXP_CAP)), [out + "__sum"], label)
    if perm is not None:
        inv = [0] * r
        for k, p in enumerate(perm):
            inv[p] = k
        ctx.add(out, Transpose(inv), [out + "__soft"], label)
    else:
        ctx.add(out, Reshape(shape), [out + "__soft"], label)
