"""Op handlers of the ONNX loader for the piecewise-linear element-wise operators: LeakyRelu, Abs, Sign, Floor, Clip,
and Max / Min of a network value and constants (a ``Clip``) or of two network values.

``max(a, b) = a + relu(b - a)`` and ``min(a, b) = a - relu(a - b)``: Max / Min of two network values become an
``AddNodes`` / ``ReLU`` / ``AddNodes`` chain, exact, so that every bound method, the MILP encoding and ReLU
branch and bound treat them as they treat ReLU.
"""
from __future__ import annotations

import numpy as np

from frontends.onnx.context import LoadContext, OnnxNode
from frontends.onnx.registry import handler
from verifier.ir.ops import AddNodes, ReLU
from verifier.ir.ops.piecewise import Abs, Clip, Floor, LeakyRelu, Sign


@handler("LeakyRelu")
def leaky_relu(ctx: LoadContext, n: OnnxNode) -> None:
    ctx.add(n.out, LeakyRelu(n.attrs.get("alpha", 0.01)), [ctx.name_of(n.inputs[0])], n.label)


ATTRIBUTELESS = {"Abs": Abs, "Sign": Sign, "Floor": Floor}  # element-wise ops without attributes


@handler(*ATTRIBUTELESS)
def abs_sign_floor(ctx: LoadContext, n: OnnxNode) -> None:
    ctx.add(n.out, ATTRIBUTELESS[n.op_type](), [ctx.name_of(n.inputs[0])], n.label)


def _bound(ctx: LoadContext, n: OnnxNode, k: int, x_shape):
    if not n.has_input(k):
        return None
    if not n.is_const[k]:
        raise ctx.error(n.label, "Clip bounds must be constant")
    return np.asarray(ctx.consts[n.inputs[k]], dtype=np.float64)


def _clip(ctx: LoadContext, n: OnnxNode, x: str, lo, hi) -> None:
    """``out = min(max(x, lo), hi)``; where ``lo > hi`` that is ``hi``, as with ``lo`` lowered to ``hi``."""
    xs = ctx.shapes[x]
    if lo is not None and hi is not None:
        lo = np.minimum(lo, hi)
    if lo is None and hi is None:
        ctx.alias[n.out] = x
        return
    ctx.add(n.out, Clip(ctx.scale_const(lo, xs, n.label) if lo is not None else None,
                        ctx.scale_const(hi, xs, n.label) if hi is not None else None), [x], n.label)


@handler("Clip")
def clip(ctx: LoadContext, n: OnnxNode) -> None:
    """Clip with constant bounds: inputs from opset 11, the ``min`` / ``max`` attributes before."""
    x = ctx.name_of(n.inputs[0])
    if len(n.inputs) > 1:
        lo, hi = _bound(ctx, n, 1, ctx.shapes[x]), _bound(ctx, n, 2, ctx.shapes[x])
    else:
        lo, hi = (np.float64(n.attrs[k]) if k in n.attrs else None for k in ("min", "max"))
    _clip(ctx, n, x, lo, hi)


@handler("Max", "Min")
def max_min(ctx: LoadContext, n: OnnxNode) -> None:
    """Max / Min of any number of inputs: the constants folded into one, then a chain of two-input steps."""
    ins = [i for i in n.inputs if i]
    red = np.maximum if n.op_type == "Max" else np.minimum
    consts = [np.asarray(ctx.consts[i], dtype=np.float64) for i in ins if i in ctx.consts]
    var = [ctx.name_of(i) for i in ins if i not in ctx.consts]
    c = None
    for v in consts:
        c = v if c is None else red(c, v)
    cur = var[0]
    for k, other in enumerate(var[1:]):
        if ctx.shapes[other] != ctx.shapes[cur]:
            raise ctx.error(n.label, f"{n.op_type} of network values of shapes {ctx.shapes[cur]} and "
                            f"{ctx.shapes[other]} (broadcasting) is not supported")
        last = k == len(var) - 2 and c is None
        out = n.out if last else f"{n.out}__{n.op_type.lower()}{k}"
        # max(a, b) = a + relu(b - a); min(a, b) = a - relu(a - b)
        d, r = out + "__diff", out + "__relu"
        if n.op_type == "Max":
            ctx.add(d, AddNodes(1.0, -1.0), [other, cur], n.label)
            ctx.add(r, ReLU(), [d], n.label)
            ctx.add(out, AddNodes(1.0, 1.0), [cur, r], n.label)
        else:
            ctx.add(d, AddNodes(1.0, -1.0), [cur, other], n.label)
            ctx.add(r, ReLU(), [d], n.label)
            ctx.add(out, AddNodes(1.0, -1.0), [cur, r], n.label)
        cur = out
    if c is not None:
        _clip(ctx, n, cur, c if n.op_type == "Max" else None, c if n.op_type == "Min" else None)
    elif cur != n.out:
        ctx.alias[n.out] = cur
