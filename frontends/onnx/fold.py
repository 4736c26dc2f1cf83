"""Constant folding of the ONNX loader: nodes whose inputs are all constants are evaluated with numpy at load time.

``fold_node`` is the loader's first step on each node: ``Constant`` and ``Shape`` always fold (``Shape``
reads the static shape of a graph value), any other node folds when all its inputs are constants,
and the constant-only op types (``CONST_ONLY``) are refused on a graph value. ``fold`` evaluates one
op type on constant values (the ``FOLDERS`` table); ``reshape_target`` resolves the ``0`` and ``-1``
of a Reshape target shape (the Reshape handler uses it too).
"""
from __future__ import annotations

import math

import numpy as np
import onnx
import onnx.numpy_helper as nh

from frontends.onnx.context import LoadContext, OnnxNode, node_error
from verifier.ir.errors import ModelError

# op types the loader evaluates on constants only (no handler; refused on a graph value)
CONST_ONLY = {"Shape", "Constant", "ConstantOfShape", "Equal", "Where", "Expand"}


def fold_node(ctx: LoadContext, n: OnnxNode) -> bool:
    """Fold ``n`` into ``ctx.consts`` when it is constant: True if it was folded, False if it is a graph op."""
    if n.op_type == "Constant":
        ctx.consts[n.out] = constant_value(n.attrs, n.label, ctx.source)
        return True
    if n.op_type == "Shape":
        src = ctx.name_of(n.inputs[0])
        shape = tuple(ctx.consts[src].shape if src in ctx.consts else ctx.shapes[src])
        # opset 15's start / end: a slice of the dims, negative from the back, clamped (as Python's slicing)
        ctx.consts[n.out] = np.array(shape[n.attrs.get("start", 0):n.attrs.get("end", None)], dtype=np.int64)
        return True
    if all(n.is_const):
        ctx.consts[n.out] = fold(n.op_type, [ctx.consts.get(i) for i in n.inputs], n.attrs, n.label, ctx.source)
        return True
    if n.op_type in CONST_ONLY:
        raise ModelError(f"node {n.label} is only supported on constant inputs", ctx.source, nodes=[n.label])
    return False


def constant_value(a: dict, label, source) -> np.ndarray:
    """The value of a ``Constant`` node with attributes ``a``."""
    if "value" in a:
        return nh.to_array(a["value"])
    for key in ("value_float", "value_int"):
        if key in a:
            return np.array(a[key])
    for key in ("value_floats", "value_ints"):
        if key in a:
            return np.array(list(a[key]))
    raise node_error(label, "Constant without a supported value attribute", source)


def reshape_target(in_shape, target, allowzero, label, source) -> tuple[int, ...]:
    """The shape that Reshape to ``target`` gives a value of shape ``in_shape`` (``0`` copies, one ``-1`` infers)."""
    target = [int(t) for t in np.asarray(target).reshape(-1)]
    res = []
    for i, t in enumerate(target):
        if t == 0 and not allowzero:
            res.append(in_shape[i])
        else:
            res.append(t)
    total = math.prod(in_shape)
    if res.count(-1) > 1:
        raise node_error(label, f"Reshape target {target} has more than one -1", source)
    if -1 in res:
        known = math.prod(r for r in res if r != -1)
        res[res.index(-1)] = total // known if known else 0
    if math.prod(res) != total:
        raise node_error(label, f"cannot reshape {tuple(in_shape)} to {target}", source)
    return tuple(res)


def fold(op_type, vals, a, label, source) -> np.ndarray:
    """Evaluate a node of ``op_type`` whose inputs are the constants ``vals`` (None for an omitted one)."""
    folder = FOLDERS.get(op_type)
    if folder is not None:
        try:
            return folder(vals, a, label, source)
        except ModelError:
            raise
        except Exception as e:
            raise node_error(label, f"cannot evaluate constant expression: {e}", source) from None
    raise node_error(label, f"constant folding of {op_type} is not supported", source)


# --------------------------------------------------------------------------- the folders: (vals, attrs, label, source)
def _identity(vals, a, label, source):
    return vals[0]


def _cast(vals, a, label, source):
    return vals[0].astype(onnx.helper.tensor_dtype_to_np_dtype(a["to"]))


def _arithmetic(op_type):
    def evaluate(vals, a, label, source):
        x, y = vals
        if op_type == "Div" and np.issubdtype(x.dtype, np.integer):
            return x // y
        return {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op_type](x, y)
    return evaluate


def _gather(vals, a, label, source):
    return np.take(vals[0], vals[1], axis=a.get("axis", 0))


def _concat(vals, a, label, source):
    return np.concatenate([np.atleast_1d(v) for v in vals], axis=a.get("axis", 0))


def _unsqueeze(vals, a, label, source):
    axes = vals[1].tolist() if len(vals) > 1 and vals[1] is not None else a["axes"]
    v = vals[0]
    nd = v.ndim + len(axes)
    for ax in sorted(x + nd if x < 0 else x for x in axes):
        v = np.expand_dims(v, ax)
    return v


