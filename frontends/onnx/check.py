"""The static half of the load-time model check: what must hold before the loader trusts a model.

* ``onnx.checker.check_model(full_check=True)``: the model is valid ONNX (known opsets and domains, SSA form,
  node schemas, types and shapes that onnx's inference accepts);
* every floating-point initializer and ``Constant`` is finite (onnxruntime runs NaN weights, but every bound
  computed from them is meaningless);
* onnxruntime makes a session of it (``OnnxReference.open``; the session is the one validation uses later).

Each refusal is a ``ModelError`` with the tool's reason on one line. The forward comparison with onnxruntime
on points of the spec is :mod:`frontends.onnx.compare`.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx.numpy_helper as nh

from verifier.ir.errors import ModelError

from .context import node_label
from .reference import OnnxReference, condense

FLOAT_ELEM = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                        onnx.TensorProto.BFLOAT16})


def run_checker(model: onnx.ModelProto, source: str) -> None:
    """onnx.checker with shape inference; a model over protobuf's 2 GB limit is left to onnxruntime."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except ValueError as e:
        if "2GB" in str(e) or "2 GB" in str(e):
            return
        raise ModelError(f"invalid ONNX model (onnx.checker): {condense(e)}", source) from None
    except Exception as e:  # ValidationError, InferenceError
        raise ModelError(f"invalid ONNX model (onnx.checker): {condense(e)}", source) from None


def check_finite(model: onnx.ModelProto, source: str) -> None:
    """Every floating-point initializer and Constant value is finite; the error names it and a node using it."""
    g = model.graph
    tensors = [(t.name, t, None) for t in g.initializer]
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    tensors.append((node.output[0] if node.output else a.t.name, a.t, node_label(node)))
    for name, t, made_by in tensors:
        if t.data_type not in FLOAT_ELEM:
            continue
        try:
            arr = nh.to_array(t)
        except Exception:  # unreadable data: the loader names it
            continue
        bad = ~np.isfinite(arr)
        if not bad.any():
            continue
        what = "NaN" if np.isnan(arr).any() else "inf"
        user = next((node_label(n) for n in g.node if name in n.input), None)
        nodes = [lab for lab in (made_by, user) if lab]
        where = f", used by node {user}" if user else ""
        kind = f"constant made by node {made_by}" if made_by else "initializer"
        raise ModelError(f"{kind} '{name}' holds {int(bad.sum())} non-finite value(s) ({what}){where}: "
                         "bounds on such weights mean nothing", source, nodes=nodes)


def open_checked(model: onnx.ModelProto, data: bytes, source: str, full: bool = True) -> OnnxReference:
    """The static checks (``full``: onnx.checker too), then the onnxruntime session of ``data``."""
    if full:
        run_checker(model, source)
    check_finite(model, source)
    return OnnxReference.open(data, source)
