"""One ONNX model for a VNN-LIB 2.0 query: its networks side by side, over the query's augmented vectors.

A 2.0 query may declare several networks (``equal-to``: the same model again, with its own variables;
``isomorphic-to``: a model of its own), several inputs and outputs per network, hidden nodes (intermediate
tensors, named by their ONNX names) and constraints that are not boxes on one input element. The verifier's
core decides ``x in box, C y <= d`` for a model with one input and one output, so :func:`compose` builds that
model (:class:`~frontends.vnnlib.v2.Query` documents the layout):

* its input ``X`` is ``(1, n_x)``: every declared input, flattened, concatenated in declaration order; each
  network input is ``X @ S`` (a constant 0/1 selection matrix; ``X`` itself when there is one input in all)
  reshaped to the ONNX input's shape;
* its output ``Y`` is ``(1, n_y)``: every declared output and hidden node in declaration order, then a copy of
  each input element that a non-box constraint names (the pass-through), made as ``sum_k flat_k @ P_k`` with
  constant 0/1 placement matrices (no Concat: only Reshape, MatMul and Add, which the ONNX front end takes on
  variables);
* each network's graph is copied with its names prefixed (``n0__``, ``n1__``, ...; ``onnx.compose``).

A point of the composed problem is then exactly an assignment of the query: its ``X`` gives the inputs and
its ``Y`` the outputs, the hidden nodes and the inputs again, so a counterexample (validated by onnxruntime on
the composed model, that is on the networks themselves) is a satisfying assignment, and a proof covers the
query. Declared inputs and outputs are matched to the ONNX ones by their ONNX name when the declaration gives
one, else by position. (A plain ``verify model.onnx spec.vnnlib`` with a 1.0 spec lays several inputs and outputs
out the same way, in graph order, in the loader itself: :mod:`frontends.onnx.io_layout`.)

:func:`check_element_types` is the standard's element type rule (section 5.3.2): unless every declaration of
the query is ``real`` (a real-valued query), each declaration's type must be that of the ONNX tensor it names.
"""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from frontends.onnx.io_layout import network_inputs
from frontends.vnnlib.v2_network import NetworkDecl, TensorDecl
from verifier.ir.errors import ModelError

PREFIX = "n{}__"
MIN_OPSET = 5  # Reshape with its shape as an input
X_NAME, Y_NAME = "X", "Y"
_NP = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64}
ELEMENT_TYPE_NAMES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
                      9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16",
                      14: "complex64", 15: "complex128", 17: "float8e4m3fn", 18: "float8e4m3fnuz",
                      19: "float8e5m2", 20: "float8e5m2fnuz", 23: "float4e2m1", 21: "uint4", 22: "int4"}


class QueryModelError(ModelError):
    """The models do not fit the query's declarations."""


def model_of(query, models: dict[str, onnx.ModelProto], net: NetworkDecl) -> onnx.ModelProto:
    """The model of ``net``: its own, or (``equal-to``, followed to the end) that of the network it equals."""
    seen = set()
    while net.equivalence is not None and net.equivalence[0] == "equal-to" and net.name not in seen:
        seen.add(net.name)
        net = next(n for n in query.networks if n.name == net.equivalence[1])
    return models[net.name]


def _match(decls: tuple[TensorDecl, ...], values: list, kind: str, net: str) -> list[tuple[TensorDecl, object]]:
    """Pair each declaration with its ONNX value (by ONNX name if given, else by position)."""
    by_name = {v.name: v for v in values}
    if all(d.onnx_name is not None for d in decls):
        out = []
        for d in decls:
            if d.onnx_name not in by_name:
                raise QueryModelError(f"{d.name}: the model of network {net} has no {kind} named {d.onnx_name!r} "
                                      f"(its {kind}s: {sorted(by_name)})")
            out.append((d, by_name[d.onnx_name]))
        return out
    if len(decls) != len(values):
        raise QueryModelError(f"network {net} declares {len(decls)} {kind}s but its model has {len(values)} "
                              f"({[v.name for v in values]})")
    return list(zip(decls, values))


