"""Op handlers of the ONNX loader for the operators that pick, join or pad elements of a network value: Slice,
Split, Gather (constant indices), Concat (of network values and constants), Pad, and the ones that leave values
as they are or only flip their sign: Cast (to a float type), Neg.

Slice, Split and Gather become ``Select`` nodes (the constant index list along each axis), Pad a ``Pad`` node
(constant mode) or a ``Select`` (edge, reflect and wrap modes), Concat a ``Concat`` node, Neg a ``Scale``.
"""
from __future__ import annotations

import numpy as np
import onnx

from frontends.onnx.context import LoadContext, OnnxNode
from frontends.onnx.registry import handler
from verifier.ir.ops import Reshape, Scale
from verifier.ir.ops.slicing import Concat, Pad, Select

FLOAT_CASTS = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)


def _axis(ax: int, rank: int, ctx: LoadContext, n: OnnxNode) -> int:
    ax = int(ax)
    if not -rank <= ax < rank:
        raise ctx.error(n.label, f"axis {ax} is out of range for a value of rank {rank}")
    return ax + rank if ax < 0 else ax


def _const(ctx: LoadContext, n: OnnxNode, k: int, what: str):
    """Optional input ``k`` as a list of ints (None when omitted); it must be a constant."""
    if not n.has_input(k):
        return None
    if not n.is_const[k]:
        raise ctx.error(n.label, f"the {what} must be constant")
    return [int(v) for v in np.asarray(ctx.consts[n.inputs[k]]).reshape(-1)]


def _select(ctx: LoadContext, out: str, x: str, picks: list[tuple[int, np.ndarray]], label: str) -> None:
    """``out = x`` picked along each axis; axes whose pick is the identity are left out (no node at all when
    every one is)."""
    shape = ctx.shapes[x]
    picks = [(a, np.asarray(i, dtype=np.int64)) for a, i in picks
             if not (len(i) == shape[a] and np.array_equal(i, np.arange(shape[a])))]
    if not picks:
        ctx.alias[out] = x
        return
    ctx.add(out, Select(picks), [x], label)


@handler("Slice")
def slice_(ctx: LoadContext, n: OnnxNode) -> None:
    """Slice with constant starts, ends, axes and steps (inputs from opset 10, attributes before)."""
    x = ctx.name_of(n.inputs[0])
    shape = ctx.shapes[x]
    if len(n.inputs) > 1:
        starts, ends = _const(ctx, n, 1, "starts"), _const(ctx, n, 2, "ends")
        axes, steps = _const(ctx, n, 3, "axes"), _const(ctx, n, 4, "steps")
    else:
        starts, ends, axes, steps = (n.attrs.get(k) for k in ("starts", "ends", "axes", None))
    if starts is None or ends is None or len(starts) != len(ends):
        raise ctx.error(n.label, "Slice needs starts and ends of the same length")
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if len(axes) != len(starts) or len(steps) != len(starts):
        raise ctx.error(n.label, "Slice starts, ends, axes and steps differ in length")
    picks = []
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise ctx.error(n.label, "Slice step 0")
        a = _axis(a, len(shape), ctx, n)
        picks.append((a, np.arange(shape[a])[slice(s, e, st)]))  # numpy's clamping is ONNX's
    if len({a for a, _ in picks}) != len(picks):
        raise ctx.error(n.label, "Slice lists an axis twice")
    _select(ctx, n.out, x, picks, n.label)


