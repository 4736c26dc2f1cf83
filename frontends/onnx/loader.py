"""ONNX front end: load a model (``.onnx`` or ``.onnx.gz``) into a ``verifier.ir.graph.Graph``.

Constant sub-expressions (initializers, ``Constant``, shape arithmetic such as
``Shape -> Gather -> Concat -> Reshape``) are folded with numpy at load time (``fold``);
everything that depends on the network input becomes a graph node with one operator class,
made by the op's handler (``registry.HANDLERS``, filled by the ``handlers_*`` modules).
Unsupported operators are all reported at once, by node name and op type. Several network inputs and outputs
are laid out in one ``X`` and one ``Y`` as :mod:`frontends.onnx.io_layout` describes.
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
    handlers_bilinear,
    handlers_piecewise,
    handlers_pool,
    handlers_reduce,
    handlers_resize,
    handlers_shape,
    handlers_slicing,
    handlers_smooth,
)
from frontends.onnx.context import LoadContext, OnnxNode, node_label
from frontends.onnx.files import read_model_bytes
from frontends.onnx.fold import CONST_ONLY, fold_node
from frontends.onnx.io_layout import network_inputs, static_shape, value_info_dims
from frontends.onnx.reference import condense
from frontends.onnx.registry import HANDLERS
from verifier.ir.errors import ModelError
from verifier.ir.graph import Graph
from verifier.ir.ops import Reshape
from verifier.ir.ops.slicing import Concat, Select
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
    """The layer graph of an ONNX ModelProto: each node folded (all inputs constant) or made by its handler.

    A model with several inputs or outputs becomes a graph with one input and one output in the convention of
    :mod:`frontends.onnx.io_layout`: the graph input is ``X`` (1, n) of every network input flattened and
    concatenated in graph order, each ONNX input a ``Select`` of its elements (and a ``Reshape`` to its shape);
    the graph output is every ONNX output flattened and concatenated in graph order (``Reshape``, ``Concat``)."""
    g = model.graph
    consts = _initializers(g, source)
    inputs = _network_inputs(g, consts, source)
    shapes = {inp.name: _input_shape(inp, source) for inp in inputs}
    n_elements = sum(float(np.prod(s, dtype=np.float64)) for s in shapes.values())
    if max_input_elements and n_elements > max_input_elements:
        what = (f"input '{inputs[0].name}' has {n_elements:.3g} elements (shape {list(shapes[inputs[0].name])})"
                if len(inputs) == 1 else f"the {len(inputs)} inputs have {n_elements:.3g} elements in all")
        raise ModelError(f"{what}, more than limits.tensor_elements = {max_input_elements}; raise it with --set "
                         f"limits.tensor_elements=N (0: no limit)", source)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    fresh = _fresh_names(g)
    if len(inputs) == 1:
        in_name, in_shape = inputs[0].name, shapes[inputs[0].name]
        ctx = LoadContext(source, dtype, consts, {in_name: in_shape}, opset=opset)
    else:
        in_name, in_shape = fresh("X"), (1, int(n_elements))
        ctx = LoadContext(source, dtype, consts, {in_name: in_shape}, opset=opset)
        _split_input(ctx, g, inputs, shapes, in_name, fresh)
    for proto in g.node:
        try:
            n = OnnxNode.read(proto, consts)
            ctx.check_inputs(n)
            if not fold_node(ctx, n):
                HANDLERS[n.op_type](ctx, n)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError) as e:
            # a malformed node (a missing attribute or input, a value of the wrong kind): name it, no traceback
            raise ctx.error(node_label(proto), f"malformed node ({type(e).__name__}: {condense(e)})") from None
    for o in g.output:
        if ctx.name_of(o.name) not in consts and ctx.name_of(o.name) not in ctx.shapes:
            raise ModelError(f"the network output '{o.name}' is the output of no node", source)
    if all(ctx.name_of(o.name) in consts for o in g.output):
        raise ModelError("the network output does not depend on its input" if len(g.output) == 1 else
                         f"none of the {len(g.output)} network outputs depends on the input", source)
    out_name = ctx.name_of(g.output[0].name) if len(g.output) == 1 else _join_outputs(ctx, g, fresh)
    graph = simplify(Graph(in_name, in_shape, ctx.nodes, out_name, source))
    return graph.to(device=device, dtype=dtype)


def _fresh_names(g):
    """A maker of tensor names that no initializer, input, output or node of ``g`` uses."""
    taken = {i.name for i in g.initializer} | {i.name for i in g.input} | {o.name for o in g.output}
    taken |= {t for n in g.node for t in (*n.input, *n.output)}

    def fresh(stem: str) -> str:
        name, k = f"nnverify__{stem}", 0
        while name in taken:
            k += 1
            name = f"nnverify__{stem}_{k}"
        taken.add(name)
        return name
    return fresh


def _split_input(ctx: LoadContext, g, inputs, shapes, x_name: str, fresh) -> None:
    """Each ONNX input a graph value made from ``X``: its elements picked (``Select``), reshaped to its shape.
    An input that no node or output uses gets no node (it still has its place in ``X``)."""
    used = {t for n in g.node for t in n.input} | {o.name for o in g.output}
    offset = 0
    for k, inp in enumerate(inputs):
        shape = shapes[inp.name]
        size = int(np.prod(shape, dtype=np.int64))
        label = f"'{inp.name}' (network input {k}: X_{offset} .. X_{offset + size - 1})"
        if inp.name in used:
            pick = Select([(1, np.arange(offset, offset + size))])
            if tuple(shape) == (1, size):
                ctx.add(inp.name, pick, [x_name], label)
            else:
                flat = fresh(f"input{k}_flat")
                ctx.add(flat, pick, [x_name], label)
                ctx.add(inp.name, Reshape(shape), [flat], label)
        offset += size


def _join_outputs(ctx: LoadContext, g, fresh) -> str:
    """The graph output: every ONNX output flattened to (1, size) and concatenated in graph order."""
    ins, parts = [], []
    for k, o in enumerate(g.output):
        t = ctx.name_of(o.name)
        if t in ctx.consts:  # an output that does not depend on the input: a constant part of Y
            parts.append(ctx.tens(np.asarray(ctx.consts[t]).reshape(1, -1)))
            continue
        size = int(np.prod(ctx.shapes[t], dtype=np.int64))
        if tuple(ctx.shapes[t]) != (1, size):
            flat = fresh(f"output{k}_flat")
            ctx.add(flat, Reshape((1, size)), [t], f"'{o.name}' (network output {k})")
            t = flat
        parts.append(len(ins))
        ins.append(t)
    out = fresh("Y")
    ctx.add(out, Concat(1, parts), ins, f"'{out}' (the {len(g.output)} network outputs concatenated)")
    return out


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


def _network_inputs(g, consts, source) -> list:
    """The network inputs (not initializers), in graph order; checks there is an input and an output, every op
    type is supported and every input and output is FLOAT or DOUBLE."""
    inputs = [i for i in network_inputs(g) if i.name not in consts]
    if not inputs:
        raise ModelError("the model has no network input (every graph input is an initializer)", source)
    if not g.output:
        raise ModelError("the model has no network output", source)
    unsupported = [node_label(n) for n in g.node if n.op_type not in SUPPORTED]
    if unsupported:
        raise ModelError(f"{len(unsupported)} unsupported node(s): " + ", ".join(unsupported), source,
                         nodes=unsupported)
    for kind, value in [("input", i) for i in inputs] + [("output", o) for o in g.output]:
        elem = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else 0
        if elem not in FLOAT_TYPES:
            name = onnx.TensorProto.DataType.Name(elem) if elem in onnx.TensorProto.DataType.values() else elem
            raise ModelError(f"network {kind} '{value.name}' has element type {name}; the verifier needs FLOAT "
                             "or DOUBLE", source)
    return inputs


def _input_shape(inp, source) -> tuple[int, ...]:
    """The static shape of a network input (a symbolic batch axis counts as 1)."""
    dims = value_info_dims(inp)
    if dims is None:
        raise ModelError(f"input '{inp.name}' has no shape: the loader needs static input dimensions", source)
    return static_shape(inp.name, dims, source)
