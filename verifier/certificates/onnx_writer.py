"""Write small feed-forward networks as ONNX with ``onnx.helper``: a list of :class:`Step` (Gemm, Conv, Relu,
Flatten, Add of two tensors) with a dynamic batch axis, in the form the verifier's ONNX front end loads exactly.

Used by the smoothing trainer's exporter (``nn.Sequential`` of Linear / Conv2d / ReLU / Flatten, via
:func:`module_steps`) and by ``verifier.training.export`` (which adds its own layers' steps)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import nn

KINDS = ("linear", "conv", "relu", "flatten", "add")


@dataclass
class Step:
    """One ONNX node: ``kind`` (one of :data:`KINDS`) from the tensors ``inputs`` to the tensor ``out``.

    ``weight``/``bias``: ``linear`` has weight (out, in) and ``y = x W^T + b``; ``conv`` has the Conv weight
    (C_out, C_in, kh, kw) and ``attrs`` strides, pads (top, left, bottom, right), dilations, group. Tensors may be
    torch tensors (with gradients, for the training-time bound graph) or numpy arrays."""

    kind: str
    inputs: tuple[str, ...]
    out: str
    weight: object = None
    bias: object = None
    attrs: dict = field(default_factory=dict)


def module_steps(m: nn.Module, cur: str, out: str) -> list[Step]:
    """The steps of one plain torch layer (Linear, Conv2d, ReLU, Flatten) reading ``cur`` and writing ``out``."""
    if isinstance(m, nn.Linear):
        return [Step("linear", (cur,), out, m.weight, m.bias)]
    if isinstance(m, nn.Conv2d):
        if isinstance(m.padding, str):
            raise ValueError("string padding is not supported by the ONNX writer")
        ph, pw = m.padding
        return [Step("conv", (cur,), out, m.weight, m.bias,
                     dict(strides=list(m.stride), pads=[ph, pw, ph, pw], dilations=list(m.dilation), group=m.groups))]
    if isinstance(m, nn.ReLU):
        return [Step("relu", (cur,), out)]
    if isinstance(m, nn.Flatten):
        return [Step("flatten", (cur,), out)]
    raise ValueError(f"the ONNX writer does not support {type(m).__name__}")


def sequential_steps(model: nn.Module) -> list[Step]:
    """Steps of an ``nn.Sequential`` of Linear / Conv2d / ReLU / Flatten from ``input``; the last writes ``t{k}``."""
    mods = list(model) if isinstance(model, nn.Sequential) else [model]
    steps: list[Step] = []
    cur = "input"
    for k, m in enumerate(mods):
        steps += module_steps(m, cur, f"t{k}")
        cur = f"t{k}"
    return steps


def _array(t) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def write_onnx(steps: list[Step], path: str | os.PathLike, input_shape, n_out: int, name: str = "model") -> str:
    """Write ``steps`` (reading the graph input ``input``) as an ONNX model with input ``input`` of shape
    ``(batch, *input_shape)`` and output ``logits`` ``(batch, n_out)``; checked by ``onnx.checker``."""
    nodes, inits = [], []
    for k, s in enumerate(steps):
        ins = list(s.inputs)
        if s.kind in ("linear", "conv"):
            inits.append(numpy_helper.from_array(_array(s.weight), f"W{k}"))
            ins.append(f"W{k}")
            if s.bias is not None:
                inits.append(numpy_helper.from_array(_array(s.bias), f"B{k}"))
                ins.append(f"B{k}")
        if s.kind == "linear":
            nodes.append(helper.make_node("Gemm", ins, [s.out], name=f"gemm{k}", transB=1))
        elif s.kind == "conv":
            w = _array(s.weight)
            nodes.append(helper.make_node("Conv", ins, [s.out], name=f"conv{k}", kernel_shape=list(w.shape[2:]),
                                          **s.attrs))
        elif s.kind == "relu":
            nodes.append(helper.make_node("Relu", ins, [s.out], name=f"relu{k}"))
        elif s.kind == "flatten":
            nodes.append(helper.make_node("Flatten", ins, [s.out], name=f"flatten{k}", axis=1))
        elif s.kind == "add":
            nodes.append(helper.make_node("Add", ins, [s.out], name=f"add{k}"))
        else:
            raise ValueError(f"unknown step kind {s.kind!r}")
    nodes.append(helper.make_node("Identity", [steps[-1].out if steps else "input"], ["logits"], name="output"))
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *input_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_out])], inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    onnx.save(onnx_model, str(path))
    return str(path)
