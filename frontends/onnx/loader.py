"""ONNX front end: load a model (``.onnx`` or ``.onnx.gz``) into a ``verifier.graph.Graph``.

Constant sub-expressions (initializers, ``Constant``, shape arithmetic such as
``Shape -> Gather -> Concat -> Reshape``) are folded with numpy at load time;
everything that depends on the network input becomes a graph node with one
operator class. Unsupported operators are all reported at once, by node name
and op type.
"""
from __future__ import annotations

import math
import os

import numpy as np
import onnx
import onnx.numpy_helper as nh
import torch

from verifier.ir.errors import ModelError
from verifier.ir.graph import Graph, Node
from verifier.ir.ops import AddNodes, AveragePool, Conv, Linear, MaxPool, ReLU, Reshape, Scale, Sigmoid, Tanh, Transpose
from verifier.ir.simplify import simplify

from .files import read_model_bytes

# op types the loader understands (on graph values; constant-only nodes may use a few more)
SUPPORTED = {
    "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Conv", "Flatten", "Reshape",
    "BatchNormalization", "Constant", "Identity", "Dropout", "MaxPool", "AveragePool", "Transpose",
    "Squeeze", "Unsqueeze", "Shape", "Gather", "Concat", "Cast", "GlobalAveragePool",
}
CONST_ONLY = {"Shape", "Gather", "Concat", "Cast", "Constant"}


def load_onnx(path: str | os.PathLike, dtype=torch.float32, device="cpu") -> Graph:
    return graph_from_bytes(read_model_bytes(path), str(path), dtype=dtype, device=device)


def graph_from_bytes(data: bytes, source: str = "<model>", dtype=torch.float32, device="cpu") -> Graph:
    """The layer graph of a serialised ONNX model (``source`` names it in messages)."""
    try:
        model = onnx.load_from_string(data)
    except Exception as e:  # protobuf decode errors have many types
        raise ModelError(f"not a valid ONNX model ({type(e).__name__}: {e})", source) from None
    return graph_from_onnx(model, source, dtype=dtype, device=device)


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _node_label(node) -> str:
    return f"'{node.name or node.output[0]}' ({node.op_type})"