def _squeeze(vals, a, label, source):
    axes = vals[1].tolist() if len(vals) > 1 and vals[1] is not None else a.get("axes")
    return np.squeeze(vals[0], axis=tuple(axes) if axes is not None else None)


def _reshape(vals, a, label, source):
    return vals[0].reshape(reshape_target(vals[0].shape, vals[1], a.get("allowzero", 0), label, source))


def _flatten(vals, a, label, source):
    ax = a.get("axis", 1)
    return vals[0].reshape(math.prod(vals[0].shape[:ax]), -1)


def _transpose(vals, a, label, source):
    return np.transpose(vals[0], a.get("perm"))


def _relu(vals, a, label, source):
    return np.maximum(vals[0], 0)


def _matmul(vals, a, label, source):
    return vals[0] @ vals[1]


def _gemm(vals, a, label, source):
    """Y = alpha * A' B' + beta * C, A' = A^T when transA, B' = B^T when transB, C optional (broadcast)."""
    x, w = vals[0], vals[1]
    if a.get("transA", 0):
        x = x.T
    if a.get("transB", 0):
        w = w.T
    y = x @ w
    alpha, beta = a.get("alpha", 1.0), a.get("beta", 1.0)
    if alpha != 1.0:
        y = alpha * y
    c = vals[2] if len(vals) > 2 else None
    if c is not None:
        y = y + (beta * c if beta != 1.0 else c)
    return y


def _slice(vals, a, label, source):
    x = vals[0]
    if len(vals) > 1:
        starts, ends = vals[1].tolist(), vals[2].tolist()
        axes = vals[3].tolist() if len(vals) > 3 and vals[3] is not None else list(range(len(starts)))
        steps = vals[4].tolist() if len(vals) > 4 and vals[4] is not None else [1] * len(starts)
    else:
        starts, ends = a["starts"], a["ends"]
        axes, steps = a.get("axes", list(range(len(starts)))), [1] * len(starts)
    idx = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        idx[ax] = slice(int(s), int(e), int(st))  # numpy's clamping is ONNX's
    return x[tuple(idx)]


def _constant_of_shape(vals, a, label, source):
    value = nh.to_array(a["value"]).reshape(-1) if "value" in a else np.zeros(1, dtype=np.float32)
    return np.full(tuple(int(d) for d in vals[0].reshape(-1)), value[0], dtype=value.dtype)


def _reduce_sum(vals, a, label, source):
    """ReduceSum of a constant: axes from the second input (opset 13) or the attribute; none: all, or none with
    ``noop_with_empty_axes``."""
    axes = vals[1] if len(vals) > 1 and vals[1] is not None else a.get("axes")
    axes = [int(x) for x in np.asarray(axes if axes is not None else [], dtype=np.int64).reshape(-1)]
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            return vals[0]
        axes = list(range(vals[0].ndim))
    return np.sum(vals[0], axis=tuple(axes), keepdims=bool(a.get("keepdims", 1))).astype(vals[0].dtype)


def _elementwise(fn):
    def evaluate(vals, a, label, source):
        return fn(vals[0])
    return evaluate


FOLDERS = {
    "Identity": _identity, "Dropout": _identity, "Cast": _cast,
    **{t: _arithmetic(t) for t in ("Add", "Sub", "Mul", "Div")},
    "Gather": _gather, "Concat": _concat, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Reshape": _reshape,
    "Flatten": _flatten, "Transpose": _transpose, "Relu": _relu, "MatMul": _matmul, "Gemm": _gemm,
    "Slice": _slice, "ConstantOfShape": _constant_of_shape, "Neg": _elementwise(np.negative),
    "Abs": _elementwise(np.abs), "Sign": _elementwise(np.sign), "Floor": _elementwise(np.floor),
    "ReduceSum": _reduce_sum,
    # shape arithmetic (as in the ml4acopf nets: Expand(shape, Where(Equal(c, shape), ones, c)))
    "Equal": lambda vals, a, label, source: np.equal(vals[0], vals[1]),
    "Where": lambda vals, a, label, source: np.where(vals[0], vals[1], vals[2]),
    "Expand": lambda vals, a, label, source: np.broadcast_to(
        vals[0], np.broadcast_shapes(vals[0].shape, tuple(int(v) for v in np.asarray(vals[1]).reshape(-1)))).copy(),
    # smooth element-wise ops (handlers_smooth) of constants
    **{t: _elementwise(fn) for t, fn in (("Exp", np.exp), ("Log", np.log), ("Sqrt", np.sqrt), ("Sin", np.sin),
                                         ("Cos", np.cos), ("Reciprocal", np.reciprocal))},
    "Softplus": _elementwise(lambda x: np.logaddexp(x, np.zeros_like(x))),
    "HardSigmoid": lambda vals, a, label, source: np.clip(
        np.float32(a.get("alpha", 0.2)).astype(vals[0].dtype) * vals[0] + np.float32(a.get("beta", 0.5)), 0, 1
    ).astype(vals[0].dtype),
    "Pow": lambda vals, a, label, source: np.power(vals[0], vals[1]).astype(vals[0].dtype),
}
