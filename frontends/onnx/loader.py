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
from frontends.onnx import (  # noqa: F401
    handlers_activation,
    handlers_affine,
    handlers_piecewise,
    handlers_pool,
    handlers_reduce,
    handlers_resize,
    handlers_shape,
    handlers_slicing,
)
from frontends.onnx.context import LoadContext, OnnxNode, node_label
from frontends.onnx.files import read_model_bytes
from frontends.onnx.fold import CONST_ONLY, fold_node
from frontends.onnx.reference import condense
from frontends.onnx.registry import HANDLERS
from verifier.ir.errors import ModelError
from verifier.ir.graph import Graph
from verifier.ir.simplify import simplify

# element types of the network input and output that the verifier (and its onnxruntime reference) take
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
# op types the loader understands: those with a handler (on graph values) and the constant-only ones
SUPPORTED = frozenset(HANDLERS) | CONST_ONLY


def load_onnx(path: str | os.PathLike, dtype=torch.float32, device="cpu") -> Graph:
    return graph_from_bytes(read_model_bytes(path), str(path), dtype=dtype, device=device)


def parse_model(data: bytes, source: str = "<model>") -> onnx.ModelProto:
    """The ModelProto of a serialised ONNX model; bytes that are not one are a ModelError naming ``source``."""
    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # protobuf decode errors have many types
        raise ModelError(f"not a valid ONNX model ({type(e).__name__}: {condense(e)})", source) from None
    if not model.HasField("graph"):
        raise ModelError("not a valid ONNX model (it holds no graph)", source)
    return model


def graph_from_bytes(data: bytes, source: str = "<model>", dtype=torch.float32, device="cpu") -> Graph:
    """The layer graph of a serialised ONNX model (``source`` names it in messages)."""
    return graph_from_onnx(parse_model(data, source), source, dtype=dtype, device=device)


def graph_from_onnx(model, source: str = "<model>", dtype=torch.float32, device="cpu",
                    max_input_elements: int = 0) -> Graph:
    """The layer graph of an ONNX ModelProto: each node folded (all inputs constant) or made by its handler."""
    g = model.graph
    consts = _initializers(g, source)
    inp = _network_input(g, consts, source)
    in_shape = _input_shape(inp, source)
    n_elements = int(np.prod(in_shape, dtype=np.float64))
    if max_input_elements and n_elements > max_input_elements:
        raise ModelError(f"input '{inp.name}' has {n_elements:.3g} elements (shape {list(in_shape)}), more than "
                         f"limits.tensor_elements = {max_input_elements}; raise it with --set "
                         f"limits.tensor_elements=N (0: no limit)", source)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    ctx = LoadContext(source, dtype, consts, {inp.name: in_shape}, opset=opset)
    for proto in g.node:
        try:
            n = OnnxNode.read(proto, consts)
            ctx.check_inputs(n)
            if not fold_node(ctx, n):
                HANDLERS[n.op_type](ctx, n)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError) as e:
            # a malformed node (a missing attribute or input, a value of the wrong kind): name it, no traceback
            raise ctx.error(node_label(proto), f"malformed node ({type(e).__name__}: {condense(e)})") from None
    out_name = ctx.name_of(g.output[0].name)
    if out_name in consts:
        raise ModelError("the network output does not depend on its input", source)
    if out_name not in ctx.shapes:
        raise ModelError(f"the network output '{g.output[0].name}' is the output of no node", source)
    graph = simplify(Graph(inp.name, in_shape, ctx.nodes, out_name, source))
    return graph.to(device=device, dtype=dtype)


def _initializers(g, source) -> dict[str, np.ndarray]:
    consts: dict[str, np.ndarray] = {}
    for init in g.initializer:
        if init.name in consts:  # onnxruntime takes one of them, the loader would take the other
            raise ModelError(f"two initializers are named '{init.name}'", source)
        try:
            consts[init.name] = nh.to_array(init)
        except Exception as e:  # raw data of the wrong length, external data that is not there, ...
            raise ModelError(f"initializer '{init.name}' cannot be read ({type(e).__name__}: {condense(e)})",
                             source) from None
    return consts


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
    for kind, value in (("input", inputs[0]), ("output", g.output[0])):
        elem = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else 0
        if elem not in FLOAT_TYPES:
            name = onnx.TensorProto.DataType.Name(elem) if elem in onnx.TensorProto.DataType.values() else elem
            raise ModelError(f"network {kind} '{value.name}' has element type {name}; the verifier needs FLOAT "
                             "or DOUBLE", source)
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
