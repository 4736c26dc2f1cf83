"""Op handlers of the ONNX loader for the affine operators: Gemm, MatMul, Conv (explicit pads or auto_pad),
ConvTranspose, BatchNormalization, Add/Sub/Mul/Div.

Each takes the network value and constant weights and becomes ``Linear``, ``Conv``, ``Scale``, ``AddNodes`` or a
``Transpose``/``Linear`` pair; products and quotients of two network values (Mul, Div, MatMul) and
``constant / x`` go to ``handlers_bilinear``.
"""
from __future__ import annotations

import numpy as np

from frontends.onnx.context import LoadContext, OnnxNode
from frontends.onnx.handlers_bilinear import div_values, matmul_values, mul_values, reciprocal_of
from frontends.onnx.registry import handler
from verifier.ir.ops import AddNodes, Conv, Linear, Reshape, Scale, Transpose
from verifier.ir.ops.conv_transpose import ConvTranspose
from verifier.ir.ops.slicing import Select


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
        w, x = ctx.consts[ins[1]], ctx.name_of(ins[0])
        if w.ndim == 1 and ctx.shapes[x]:  # numpy's rule: a vector operand loses its axis in the result
            ctx.add(out + "__vec", Linear(ctx.tens(w.reshape(-1, 1)), None), [x], label)
            ctx.add(out, Reshape(ctx.shapes[out + "__vec"][:-1]), [out + "__vec"], label)
            return
        if w.ndim != 2:
            raise ctx.error(label, f"MatMul with a {w.ndim}-D constant is not supported")
        ctx.add(out, Linear(ctx.tens(w), None), [x], label)
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
        matmul_values(ctx, n)


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
    x = ctx.name_of(n.inputs[0])
    strides, dilations = a.get("strides", [1] * nd), a.get("dilations", [1] * nd)
    pads = _auto_pads(ctx, n, ctx.shapes[x][-nd:], w.shape[2:], strides, dilations)
    b = ctx.tens(ctx.consts[n.inputs[2]]) if n.has_input(2) else None
    op = Conv(ctx.tens(w), b, strides, pads, dilations, a.get("group", 1))
    ctx.add(n.out, op, [x], n.label)


def _auto_pad(n: OnnxNode) -> str:
    p = n.attrs.get("auto_pad", b"NOTSET")
    return p.decode() if isinstance(p, bytes) else str(p)


def _auto_pads(ctx: LoadContext, n: OnnxNode, spatial, kernel, strides, dilations) -> list[int]:
    """The explicit pads of a Conv: ``pads`` (NOTSET), zeros (VALID) or the SAME_UPPER / SAME_LOWER pads that
    make the output ``ceil(in / stride)`` long (the odd one at the end / the beginning)."""
    mode = _auto_pad(n)
    nd = len(kernel)
    if mode == "NOTSET":
        return list(n.attrs.get("pads", [0] * 2 * nd))
    if mode == "VALID":
        return [0] * 2 * nd
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.error(n.label, f"unknown auto_pad {mode!r}")
    begin, end = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else big)
        end.append(big if mode == "SAME_UPPER" else small)
    return begin + end


