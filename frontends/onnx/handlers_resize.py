"""Op handlers of the ONNX loader for Resize and Upsample with constant scales / sizes / roi.

Every mode (nearest, linear, cubic; any coordinate transformation) resizes each axis on its own by a linear map,
so the node is an ``AxisMatrix``: one constant matrix per axis. The matrices are read off onnxruntime itself, the
reference the loaded graph is checked against: the node alone is run on probes that are one along one index of
one axis (and constant along the others), each giving a column of that axis' matrix, and the result is then
checked against onnxruntime on a random input; a node that is not such a separable linear map (say
``tf_crop_and_resize`` with an extrapolation value) is refused.
"""
from __future__ import annotations

import math

import numpy as np
import onnx.numpy_helper as nh
import torch
from onnx import TensorProto, helper

from frontends.onnx.context import LoadContext, OnnxNode
from frontends.onnx.reference import condense, open_session
from frontends.onnx.registry import handler
from verifier.ir.errors import ModelError
from verifier.ir.ops.reduce import AxisMatrix

PROBE_LIMIT = 4096  # probes (sum of the input's axis lengths) beyond which the node is refused


def _session(ctx: LoadContext, n: OnnxNode, in_shape, elem=TensorProto.DOUBLE):
    """An onnxruntime session of the node alone on an input of ``in_shape`` (its constant inputs as
    initializers, the model's opset)."""
    inits, names = [], ["x"]
    for k, name in enumerate(n.inputs[1:], 1):
        if not name:
            names.append("")
            continue
        if not n.is_const[k]:
            raise ctx.error(n.label, f"{n.op_type} scales, sizes and roi must be constant")
        inits.append(nh.from_array(np.asarray(ctx.consts[name]), f"c{k}"))
        names.append(f"c{k}")
    node = helper.make_node(n.op_type, names, ["y"])
    node.attribute.extend(helper.make_attribute(k, v) for k, v in n.attrs.items())
    g = helper.make_graph([node], "resize", [helper.make_tensor_value_info("x", elem, in_shape)],
                          [helper.make_tensor_value_info("y", elem, None)], inits)
    opset = ctx.opset or 13
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = min(m.ir_version, 8)
    try:
        return open_session(m.SerializeToString(), ctx.source)
    except ModelError as e:
        raise ctx.error(n.label, f"cannot run the node in onnxruntime: {condense(e)}") from None


def _run(sess, x: np.ndarray) -> np.ndarray:
    dt = np.float64 if sess.get_inputs()[0].type == "tensor(double)" else np.float32
    return sess.run(None, {"x": x.astype(dt)})[0].astype(np.float64)


@handler("Resize", "Upsample")
def resize(ctx: LoadContext, n: OnnxNode) -> None:
    x = ctx.name_of(n.inputs[0])
    shape = tuple(ctx.shapes[x])
    if sum(shape) > PROBE_LIMIT:
        raise ctx.error(n.label, f"{n.op_type} of an input of shape {shape} is too large to read off")
    try:  # in double where onnxruntime's kernel has it, so that the weights come out exact
        sess, tol = _session(ctx, n, shape), 1e-9
    except ModelError:
        sess, tol = _session(ctx, n, shape, TensorProto.FLOAT), 1e-5
    try:
        y0 = _run(sess, np.zeros(shape))
        out_shape = y0.shape
        if len(out_shape) != len(shape):
            raise ctx.error(n.label, f"{n.op_type} changed the rank {len(shape)} to {len(out_shape)}")
        mats = []
        for a, size in enumerate(shape):
            M = np.zeros((out_shape[a], size))
            for k in range(size):
                probe = np.zeros((size,))
                probe[k] = 1.0
                p = np.broadcast_to(probe.reshape([-1 if i == a else 1 for i in range(len(shape))]), shape).copy()
                y = _run(sess, p)
                M[:, k] = y[tuple(slice(None) if i == a else 0 for i in range(len(shape)))]
            if not (M.shape[0] == M.shape[1] and np.array_equal(M, np.eye(size))):
                mats.append((a, M))
        rng = np.random.default_rng(0)
        xr = rng.standard_normal(shape)
        ref = _run(sess, xr)
    except ModelError:
        raise
    except Exception as e:  # onnxruntime refused the probe
        raise ctx.error(n.label, f"onnxruntime cannot run the node: {condense(e)}") from None
    op = AxisMatrix([(a, torch.tensor(M, dtype=ctx.dtype)) for a, M in mats])
    ours = AxisMatrix([(a, torch.tensor(M, dtype=torch.float64)) for a, M in mats]).forward(
        torch.tensor(xr).unsqueeze(0))[0].numpy()
    scale = 1.0 + float(np.abs(ref).max()) if ref.size else 1.0
    if np.abs(y0).max(initial=0.0) > 0 or ours.shape != ref.shape or np.abs(ours - ref).max(initial=0.0) > tol * scale:
        raise ctx.error(n.label, f"{n.op_type} with these attributes is not a separable linear map of its input")
    if not mats:
        ctx.alias[n.out] = x
        return
    ctx.add(n.out, op, [x], n.label)
    if math.prod(ctx.shapes[n.out]) != math.prod(out_shape):
        raise ctx.error(n.label, "output shape differs from onnxruntime's")
