"""Segments of the layer graph and their operator norms.

A *segment* is a maximal chain of single-input affine nodes (Linear, Conv, Scale, Reshape,
Transpose, AveragePool) between nonlinearities. Its norm is the largest singular value of its
Jacobian, materialized when small (:data:`DENSE_LIMIT`, :data:`DENSE_MIN_SIDE`); larger segments
are bounded operator by operator (``norms.py``) and by the Schur bound of the whole chain.
:func:`masked_norm` bounds the segment with some of its inputs and outputs masked out (the
ReLUs that cannot be active on a box), never above the unmasked bound.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from verifier.certificates.lipschitz.norms import (
    NORM_INFLATE,
    abs_op,
    bias_free,
    op_norm_upper,
    power_iteration,
    schur_bound,
    spectral_norm,
)
from verifier.ir.graph import Graph, Node

# a segment's Jacobian is materialized (and its norm computed exactly) up to this many entries,
# when its smaller side is at most DENSE_MIN_SIDE (the cost of the eigenvalue problem)
DENSE_LIMIT = 1 << 22
DENSE_MIN_SIDE = 1024


@dataclass
class Segment:
    """A maximal chain of single-input affine nodes: ``start`` -> nodes[0] -> ... -> nodes[-1]."""

    start: str
    nodes: list[Node]
    in_shape: tuple[int, ...]

    @property
    def end(self) -> str:
        return self.nodes[-1].name

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.nodes[-1].shape

    @property
    def n_in(self) -> int:
        return int(math.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(math.prod(self.out_shape))

    def describe(self) -> str:
        return " > ".join(n.op.describe() for n in self.nodes)


def _chainable(node: Node) -> bool:
    return node.op.affine and node.op.n_inputs == 1 and len(node.inputs) == 1


def segments(graph: Graph) -> list[Segment]:
    consumers = graph.consumers()
    by_last: dict[str, Segment] = {}
    segs: list[Segment] = []
    for node in graph.nodes:
        if not _chainable(node):
            continue
        src = node.inputs[0]
        if src in by_last and len(consumers.get(src, [])) == 1 and src != graph.output_name:
            seg = by_last.pop(src)
            seg.nodes.append(node)
        else:
            seg = Segment(src, [node], graph.shape_of(src))
            segs.append(seg)
        by_last[node.name] = seg
    return segs


class SegOps:
    """float64 linear (bias-free) and |A| operators of a segment, batched over a leading axis."""

    def __init__(self, seg: Segment, device="cpu"):
        self.seg = seg
        self.ops = [bias_free(n.op.to(device=device, dtype=torch.float64)) for n in seg.nodes]
        absops = [abs_op(o) for o in self.ops]
        self.abs_ops = None if any(a is None for a in absops) else absops
        self.device = device

    def linear(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = op.forward(x)
        return x

    def absolute(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.abs_ops:
            x = op.forward(x)
        return x

    def dense(self, chunk: int = 1024, columns: torch.Tensor | None = None) -> torch.Tensor:
        """The Jacobian ``(n_out, n_in)`` in float64 (only the given input ``columns`` if asked)."""
        seg = self.seg
        idx = torch.arange(seg.n_in, device=self.device) if columns is None else columns
        cols = []
        for k in range(0, idx.numel(), chunk):
            sel = idx[k:k + chunk]
            m = sel.numel()
            e = torch.zeros(m, seg.n_in, dtype=torch.float64, device=self.device)
            e[torch.arange(m, device=self.device), sel] = 1.0
            y = self.linear(e.reshape(m, *seg.in_shape)).reshape(m, -1)
            cols.append(y)
        if not cols:
            return torch.zeros(seg.n_out, 0, dtype=torch.float64, device=self.device)
        return torch.cat(cols, 0).T.contiguous()


@dataclass
class SegInfo:
    """A segment's operators and norm: the certified upper bound, how it was found, the Jacobian if small."""

    seg: Segment
    ops: SegOps
    upper: float  # certified upper bound of ||A||
    dense: torch.Tensor | None  # Jacobian when materialized
    estimate: float | None = None  # power-iteration estimate (lower)
    how: str = ""


def analyze_segment(seg: Segment, dense_limit: int, estimate: bool, device="cpu") -> SegInfo:
    """The norm bound of one segment (``estimate``: also a power-iteration estimate)."""
    ops = SegOps(seg, device)
    if seg.n_in * seg.n_out <= dense_limit and min(seg.n_in, seg.n_out) <= DENSE_MIN_SIDE:
        J = ops.dense()
        up = spectral_norm(J)
        return SegInfo(seg, ops, up, J, up / NORM_INFLATE if estimate else None, "dense SVD")
    prod = 1.0
    shape = seg.in_shape
    for node in seg.nodes:
        prod *= op_norm_upper(node.op, shape)
        shape = node.shape
    up, how = prod, "product of operator norms"
    if ops.abs_ops is not None:
        s = schur_bound(ops.absolute, seg.in_shape, seg.out_shape, device=device)
        if s < up:
            up, how = s, "Schur bound"
    est = power_iteration(ops.linear, seg.in_shape, device=device) if estimate else None
    return SegInfo(seg, ops, up, None, est, how)


def masked_norm(info: SegInfo, d_in, d_out) -> float:
    """Upper bound on ``||D_out A D_in||`` (masks are bool tensors or None), never above ``info.upper``."""
    if d_in is not None and bool(d_in.all()):
        d_in = None
    if d_out is not None and bool(d_out.all()):
        d_out = None
    if d_in is None and d_out is None:
        return info.upper
    seg = info.seg
    if info.dense is not None:
        J = info.dense
        if d_out is not None:
            J = J[d_out.reshape(-1)]
        if d_in is not None:
            J = J[:, d_in.reshape(-1)]
        return min(info.upper, spectral_norm(J))
    n_i = int(d_in.sum()) if d_in is not None else seg.n_in
    n_o = int(d_out.sum()) if d_out is not None else seg.n_out
    if n_i * n_o == 0:
        return 0.0
    if n_i * seg.n_out <= DENSE_LIMIT and min(n_i, n_o) <= DENSE_MIN_SIDE:
        # few possibly-active neurons: materialize only the columns that remain
        cols = torch.nonzero(d_in.reshape(-1)).flatten() if d_in is not None else torch.arange(seg.n_in)
        J = info.ops.dense(columns=cols.to(info.ops.device))
        if d_out is not None:
            J = J[d_out.reshape(-1)]
        return min(info.upper, spectral_norm(J))
    if info.ops.abs_ops is None:
        return info.upper
    s = schur_bound(info.ops.absolute, seg.in_shape, seg.out_shape, d_in, d_out, device=info.ops.device)
    return min(info.upper, s)
