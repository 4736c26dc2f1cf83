"""Op handlers of the ONNX loader for the linear reductions of a network value: ReduceSum, ReduceMean."""
from __future__ import annotations

import math

import numpy as np

from frontends.onnx.context import LoadContext, OnnxNode
from frontends.onnx.registry import handler
from verifier.ir.ops.reduce import ReduceSum


@handler("ReduceSum", "ReduceMean")
def reduce(ctx: LoadContext, n: OnnxNode) -> None:
    """Axes from the second input (ReduceSum from opset 13, ReduceMean from 18) or the ``axes`` attribute; no
    axes: all of them, or none with ``noop_with_empty_axes``."""
    x = ctx.name_of(n.inputs[0])
    shape = ctx.shapes[x]
    r = len(shape)
    if n.has_input(1):
        if not n.is_const[1]:
            raise ctx.error(n.label, f"{n.op_type} axes must be constant")
        axes = [int(a) for a in np.asarray(ctx.consts[n.inputs[1]]).reshape(-1)]
    else:
        axes = n.attrs.get("axes")
    if not axes:
        axes = [] if n.attrs.get("noop_with_empty_axes", 0) else list(range(r))
    if any(not -r <= a < r for a in axes):
        raise ctx.error(n.label, f"axes {axes} out of range for a value of rank {r}")
    axes = sorted({a + r if a < 0 else a for a in axes})
    count = math.prod(shape[a] for a in axes)
    scale = 1.0 / count if n.op_type == "ReduceMean" and count else 1.0
    ctx.add(n.out, ReduceSum(axes, n.attrs.get("keepdims", 1), scale), [x], n.label)
