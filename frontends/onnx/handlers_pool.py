"""Op handlers of the ONNX loader for pooling: MaxPool, AveragePool (2-D, symmetric pads), GlobalAveragePool."""
from __future__ import annotations

from frontends.onnx.context import LoadContext, OnnxNode
from frontends.onnx.registry import handler
from verifier.ir.ops import AveragePool, MaxPool


@handler("MaxPool", "AveragePool")
def pool(ctx: LoadContext, n: OnnxNode) -> None:
    a = n.attrs
    if "kernel_shape" not in a:
        raise ctx.error(n.label, "the required attribute kernel_shape is missing")
    k = a["kernel_shape"]
    if len(k) != 2:
        raise ctx.error(n.label, "only 2-D pooling is supported")
    strides, pads = a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0])
    if pads[:2] != pads[2:]:
        raise ctx.error(n.label, "asymmetric pooling pads are not supported")
    if n.op_type == "MaxPool":
        op = MaxPool(k, strides, pads, a.get("dilations"), a.get("ceil_mode", 0))
    else:
        op = AveragePool(k, strides, pads, a.get("count_include_pad", 0), a.get("ceil_mode", 0))
    ctx.add(n.out, op, [ctx.name_of(n.inputs[0])], n.label)


@handler("GlobalAveragePool")
def global_average_pool(ctx: LoadContext, n: OnnxNode) -> None:
    x = ctx.name_of(n.inputs[0])
    xs = ctx.shapes[x]
    ctx.add(n.out, AveragePool(xs[-2:], xs[-2:], [0, 0, 0, 0], False), [x], n.label)