@handler("ConvTranspose")
def conv_transpose(ctx: LoadContext, n: OnnxNode) -> None:
    """ConvTranspose(x, constant W[, constant b]), 1-D to 3-D: explicit pads and output_padding, or the pads that
    ``output_shape`` / ``auto_pad`` imply."""
    if not all(n.is_const[1:]):
        raise ctx.error(n.label, "ConvTranspose weights must be constant")
    a = n.attrs
    w = ctx.consts[n.inputs[1]]
    nd = w.ndim - 2
    if nd not in (1, 2, 3):
        raise ctx.error(n.label, "only 1-D to 3-D transposed convolutions are supported")
    x = ctx.name_of(n.inputs[0])
    spatial = ctx.shapes[x][-nd:]
    strides, dilations = list(a.get("strides", [1] * nd)), list(a.get("dilations", [1] * nd))
    out_pad = list(a.get("output_padding", [0] * nd))
    k = w.shape[2:]
    full = [s * (i - 1) + op + (kk - 1) * d + 1 for i, s, op, kk, d in zip(spatial, strides, out_pad, k, dilations)]
    mode = _auto_pad(n)
    if "output_shape" in a or mode in ("SAME_UPPER", "SAME_LOWER"):
        want = list(a["output_shape"])[-nd:] if "output_shape" in a else [i * s for i, s in zip(spatial, strides)]
        total = [f - o for f, o in zip(full, want)]
        if min(total) < 0:
            raise ctx.error(n.label, f"output_shape {want} is larger than the full output {full}")
        if mode == "SAME_UPPER":  # the odd one at the end; otherwise (SAME_LOWER, NOTSET) at the beginning
            pads = [t // 2 for t in total] + [t - t // 2 for t in total]
        else:
            pads = [t - t // 2 for t in total] + [t // 2 for t in total]
    elif mode == "VALID":
        pads = [0] * 2 * nd
    elif mode == "NOTSET":
        pads = list(a.get("pads", [0] * 2 * nd))
    else:
        raise ctx.error(n.label, f"unknown auto_pad {mode!r}")
    b = ctx.tens(ctx.consts[n.inputs[2]]) if n.has_input(2) else None
    op = ConvTranspose(ctx.tens(w), b, strides, pads, dilations, a.get("group", 1), out_pad)
    ctx.add(n.out, op, [x], n.label)


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
    """x (op) constant and constant (op) x as a Scale (``c / x`` after a Reciprocal); the sum or difference of two
    network values as AddNodes, their product or quotient by ``handlers_bilinear``."""
    op_type, ins, label = n.op_type, n.inputs, n.label
    if not n.is_const[0] and not n.is_const[1]:
        if op_type in ("Add", "Sub"):
            ctx.add(n.out, AddNodes(1.0, 1.0 if op_type == "Add" else -1.0), [ctx.name_of(ins[0]), ctx.name_of(ins[1])],
                    label)
            return
        (mul_values if op_type == "Mul" else div_values)(ctx, n)
        return
    if n.is_const[0]:  # constant (op) x
        c, x = ctx.consts[ins[0]].astype(np.float64), ctx.name_of(ins[1])
        if op_type == "Div":  # c / x = c * (1 / x)
            x = reciprocal_of(ctx, n, x)
        scale, shift = {"Add": (None, c), "Sub": (-np.ones(1), c), "Mul": (c, None), "Div": (c, None)}[op_type]
    else:
        c, x = ctx.consts[ins[1]].astype(np.float64), ctx.name_of(ins[0])
        if op_type == "Div" and np.any(c == 0):
            raise ctx.error(label, "division by a constant that contains 0")
        scale, shift = {"Add": (None, c), "Sub": (None, -c), "Mul": (c, None),
                        "Div": (1.0 / np.where(c == 0, 1, c), None)}[op_type]
    x = _broadcast_to(ctx, x, [v for v in (scale, shift) if v is not None], n.out, label)
    xs = ctx.shapes[x]
    ctx.add(n.out, Scale(ctx.scale_const(scale, xs, label) if scale is not None else None,
                         ctx.scale_const(shift, xs, label) if shift is not None else None), [x], label)


def _broadcast_to(ctx: LoadContext, x: str, consts: list, out: str, label: str) -> str:
    """``x`` broadcast to the shape it has with the constants ``consts`` of an elementwise op: a Reshape that adds
    the leading axes, then a Select that repeats the size-1 axes (no node where ``x`` keeps its shape)."""
    xs = tuple(ctx.shapes[x])
    try:
        target = np.broadcast_shapes(xs, *[np.shape(c) for c in consts])
    except ValueError:
        raise ctx.error(label, f"constant of shape {[np.shape(c) for c in consts]} does not broadcast with the "
                        f"input of shape {xs}") from None
    if target == xs:
        return x
    if len(target) > len(xs):
        ctx.add(out + "__rank", Reshape((1,) * (len(target) - len(xs)) + xs), [x], label)
        x = out + "__rank"
    picks = [(a, np.zeros(t, dtype=np.int64)) for a, (s, t) in enumerate(zip(ctx.shapes[x], target)) if s != t]
    ctx.add(out + "__bcast", Select(picks), [x], label)
    return out + "__bcast"
