"""Op handlers of the ONNX loader for the elementwise activations: Relu, Sigmoid, Tanh."""
from __future__ import annotations

from frontends.onnx.context import LoadContext, OnnxNode
from frontends.onnx.registry import handler
from verifier.ir.ops import ReLU, Sigmoid, Tanh

ACTIVATIONS = {"Relu": ReLU, "Sigmoid": Sigmoid, "Tanh": Tanh}


@handler(*ACTIVATIONS)
def activation(ctx: LoadContext, n: OnnxNode) -> None:
    ctx.add(n.out, ACTIVATIONS[n.op_type](), [ctx.name_of(n.inputs[0])], n.label)
