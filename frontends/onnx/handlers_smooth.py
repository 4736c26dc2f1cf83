"""Op handlers of the ONNX loader for the smooth element-wise operators: Exp, Log, Sqrt, Reciprocal, Softplus,
Sin, Cos, Pow (a constant exponent; a constant positive base: ``exp(x ln c)``), and HardSigmoid (piecewise
linear: ``Clip(alpha x + beta, 0, 1)``, an affine node and a Clip)."""
from __future__ import annotations

import math

import numpy as np

from frontends.onnx.context import LoadContext, OnnxNode
from frontends.onnx.registry import handler
from verifier.ir.ops import Scale
from verifier.ir.ops.periodic import Cos, Sin
from verifier.ir.ops.piecewise import Clip
from verifier.ir.ops.smooth import Exp, Log, Pow, Reciprocal, Softplus, Sqrt

UNARY = {"Exp": Exp, "Log": Log, "Sqrt": Sqrt, "Reciprocal": Reciprocal, "Softplus": Softplus, "Sin": Sin,
         "Cos": Cos}


@handler(*UNARY)
def unary(ctx: LoadContext, n: OnnxNode) -> None:
    ctx.add(n.out, UNARY[n.op_type](n.label), [ctx.name_of(n.inputs[0])], n.label)


def _single_value(ctx: LoadContext, n: OnnxNode, k: int, what: str) -> float:
    c = np.asarray(ctx.consts[n.inputs[k]], dtype=np.float64).reshape(-1)
    if c.size == 0 or not np.all(c == c[0]):
        shape = list(np.shape(ctx.consts[n.inputs[k]]))
        raise ctx.error(n.label, f"Pow with a {what} that is not one value (shape {shape}) is not supported")
    if not math.isfinite(c[0]):
        raise ctx.error(n.label, f"Pow with a non-finite {what} ({c[0]}) is not supported")
    return float(c[0])


@handler("Pow")
def power(ctx: LoadContext, n: OnnxNode) -> None:
    """``x ** p`` with a constant ``p`` (every element the same); ``c ** x`` with a constant ``c > 0`` (one value)
    as ``exp(x ln c)``. The output keeps the base's shape: a constant that would broadcast it is refused."""
    base_const, exp_const = n.is_const[0], n.is_const[1]
    if base_const == exp_const:
        raise ctx.error(n.label, "Pow of two network values is not supported")
    if exp_const:
        x = ctx.name_of(n.inputs[0])
        if np.asarray(ctx.consts[n.inputs[1]]).size > 1:
            ctx.scale_const(ctx.consts[n.inputs[1]], ctx.shapes[x], n.label)  # must not broadcast x
        p = _single_value(ctx, n, 1, "exponent")
        if p == 1.0:
            ctx.alias[n.out] = x
        elif p == 0.0:  # x ** 0 = 1
            ctx.add(n.out, Scale(ctx.tens(np.float64(0.0)), ctx.tens(np.float64(1.0))), [x], n.label)
        else:
            ctx.add(n.out, Pow(p, n.label), [x], n.label)
        return
    x = ctx.name_of(n.inputs[1])
    if np.asarray(ctx.consts[n.inputs[0]]).size > 1:
        ctx.scale_const(ctx.consts[n.inputs[0]], ctx.shapes[x], n.label)
    c = _single_value(ctx, n, 0, "base")
    if c <= 0:
        raise ctx.error(n.label, f"Pow of a constant base {c:g} <= 0 to a network value is not supported")
    if c == 1.0:
        ctx.add(n.out, Scale(ctx.tens(np.float64(0.0)), ctx.tens(np.float64(1.0))), [x], n.label)
        return
    scaled = n.out + "__log_base"
    ctx.add(scaled, Scale(ctx.tens(np.float64(math.log(c))), None), [x], n.label)
    ctx.add(n.out, Exp(n.label), [scaled], n.label)


@handler("HardSigmoid")
def hard_sigmoid(ctx: LoadContext, n: OnnxNode) -> None:
    """``max(0, min(1, alpha x + beta))``: ``Scale(alpha, beta)`` then ``Clip(0, 1)``."""
    x = ctx.name_of(n.inputs[0])
    alpha, beta = float(n.attrs.get("alpha", 0.2)), float(n.attrs.get("beta", 0.5))
    lin = n.out + "__affine"
    ctx.add(lin, Scale(ctx.tens(np.float64(alpha)), ctx.tens(np.float64(beta))), [x], n.label)
    ctx.add(n.out, Clip(ctx.tens(np.float64(0.0)), ctx.tens(np.float64(1.0))), [lin], n.label)