@handler("Split")
def split(ctx: LoadContext, n: OnnxNode) -> None:
    """Split along an axis into the given sizes (input or attribute ``split``), ``num_outputs`` parts or
    equal parts, one ``Select`` per output."""
    x = ctx.name_of(n.inputs[0])
    shape = ctx.shapes[x]
    a = _axis(n.attrs.get("axis", 0), len(shape), ctx, n)
    sizes = _const(ctx, n, 1, "split sizes") if len(n.inputs) > 1 else n.attrs.get("split")
    k = len(n.outs)
    if sizes is None:
        parts = int(n.attrs.get("num_outputs", k))
        chunk = -(-shape[a] // parts)
        sizes = [min(chunk, shape[a] - i * chunk) for i in range(parts)]
    sizes = [int(s) for s in sizes]
    if len(sizes) != k or sum(sizes) != shape[a] or min(sizes) < 0:
        raise ctx.error(n.label, f"cannot split an axis of {shape[a]} into {sizes} for {k} outputs")
    start = 0
    for out, s in zip(n.outs, sizes):
        if out:
            _select(ctx, out, x, [(a, np.arange(start, start + s))], n.label)
        start += s


@handler("Gather")
def gather(ctx: LoadContext, n: OnnxNode) -> None:
    """Gather(x, constant indices) along ``axis``: a Select of the flat indices, then a Reshape when the
    index tensor is not 1-D."""
    if not n.is_const[1]:
        raise ctx.error(n.label, "Gather indices must be constant")
    x = ctx.name_of(n.inputs[0])
    shape = ctx.shapes[x]
    a = _axis(n.attrs.get("axis", 0), len(shape), ctx, n)
    idx = np.asarray(ctx.consts[n.inputs[1]]).astype(np.int64)
    if idx.size and (idx.min() < -shape[a] or idx.max() >= shape[a]):
        raise ctx.error(n.label, f"Gather index out of range for an axis of {shape[a]}")
    flat = np.where(idx < 0, idx + shape[a], idx).reshape(-1)
    out_shape = tuple(shape[:a]) + idx.shape + tuple(shape[a + 1:])
    if idx.ndim == 1:
        _select(ctx, n.out, x, [(a, flat)], n.label)
        return
    mid = n.out + "__gather"
    _select(ctx, mid, x, [(a, flat)], n.label)
    ctx.add(n.out, Reshape(out_shape), [ctx.name_of(mid)], n.label)


@handler("Concat")
def concat(ctx: LoadContext, n: OnnxNode) -> None:
    """Concat of network values and constants along ``axis``."""
    ins = [i for i in n.inputs if i]
    var = [ctx.name_of(i) for i, c in zip(n.inputs, n.is_const) if i and not c]
    rank = len(ctx.shapes[var[0]])
    a = _axis(n.attrs["axis"], rank, ctx, n)
    parts, k = [], 0
    for i in ins:
        if i in ctx.consts:
            c = np.asarray(ctx.consts[i], dtype=np.float64)
            if c.ndim != rank:
                raise ctx.error(n.label, f"constant input of rank {c.ndim}, the network value's is {rank}")
            if c.shape[a]:  # an empty constant adds nothing
                parts.append(ctx.tens(c))
        else:
            parts.append(k)
            k += 1
    ctx.add(n.out, Concat(a, parts), var, n.label)


@handler("Pad")
def pad(ctx: LoadContext, n: OnnxNode) -> None:
    """Pad with constant pads (input from opset 11, attribute before; optional axes from opset 18): constant
    mode as ``Pad``, edge / reflect / wrap as a ``Select`` of the repeated elements."""
    x = ctx.name_of(n.inputs[0])
    shape = ctx.shapes[x]
    r = len(shape)
    pads = _const(ctx, n, 1, "pads") if len(n.inputs) > 1 else n.attrs.get("pads")
    if pads is None:
        raise ctx.error(n.label, "Pad needs pads")
    axes = _const(ctx, n, 3, "axes") if len(n.inputs) > 3 else None
    axes = list(range(r)) if axes is None else [_axis(a, r, ctx, n) for a in axes]
    if len(pads) != 2 * len(axes):
        raise ctx.error(n.label, f"Pad has {len(pads)} pads for {len(axes)} axes")
    begin, end = [0] * r, [0] * r
    for i, a in enumerate(axes):
        begin[a], end[a] = int(pads[i]), int(pads[i + len(axes)])
    mode = n.attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode == "constant":
        if n.has_input(2):
            if not n.is_const[2]:
                raise ctx.error(n.label, "the Pad value must be constant")
            value = float(np.asarray(ctx.consts[n.inputs[2]]).reshape(-1)[0])
        else:
            value = float(n.attrs.get("value", 0.0))
        ctx.add(n.out, Pad(begin + end, value), [x], n.label)
        return
    if mode not in ("edge", "reflect", "wrap"):
        raise ctx.error(n.label, f"Pad mode {mode!r} is not supported")
    if min(begin + end) < 0:
        raise ctx.error(n.label, f"negative pads in {mode} mode are not supported")
    picks = [(a, np.pad(np.arange(shape[a]), (begin[a], end[a]), mode={"edge": "edge", "reflect": "reflect",
                                                                       "wrap": "wrap"}[mode]))
             for a in range(r) if begin[a] or end[a]]
    _select(ctx, n.out, x, picks, n.label)


@handler("Cast")
def cast(ctx: LoadContext, n: OnnxNode) -> None:
    """Cast of a network value to FLOAT or DOUBLE: the value itself (the graph computes in one float type)."""
    to = n.attrs.get("to")
    if to not in FLOAT_CASTS:
        name = onnx.TensorProto.DataType.Name(to) if to in onnx.TensorProto.DataType.values() else to
        raise ctx.error(n.label, f"Cast of a network value to {name} is not supported (only FLOAT or DOUBLE)")
    ctx.alias[n.out] = ctx.name_of(n.inputs[0])


@handler("Neg")
def neg(ctx: LoadContext, n: OnnxNode) -> None:
    x = ctx.name_of(n.inputs[0])
    ctx.add(n.out, Scale(ctx.tens(-np.ones(1)), None), [x], n.label)
