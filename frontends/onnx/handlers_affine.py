"""Op handlers of the ONNX loader for the affine operators: Gemm, MatMul, Conv, BatchNormalization, Add/Sub/Mul/Div.

Each takes the network value and constant weights (a product of two network values is refused, as
it is not piecewise linear) and becomes ``Linear``, ``Conv``, ``Scale``, ``AddNodes`` or a
``Transpose``/``Linear`` pair.
"""
from __future__ import annotations

import numpy as np

from frontends.onnx.context import LoadContext, OnnxNode
from frontends.onnx.registry import handler
from verifier.ir.ops import AddNodes, Conv, Linear, Scale, Transpose


@handler("Gemm")
def gemm(ctx: LoadContext, n: OnnxNode) -> None:
    """Gemm(x, constant W[, constant C]): alpha and transB go into the weight, beta into the bias."""
    if n.is_const[0] or not n.is_const[1]:
        raise ctx.error(n.label, "only Gemm(x, constant W) is supported")
    a, x, out = n.attrs, ctx.name_of(n.inputs[0]), n.out
    w = ctx.consts[n.inputs[1]].astype(np.float64)
    if a.get("transB", 0):
        w = w.T
    w = w * a.get("alpha", 1.0)
    if a.get("transA", 0):
        tname = out + "__transA"
        ctx.add(tname, Transpose(list(reversed(range(len(ctx.shapes[x]))))), [x], n.label)
        x = tname
    bias = None
    if n.has_input(2):
        bias = ctx.tens(ctx.consts[n.inputs[2]].astype(np.float64) * a.get("beta", 1.0))
    ctx.add(out, Linear(ctx.tens(w), bias), [x], n.label)


@handler("MatMul")
def matmul(ctx: LoadContext, n: OnnxNode) -> None:
    """MatMul(x, constant 2-D W), or MatMul(constant W, x): a linear map on x's second-to-last axis."""
    ins, out, label = n.inputs, n.out, n.label
    if n.is_const[1] and not n.is_const[0]:
        w = ctx.consts[ins[1]]
        if w.ndim != 2:
            raise ctx.error(label, f"MatMul with a {w.ndim}-D constant is not supported")
        ctx.add(out, Linear(ctx.tens(w), None), [ctx.name_of(ins[0])], label)
    elif n.is_const[0] and not n.is_const[1]:
        w, x = ctx.consts[ins[0]], ctx.name_of(ins[1])
        nx = len(ctx.shapes[x])
        if w.ndim != 2 or nx == 0:
            raise ctx.error(label, "MatMul(constant, x) needs a 2-D constant")
        if nx == 1:
            ctx.add(out, Linear(ctx.tens(w.T), None), [x], label)
        else:
            perm = list(range(nx - 2)) + [nx - 1, nx - 2]
            ctx.add(out + "__T0", Transpose(perm), [x], label)
            ctx.add(out + "__W", Linear(ctx.tens(w.T), None), [out + "__T0"], label)
            ctx.add(out, Transpose(perm), [out + "__W"], label)
    else:
        raise ctx.error(label, "only MatMul(x, constant) is supported")


@handler("Conv")
def conv(ctx: LoadContext, n: OnnxNode) -> None:
    """Conv(x, constant W[, constant b]), 1-D or 2-D, explicit pads."""
    if not all(n.is_const[1:]):
        raise ctx.error(n.label, "Conv weights must be constant")
    a = n.attrs
    w = ctx.consts[n.inputs[1]]
    nd = w.ndim - 2
    if nd not in (1, 2):
        raise ctx.error(n.label, "only 1-D and 2-D convolutions are supported")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ctx.error(n.label, "Conv auto_pad is not supported")
    b = ctx.tens(ctx.consts[n.inputs[2]]) if n.has_input(2) else None
    op = Conv(ctx.tens(w), b, a.get("strides", [1] * nd), a.get("pads", [0] * 2 * nd), a.get("dilations", [1] * nd),
              a.get("group", 1))
    ctx.add(n.out, op, [ctx.name_of(n.inputs[0])], n.label)


@handler("BatchNormalization")
def batch_normalization(ctx: LoadContext, n: OnnxNode) -> None:
    """BatchNormalization (inference) as a per-channel Scale."""
    s, bb, mean, var = (ctx.consts[i].astype(np.float64) for i in n.inputs[1:5])
    k = s / np.sqrt(var + n.attrs.get("epsilon", 1e-5))
    x = ctx.name_of(n.inputs[0])
    bshape = (-1,) + (1,) * (len(ctx.shapes[x]) - 2)
    ctx.add(n.out, Scale(ctx.tens(k.reshape(bshape)), ctx.tens((bb - mean * k).reshape(bshape))), [x], n.label)


@handler("Add", "Sub", "Mul", "Div")
def arithmetic(ctx: LoadContext, n: OnnxNode) -> None:
    """x (op) constant and constant (op) x as a Scale; the sum or difference of two network values as AddNodes."""
    op_type, ins, label = n.op_type, n.inputs, n.label
    if not n.is_const[0] and not n.is_const[1]:
        if op_type in ("Add", "Sub"):
            ctx.add(n.out, AddNodes(1.0, 1.0 if op_type == "Add" else -1.0), [ctx.name_of(ins[0]), ctx.name_of(ins[1])],
                    label)
            return
        raise ctx.error(label, f"{op_type} of two network values is not supported (not piecewise linear)")
    if n.is_const[0]:  # constant (op) x
        c, x = ctx.consts[ins[0]].astype(np.float64), ctx.name_of(ins[1])
        if op_type == "Div":
            raise ctx.error(label, "division by a network value is not supported")
        scale, shift = {"Add": (None, c), "Sub": (-np.ones(1), c), "Mul": (c, None)}[op_type]
    else:
        c, x = ctx.consts[ins[1]].astype(np.float64), ctx.name_of(ins[0])
        if op_type == "Div" and np.any(c == 0):
            raise ctx.error(label, "division by a constant that contains 0")
        scale, shift = {"Add": (None, c), "Sub": (None, -c), "Mul": (c, None),
                        "Div": (1.0 / np.where(c == 0, 1, c), None)}[op_type]
    xs = ctx.shapes[x]
    ctx.add(n.out, Scale(ctx.scale_const(scale, xs, label) if scale is not None else None,
                         ctx.scale_const(shift, xs, label) if shift is not None else None), [x], label)
