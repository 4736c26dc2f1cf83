"""Op handlers of the ONNX loader for the shape operators: Identity/Dropout (aliases), Flatten, Reshape,
Squeeze/Unsqueeze (as Reshape) and Transpose."""
from __future__ import annotations

import math

import numpy as np

from frontends.onnx.context import LoadContext, OnnxNode
from frontends.onnx.fold import fold, reshape_target
from frontends.onnx.registry import handler
from verifier.ir.ops import Reshape, Transpose


@handler("Identity", "Dropout")
def identity(ctx: LoadContext, n: OnnxNode) -> None:
    """No graph node: the output names the input (Dropout at inference is the identity)."""
    ctx.alias[n.out] = ctx.name_of(n.inputs[0])


@handler("Flatten")
def flatten(ctx: LoadContext, n: OnnxNode) -> None:
    x = ctx.name_of(n.inputs[0])
    xs = ctx.shapes[x]
    ax = n.attrs.get("axis", 1)
    ax = ax + len(xs) if ax < 0 else ax
    ctx.add(n.out, Reshape((math.prod(xs[:ax]), math.prod(xs[ax:]))), [x], n.label)


@handler("Reshape")
def reshape(ctx: LoadContext, n: OnnxNode) -> None:
    """Reshape to a constant target (the second input, or the ``shape`` attribute of opset 1)."""
    target = ctx.consts.get(n.inputs[1]) if len(n.inputs) > 1 else np.array(n.attrs.get("shape"))
    if target is None:
        raise ctx.error(n.label, "Reshape target shape must be constant")
    x = ctx.name_of(n.inputs[0])
    shape = reshape_target(ctx.shapes[x], target, n.attrs.get("allowzero", 0), n.label, ctx.source)
    ctx.add(n.out, Reshape(shape), [x], n.label)


@handler("Squeeze", "Unsqueeze")
def squeeze(ctx: LoadContext, n: OnnxNode) -> None:
    """A Reshape to the shape that folding the op on an array of the input's shape gives."""
    axes = ctx.consts[n.inputs[1]].tolist() if n.has_input(1) else n.attrs.get("axes")
    x = ctx.name_of(n.inputs[0])
    ref = np.empty(ctx.shapes[x], dtype=np.int8)
    res = fold(n.op_type, [ref] + ([np.array(axes)] if axes is not None else []), {}, n.label, ctx.source)
    ctx.add(n.out, Reshape(res.shape), [x], n.label)


@handler("Transpose")
def transpose(ctx: LoadContext, n: OnnxNode) -> None:
    x = ctx.name_of(n.inputs[0])
    ctx.add(n.out, Transpose(n.attrs.get("perm", list(reversed(range(len(ctx.shapes[x])))))), [x], n.label)