def graph_from_onnx(model, source: str = "<model>", dtype=torch.float32, device="cpu") -> Graph:
    g = model.graph
    consts: dict[str, np.ndarray] = {i.name: nh.to_array(i) for i in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise ModelError(f"expected exactly one network input, found {len(inputs)}: {[i.name for i in inputs]}", source)
    if len(g.output) != 1:
        raise ModelError(f"expected exactly one network output, found {len(g.output)}", source)
    unsupported = [_node_label(n) for n in g.node if n.op_type not in SUPPORTED]
    if unsupported:
        raise ModelError(f"{len(unsupported)} unsupported node(s): " + ", ".join(unsupported), source,
                         nodes=unsupported)
    inp = inputs[0]
    if not inp.type.tensor_type.HasField("shape"):
        raise ModelError(f"input '{inp.name}' has no shape: the loader needs static input dimensions", source)
    dims = inp.type.tensor_type.shape.dim
    shape = []
    for k, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(d.dim_value)
        elif k == 0:
            shape.append(1)  # symbolic batch axis
        else:
            raise ModelError(f"input '{inp.name}' has a symbolic dimension {d.dim_param!r} at axis {k}", source)
    in_shape = tuple(shape)

    tdt = dtype
    shapes: dict[str, tuple[int, ...]] = {inp.name: in_shape}
    nodes: list[Node] = []
    alias: dict[str, str] = {}

    def name_of(t: str) -> str:
        while t in alias:
            t = alias[t]
        return t

    def const(t: str):
        return consts.get(t)

    def tens(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.array(a, dtype=np.float64), dtype=tdt)

    def add(out: str, op, ins: list[str], label: str):
        ins = [name_of(i) for i in ins]
        sample = [torch.zeros((1, *shapes[i]), dtype=torch.float64) for i in ins]
        try:
            y = op.to(dtype=torch.float64).forward(*sample)
        except Exception as e:
            raise ModelError(f"node {label}: cannot apply to inputs of shape "
                             f"{[shapes[i] for i in ins]}: {e}", source, nodes=[label]) from None
        shapes[out] = tuple(y.shape[1:])
        nodes.append(Node(out, op, tuple(ins), shapes[out], label))

    def scale_const(c: np.ndarray, x_shape, label) -> torch.Tensor:
        c = np.asarray(c, dtype=np.float64)
        while c.ndim > len(x_shape) and c.shape[0] == 1:
            c = c.reshape(c.shape[1:])
        if np.broadcast_shapes(c.shape, tuple(x_shape)) != tuple(x_shape):
            raise ModelError(f"node {label}: constant of shape {c.shape} would broadcast the input of shape "
                             f"{tuple(x_shape)}", source, nodes=[label])
        return tens(c)

    for node in g.node:
        op_type, a, label = node.op_type, _attrs(node), _node_label(node)
        ins = list(node.input)
        out = node.output[0] if node.output else ""
        is_const = [i == "" or i in consts for i in ins]
        # ---------------------------------------------------------- constant folding
        if op_type == "Constant":
            consts[out] = _constant_value(a, label, source)
            continue
        if op_type == "Shape":
            src = name_of(ins[0])
            consts[out] = np.array(consts[src].shape if src in consts else shapes[src], dtype=np.int64)
            continue
        if all(is_const):
            consts[out] = _fold(op_type, [consts.get(i) for i in ins], a, label, source)
            continue
        if op_type in CONST_ONLY:
            raise ModelError(f"node {label} is only supported on constant inputs", source, nodes=[label])
        x = name_of(ins[0])
        # ---------------------------------------------------------- graph operators
        if op_type in ("Identity", "Dropout"):
            alias[out] = x
        elif op_type == "Relu":
            add(out, ReLU(), [x], label)
        elif op_type == "Sigmoid":
            add(out, Sigmoid(), [x], label)
        elif op_type == "Tanh":
            add(out, Tanh(), [x], label)
        elif op_type == "Gemm":
            if is_const[0] or not is_const[1]:
                raise ModelError(f"node {label}: only Gemm(x, constant W) is supported", source, nodes=[label])
            w = consts[ins[1]].astype(np.float64)
            if a.get("transB", 0):
                w = w.T
            w = w * a.get("alpha", 1.0)
            if a.get("transA", 0):
                tname = out + "__transA"
                add(tname, Transpose(list(reversed(range(len(shapes[x]))))), [x], label)
                x = tname
            bias = None
            if len(ins) > 2 and ins[2]:
                bias = tens(consts[ins[2]].astype(np.float64) * a.get("beta", 1.0))
            add(out, Linear(tens(w), bias), [x], label)
        elif op_type == "MatMul":
            if is_const[1] and not is_const[0]:
                w = consts[ins[1]]
                if w.ndim != 2:
                    raise ModelError(f"node {label}: MatMul with a {w.ndim}-D constant is not supported", source,
                                     nodes=[label])
                add(out, Linear(tens(w), None), [x], label)
            elif is_const[0] and not is_const[1]:  # W @ x: a linear map on the second-to-last axis
                w, x = consts[ins[0]], name_of(ins[1])
                nx = len(shapes[x])
                if w.ndim != 2 or nx == 0:
                    raise ModelError(f"node {label}: MatMul(constant, x) needs a 2-D constant", source, nodes=[label])
                if nx == 1:
                    add(out, Linear(tens(w.T), None), [x], label)
                else:
                    perm = list(range(nx - 2)) + [nx - 1, nx - 2]
                    add(out + "__T0", Transpose(perm), [x], label)
                    add(out + "__W", Linear(tens(w.T), None), [out + "__T0"], label)
                    add(out, Transpose(perm), [out + "__W"], label)
            else:
                raise ModelError(f"node {label}: only MatMul(x, constant) is supported", source, nodes=[label])
        elif op_type in ("Add", "Sub", "Mul", "Div"):
            _binary(op_type, ins, is_const, consts, name_of, shapes, add, scale_const, out, label, source)
        elif op_type == "Conv":
            if not all(is_const[1:]):
                raise ModelError(f"node {label}: Conv weights must be constant", source, nodes=[label])
            w = consts[ins[1]]
            nd = w.ndim - 2
            if nd not in (1, 2):
                raise ModelError(f"node {label}: only 1-D and 2-D convolutions are supported", source, nodes=[label])
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise ModelError(f"node {label}: Conv auto_pad is not supported", source, nodes=[label])
            b = tens(consts[ins[2]]) if len(ins) > 2 and ins[2] else None
            add(out, Conv(tens(w), b, a.get("strides", [1] * nd), a.get("pads", [0] * 2 * nd),
                          a.get("dilations", [1] * nd), a.get("group", 1)), [x], label)
        elif op_type == "BatchNormalization":
            s, bb, mean, var = (consts[i].astype(np.float64) for i in ins[1:5])
            k = s / np.sqrt(var + a.get("epsilon", 1e-5))
            xs = shapes[x]
            bshape = (-1,) + (1,) * (len(xs) - 2)
            add(out, Scale(tens(k.reshape(bshape)), tens((bb - mean * k).reshape(bshape))), [x], label)
        elif op_type == "Flatten":
            xs = shapes[x]
            ax = a.get("axis", 1)
            ax = ax + len(xs) if ax < 0 else ax
            add(out, Reshape((math.prod(xs[:ax]), math.prod(xs[ax:]))), [x], label)
        elif op_type == "Reshape":
            target = consts.get(ins[1]) if len(ins) > 1 else np.array(a.get("shape"))
            if target is None:
                raise ModelError(f"node {label}: Reshape target shape must be constant", source, nodes=[label])
            add(out, Reshape(_reshape_target(shapes[x], target, a.get("allowzero", 0), label, source)), [x], label)
        elif op_type in ("Squeeze", "Unsqueeze"):
            axes = consts[ins[1]].tolist() if len(ins) > 1 and ins[1] else a.get("axes")
            ref = np.empty(shapes[x], dtype=np.int8)
            res = _fold(op_type, [ref] + ([np.array(axes)] if axes is not None else []), {}, label, source)
            add(out, Reshape(res.shape), [x], label)
        elif op_type == "Transpose":
            perm = a.get("perm", list(reversed(range(len(shapes[x])))))
            add(out, Transpose(perm), [x], label)
        elif op_type in ("MaxPool", "AveragePool"):
            k = a["kernel_shape"]
            if len(k) != 2:
                raise ModelError(f"node {label}: only 2-D pooling is supported", source, nodes=[label])
            strides, pads = a.get("strides", [1, 1]), a.get("pads", [0, 0, 0, 0])
            if pads[:2] != pads[2:]:
                raise ModelError(f"node {label}: asymmetric pooling pads are not supported", source, nodes=[label])
            if op_type == "MaxPool":
                op = MaxPool(k, strides, pads, a.get("dilations"), a.get("ceil_mode", 0))
            else:
                op = AveragePool(k, strides, pads, a.get("count_include_pad", 0), a.get("ceil_mode", 0))
            add(out, op, [x], label)
        elif op_type == "GlobalAveragePool":
            xs = shapes[x]
            add(out, AveragePool(xs[-2:], xs[-2:], [0, 0, 0, 0], False), [x], label)
        else:  # pragma: no cover - SUPPORTED and the branches above must agree
            raise ModelError(f"node {label}: operator not handled", source, nodes=[label])

    out_name = name_of(g.output[0].name)
    if out_name in consts:
        raise ModelError("the network output does not depend on its input", source)
    graph = simplify(Graph(inp.name, in_shape, nodes, out_name, source))
    return graph.to(device=device, dtype=dtype)


def _binary(op_type, ins, is_const, consts, name_of, shapes, add, scale_const, out, label, source):
    if not is_const[0] and not is_const[1]:
        a_, b_ = name_of(ins[0]), name_of(ins[1])
        if op_type in ("Add", "Sub"):
            add(out, AddNodes(1.0, 1.0 if op_type == "Add" else -1.0), [a_, b_], label)
            return
        raise ModelError(f"node {label}: {op_type} of two network values is not supported (not piecewise linear)",
                         source, nodes=[label])
    if is_const[0]:  # constant (op) x
        c, x = consts[ins[0]].astype(np.float64), name_of(ins[1])
        if op_type == "Add":
            scale, shift = None, c
        elif op_type == "Sub":
            scale, shift = -np.ones(1), c
        elif op_type == "Mul":
            scale, shift = c, None
        else:
            raise ModelError(f"node {label}: division by a network value is not supported", source, nodes=[label])
    else:
        c, x = consts[ins[1]].astype(np.float64), name_of(ins[0])
        if op_type == "Div" and np.any(c == 0):
            raise ModelError(f"node {label}: division by a constant that contains 0", source, nodes=[label])
        scale, shift = {"Add": (None, c), "Sub": (None, -c), "Mul": (c, None),
                        "Div": (1.0 / np.where(c == 0, 1, c), None)}[op_type]
    xs = shapes[x]
    add(out, Scale(scale_const(scale, xs, label) if scale is not None else None,
                   scale_const(shift, xs, label) if shift is not None else None), [x], label)


def _reshape_target(in_shape, target, allowzero, label, source):
    target = [int(t) for t in np.asarray(target).reshape(-1)]
    res = []
    for i, t in enumerate(target):
        if t == 0 and not allowzero:
            res.append(in_shape[i])
        else:
            res.append(t)
    total = math.prod(in_shape)
    if res.count(-1) > 1:
        raise ModelError(f"node {label}: Reshape target {target} has more than one -1", source, nodes=[label])
    if -1 in res:
        known = math.prod(r for r in res if r != -1)
        res[res.index(-1)] = total // known if known else 0
    if math.prod(res) != total:
        raise ModelError(f"node {label}: cannot reshape {tuple(in_shape)} to {target}", source, nodes=[label])
    return tuple(res)


def _constant_value(a: dict, label, source) -> np.ndarray:
    if "value" in a:
        return nh.to_array(a["value"])
    for key in ("value_float", "value_int"):
        if key in a:
            return np.array(a[key])
    for key in ("value_floats", "value_ints"):
        if key in a:
            return np.array(list(a[key]))
    raise ModelError(f"node {label}: Constant without a supported value attribute", source, nodes=[label])


def _fold(op_type, vals, a, label, source) -> np.ndarray:
    """Evaluate a node whose inputs are all constants."""
    try:
        if op_type in ("Identity", "Dropout", "Cast"):
            v = vals[0]
            if op_type == "Cast":
                v = v.astype(onnx.helper.tensor_dtype_to_np_dtype(a["to"]))
            return v
        if op_type in ("Add", "Sub", "Mul", "Div"):
            x, y = vals
            if op_type == "Div" and np.issubdtype(x.dtype, np.integer):
                return x // y
            return {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op_type](x, y)
        if op_type == "Gather":
            return np.take(vals[0], vals[1], axis=a.get("axis", 0))
        if op_type == "Concat":
            return np.concatenate([np.atleast_1d(v) for v in vals], axis=a.get("axis", 0))
        if op_type == "Unsqueeze":
            axes = vals[1].tolist() if len(vals) > 1 and vals[1] is not None else a["axes"]
            v = vals[0]
            nd = v.ndim + len(axes)
            for ax in sorted(x + nd if x < 0 else x for x in axes):
                v = np.expand_dims(v, ax)
            return v
        if op_type == "Squeeze":
            axes = vals[1].tolist() if len(vals) > 1 and vals[1] is not None else a.get("axes")
            return np.squeeze(vals[0], axis=tuple(axes) if axes is not None else None)
        if op_type == "Reshape":
            return vals[0].reshape(_reshape_target(vals[0].shape, vals[1], a.get("allowzero", 0), label, source))
        if op_type == "Flatten":
            ax = a.get("axis", 1)
            return vals[0].reshape(math.prod(vals[0].shape[:ax]), -1)
        if op_type == "Transpose":
            return np.transpose(vals[0], a.get("perm"))
        if op_type == "Relu":
            return np.maximum(vals[0], 0)
        if op_type in ("MatMul", "Gemm"):
            r = vals[0] @ vals[1]
            return r + vals[2] if len(vals) > 2 else r
    except ModelError:
        raise
    except Exception as e:
        raise ModelError(f"node {label}: cannot evaluate constant expression: {e}", source, nodes=[label]) from None
    raise ModelError(f"node {label}: constant folding of {op_type} is not supported", source, nodes=[label])