def _value_infos(model: onnx.ModelProto) -> dict[str, object]:
    """ONNX value infos of every tensor whose type shape inference knows (inputs, outputs, intermediates)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    g = inferred.graph
    return {v.name: v for v in list(g.value_info) + list(g.input) + list(g.output)}


def _hidden(model: onnx.ModelProto, decl: TensorDecl, net: str, infos: dict):
    produced = {o for n in model.graph.node for o in n.output}
    if decl.onnx_name not in produced:
        raise QueryModelError(f"hidden node {decl.name}: no node of the model of network {net} makes a tensor "
                              f"named {decl.onnx_name!r}")
    return infos.get(decl.onnx_name) or helper.make_tensor_value_info(decl.onnx_name, 0, None)


def _static_size(value) -> int | None:
    t = value.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for k, d in enumerate(t.shape.dim):
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        elif k == 0:
            dims.append(1)  # a symbolic batch axis
        else:
            return None
    return math.prod(dims)


def _pairs(query, models: dict[str, onnx.ModelProto]):
    """Per network: (its model, [(decl, ONNX value)] of its inputs, of its outputs and hidden nodes)."""
    out = []
    for net in query.networks:
        model = model_of(query, models, net)
        infos = _value_infos(model) if net.hidden else {}  # shape inference only where a hidden node needs it
        ins = _match(net.inputs, network_inputs(model.graph), "input", net.name)
        outs = _match(net.outputs, list(model.graph.output), "output", net.name)
        hidden = [(d, _hidden(model, d, net.name, infos)) for d in net.hidden]
        for d, v in ins + outs + hidden:
            size = _static_size(v)
            if size is not None and size != d.size:
                raise QueryModelError(f"{d.name} is declared with shape {list(d.shape)} ({d.size} elements) but the "
                                      f"model's tensor {v.name!r} of network {net.name} has {size}")
        out.append((model, ins, outs + hidden))
    return out


def check_element_types(query, models: dict[str, onnx.ModelProto]) -> None:
    """Section 5.3.2: the declared element types must be those of the models, unless the query is real-valued."""
    if all(d.is_real for d in query.declarations):
        return
    for _, ins, ys in _pairs(query, models):
        for d, v in ins + ys:
            elem = v.type.tensor_type.elem_type
            actual = ELEMENT_TYPE_NAMES.get(elem)
            if actual is None:  # shape inference did not type it: nothing to compare
                continue
            if (d.dtype.lower() if d.is_real else d.dtype) != actual:
                what = "hidden node" if d.kind == "hidden" else d.kind
                why = " (a query is exempt only if every declaration is real)" if d.is_real else ""
                raise QueryModelError(f"{d.name} is declared {d.dtype} but the model's {what} {v.name!r} is "
                                      f"{actual}{why}")


def _common_opset(models: list[onnx.ModelProto]) -> list[onnx.ModelProto]:
    """The models at one default-domain opset (the highest; converted where they differ)."""
    def version(m):
        return max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=1)
    top = max([version(m) for m in models] + [MIN_OPSET])
    out = []
    for m in models:
        if version(m) != top:
            try:
                m = onnx.version_converter.convert_version(m, top)
            except Exception as e:
                raise QueryModelError(f"the networks' models use ONNX opsets {version(m)} and {top}, and converting "
                                      f"one to the other failed ({type(e).__name__})") from None
        out.append(m)
    return out


def compose(query, models: dict[str, onnx.ModelProto]) -> onnx.ModelProto:
    """The one-input, one-output model of ``query`` (see the module docstring)."""
    pairs = _pairs(query, models)
    elems = {v.type.tensor_type.elem_type for _, ins, _ in pairs for _, v in ins}
    if len(elems) != 1 or next(iter(elems)) not in _NP:
        names = sorted(ELEMENT_TYPE_NAMES.get(e, str(e)) for e in elems)
        raise QueryModelError(f"the networks' inputs have element types {names}; one of float32 or float64 "
                              "for all of them is supported")
    elem = next(iter(elems))
    dtype = _NP[elem]
    n_x, n_y = query.n_x, query.n_y
    x_off = {d.name: off for off, d in query.x_slots}
    y_off = {d.name: off for off, d in query.y_slots}
    nodes, inits = [], []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(array, name))
        return name

    converted = _common_opset([m for m, _, _ in pairs])
    parts = []  # flat (1, n) tensors of Y's parts, each with its placement
    for k, ((_, ins, ys), model) in enumerate(zip(pairs, converted)):
        prefix = PREFIX.format(k)
        model = onnx.compose.add_prefix(model, prefix)
        feeds = {prefix + v.name for _, v in ins}
        for d, v in ins:
            src = X_NAME
            if d.size != n_x:
                sel = np.zeros((n_x, d.size), dtype=dtype)
                sel[x_off[d.name] + np.arange(d.size), np.arange(d.size)] = 1
                src = f"vnnlib__{prefix}{d.name}_flat"
                nodes.append(helper.make_node("MatMul", [X_NAME, const(f"vnnlib__{prefix}{d.name}_S", sel)], [src]))
            shape = _feed_shape(v, d)
            nodes.append(helper.make_node("Reshape", [src, const(f"vnnlib__{prefix}{d.name}_shape", shape)],
                                          [prefix + v.name]))
        nodes.extend(model.graph.node)
        inits.extend(i for i in model.graph.initializer if i.name not in feeds)
        for d, v in ys:
            parts.append((prefix + v.name, d.size, y_off[d.name], f"{prefix}{d.name}"))
    terms = []
    flat_shape = const("vnnlib__flat_shape", np.array([1, -1], dtype=np.int64))
    for tensor, size, off, tag in parts:
        flat = f"vnnlib__{tag}_flat"
        nodes.append(helper.make_node("Reshape", [tensor, flat_shape], [flat]))
        place = np.zeros((size, n_y), dtype=dtype)
        place[np.arange(size), off + np.arange(size)] = 1
        terms.append((flat, place, tag))
    if query.passthrough:
        base = n_y - len(query.passthrough)
        place = np.zeros((n_x, n_y), dtype=dtype)
        place[list(query.passthrough), base + np.arange(len(query.passthrough))] = 1
        terms.append((X_NAME, place, "passthrough"))
    total = None
    for flat, place, tag in terms:
        placed = f"vnnlib__{tag}_placed"
        nodes.append(helper.make_node("MatMul", [flat, const(f"vnnlib__{tag}_P", place)], [placed]))
        if total is None:
            total = placed
        else:
            nodes.append(helper.make_node("Add", [total, placed], [f"vnnlib__sum_{tag}"]))
            total = f"vnnlib__sum_{tag}"
    nodes.append(helper.make_node("Identity", [total], [Y_NAME]))
    graph = helper.make_graph(nodes, "vnnlib_query", [helper.make_tensor_value_info(X_NAME, elem, [1, n_x])],
                              [helper.make_tensor_value_info(Y_NAME, elem, [1, n_y])], inits)
    opsets = {}
    for m in converted:
        for o in m.opset_import:
            dom = "" if o.domain == "ai.onnx" else o.domain
            opsets[dom] = max(opsets.get(dom, 0), o.version)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
                            producer_name="nnverify-vnnlib-compose")
    out.ir_version = max([m.ir_version for m in converted] + [7])
    return out


def _feed_shape(value, decl: TensorDecl) -> np.ndarray:
    """The shape a network input is fed in: the ONNX input's (a symbolic batch axis as 1), else the declared."""
    t = value.type.tensor_type
    dims: list[int] | None = [] if t.HasField("shape") else None
    for k, d in enumerate(t.shape.dim if dims is not None else ()):
        if d.HasField("dim_value"):
            dims.append(d.dim_value)
        elif k == 0:
            dims.append(1)
        else:
            dims = None
            break
    if dims is None or math.prod(dims) != decl.size:
        dims = list(decl.shape)
    return np.array(dims, dtype=np.int64)


def isomorphism_problems(query, models: dict[str, onnx.ModelProto]) -> list[str]:
    """For each ``(isomorphic-to M)`` whose model has not M's structure (its node op types in order), a line."""
    out = []
    for net in query.networks:
        if net.equivalence is None or net.equivalence[0] != "isomorphic-to":
            continue
        other = next(n for n in query.networks if n.name == net.equivalence[1])
        ops = [[n.op_type for n in model_of(query, models, x).graph.node] for x in (net, other)]
        if ops[0] != ops[1]:
            out.append(f"network {net.name} is declared isomorphic-to {other.name} but their models' node op types "
                       f"differ ({len(ops[0])} and {len(ops[1])} nodes)")
    return out
