"""ONNX front end: load a model (``.onnx`` or ``.onnx.gz``) into a ``verifier.ir.graph.Graph``.

Constant sub-expressions (initializers, ``Constant``, shape arithmetic such as
``Shape -> Gather -> Concat -> Reshape``) are folded with numpy at load time (``fold``);
everything that depends on the network input becomes a graph node with one operator class,
made by the op's handler (``registry.HANDLERS``, filled by the ``handlers_*`` modules).
Unsupported operators are all reported at once, by node name and op type.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
import onnx.numpy_helper as nh
import torch

# importing the handler modules registers their op types in HANDLERS
from frontends.onnx import handlers_activation, handlers_affine, handlers_pool, handlers_shape  # noqa: F401
from frontends.onnx.context import LoadContext, OnnxNode, node_label
from frontends.onnx.files import read_model_bytes
from frontends.onnx.fold import CONST_ONLY, fold_node
from frontends.onnx.registry import HANDLERS
from verifier.ir.errors import ModelError
from verifier.ir.graph import Graph
from verifier.ir.simplify import simplify

# op types the loader understands: those with a handler (on graph values) and the constant-only ones
SUPPORTED = frozenset(HANDLERS) | CONST_ONLY


def load_onnx(path: str | os.PathLike, dtype=torch.float32, device="cpu") -> Graph:
    return graph_from_bytes(read_model_bytes(path), str(path), dtype=dtype, device=device)


def graph_from_bytes(data: bytes, source: str = "<model>", dtype=torch.float32, device="cpu") -> Graph:
    """The layer graph of a serialised ONNX model (``source`` names it in messages)."""
    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # protobuf decode errors have many types
        raise ModelError(f"not a valid ONNX model ({type(e).__name__}: {e})", source) from None
    return graph_from_onnx(model, source, dtype=dtype, device=device)


def graph_from_onnx(model, source: str = "<model>", dtype=torch.float32, device="cpu") -> Graph:
    """The layer graph of an ONNX ModelProto: each node folded (all inputs constant) or made by its handler."""
    g = model.graph
    consts: dict[str, np.ndarray] = {i.name: nh.to_array(i) for i in g.initializer}
    inp = _network_input(g, consts, source)
    in_shape = _input_shape(inp, source)
    ctx = LoadContext(source, dtype, consts, {inp.name: in_shape})
    for proto in g.node:
        n = OnnxNode.read(proto, consts)
        ctx.check_inputs(n)
        if not fold_node(ctx, n):
            HANDLERS[n.op_type](ctx, n)
    out_name = ctx.name_of(g.output[0].name)
    if out_name in consts:
        raise ModelError("the network output does not depend on its input", source)
    if out_name not in ctx.shapes:
        raise ModelError(f"the network output '{g.output[0].name}' is the output of no node", source)
    graph = simplify(Graph(inp.name, in_shape, ctx.nodes, out_name, source))
    return graph.to(device=device, dtype=dtype)


def _network_input(g, consts, source):
    """The one network input (not an initializer); checks there is one output and every op type is supported."""
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise ModelError(f"expected exactly one network input, found {len(inputs)}: {[i.name for i in inputs]}", source)
    if len(g.output) != 1:
        raise ModelError(f"expected exactly one network output, found {len(g.output)}", source)
    unsupported = [node_label(n) for n in g.node if n.op_type not in SUPPORTED]
    if unsupported:
        raise ModelError(f"{len(unsupported)} unsupported node(s): " + ", ".join(unsupported), source,
                         nodes=unsupported)
    return inputs[0]


def _input_shape(inp, source) -> tuple[int, ...]:
    """The static shape of the network input (a symbolic batch axis counts as 1)."""
    if not inp.type.tensor_type.HasField("shape"):
        raise ModelError(f"input '{inp.name}' has no shape: the loader needs static input dimensions", source)
    shape = []
    for k, d in enumerate(inp.type.tensor_type.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(d.dim_value)
        elif k == 0:
            shape.append(1)  # symbolic batch axis
        else:
            raise ModelError(f"input '{inp.name}' has a symbolic dimension {d.dim_param!r} at axis {k}", source)
    return tuple(shape)
