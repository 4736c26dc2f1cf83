"""Lipschitz certificates (l2) for the networks of the layer graph: the segment analysis and the product bound.

For a logit map ``f`` that is L-Lipschitz in l2, a margin ``m = f_y(x) - max_j f_j(x) > 0``
certifies that the class stays ``y`` within l2 radius ``m / (sqrt(2) L)``; per class pair,
``min_j (f_y - f_j)(x) / L_yj`` with ``L_yj`` a Lipschitz bound of ``f_y - f_j`` is tighter.
An l_inf radius follows from ``||d||_2 <= sqrt(n) ||d||_inf``: ``r_inf = r_2 / sqrt(n)``.

This module holds :class:`Analysis`, the per-graph structure (cached on the graph by
:func:`segment_analysis`), and :func:`product_bound`: a bound on ``L`` as a product (along the
DAG: products along paths, sums at residual additions) of operator-norm upper bounds of the
*segments* (``segments.py``: maximal chains of single-input affine nodes between nonlinearities,
their norms from ``norms.py``). Power iteration gives a *lower* estimate of each norm; it is
reported next to the upper bound but never used as one. Pair bounds collapse the last segment
into one vector per class pair (the rows ``f_y - f_j`` of the last layer).

The rest of the package:

- ``global_bound.py``: :func:`global_lipschitz`, the product bound or LipSDP-Neuron (``lipsdp.py``,
  feed-forward chains of dense layers, solved with cvxpy and its certificate re-checked in float64;
  the product bound with a message when the network does not fit, the solver fails or time runs out);
- ``local.py``: bounds on an input box, with the ReLUs that cannot be active there (from the core's
  interval or CROWN bounds) masked out of the segments next to them; each masked segment norm is at
  most the unmasked one, and the result is clipped to the global bound, so it is never larger;
- ``radii.py``: certified radii from the logits and the pair bounds;
- ``evaluate.py``: float64 logits and exact gradient norms at sample points (lower bounds of the
  constants; the fast path's check and ``clever.py``'s CLEVER estimate build on them);
- ``fastpath.py``: ``unsat`` for robustness specs a Lipschitz radius already covers.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from verifier.certificates.lipschitz.evaluate import graph_cache
from verifier.certificates.lipschitz.norms import NORM_INFLATE, maxpool_factor, vjp
from verifier.certificates.lipschitz.results import LipschitzBound
from verifier.certificates.lipschitz.segments import DENSE_LIMIT, Segment, analyze_segment, segments
from verifier.certificates.threads import few_threads
from verifier.ir.errors import UnsupportedError
from verifier.ir.graph import Graph
from verifier.ir.ops import AddNodes, MaxPool, ReLU, Sigmoid, Tanh

# activation slopes: every supported activation is slope-restricted in [0, beta]
ACT_BETA = {ReLU: 1.0, Tanh: 1.0, Sigmoid: 0.25}


class Analysis:
    """Cached per-graph structure: segments, their norms, the pair-bound tail."""

    def __init__(self, graph: Graph, dense_limit: int = DENSE_LIMIT, estimate: bool = False):
        self.graph = graph
        self.consumers = graph.consumers()
        self.segs = segments(graph)
        self.seg_by_end = {s.end: s for s in self.segs}
        self.members = {n.name for s in self.segs for n in s.nodes}
        for node in graph.nodes:
            if node.name in self.members:
                continue
            op = node.op
            if isinstance(op, AddNodes) or isinstance(op, (ReLU, Tanh, Sigmoid, MaxPool)):
                continue
            raise UnsupportedError(f"no Lipschitz rule for node '{node.name}' ({op.describe()})")
        dev = graph.device
        self.info = {s.end: analyze_segment(s, dense_limit, estimate, dev) for s in self.segs}
        # pair-bound tail: the segment that produces the output
        self.tail = self.seg_by_end.get(graph.output_name)
        self.tail_J = None
        if self.tail is not None:
            info = self.info[self.tail.end]
            if info.dense is not None:
                self.tail_J = info.dense
            elif self.tail.n_out * self.tail.n_in <= 4 * dense_limit and self.tail.n_out <= 4096:
                eye = torch.eye(self.tail.n_out, dtype=torch.float64, device=dev)
                self.tail_J = vjp(info.ops.linear, eye, self.tail.in_shape).reshape(self.tail.n_out, -1)

    def by_first(self) -> dict[str, Segment]:
        """Segments by the name of their first node."""
        return {s.nodes[0].name: s for s in self.segs}

    # ------------------------------------------------------------------ propagation
    def propagate(self, seg_norm) -> dict[str, float]:
        g = self.graph
        L = {g.input_name: 1.0}
        for node in g.nodes:
            if node.name in self.seg_by_end:
                seg = self.seg_by_end[node.name]
                L[node.name] = seg_norm(seg) * L[seg.start]
            elif node.name in self.members:
                continue
            elif isinstance(node.op, AddNodes):
                a, b = node.inputs
                L[node.name] = abs(node.op.s0) * L[a] + abs(node.op.s1) * L[b]
            elif isinstance(node.op, MaxPool):
                L[node.name] = maxpool_factor(node.op) * L[node.inputs[0]]
            else:
                L[node.name] = ACT_BETA[type(node.op)] * L[node.inputs[0]]
        return L

    def pairs(self, L: dict[str, float], d_in=None) -> np.ndarray | None:
        """(K, K) bounds on Lip(f_i - f_j) from the collapsed tail, or None."""
        if self.tail_J is None:
            return None
        J = self.tail_J
        if d_in is not None:
            J = J[:, d_in.reshape(-1)]
        Lh = L[self.tail.start]
        K = J.shape[0]
        P = np.zeros((K, K))
        for i in range(K):
            P[i] = (J[i:i + 1] - J).norm(dim=1).cpu().numpy()
        P = P * NORM_INFLATE * Lh
        np.fill_diagonal(P, 0.0)
        return P

    def global_bound(self) -> LipschitzBound:
        L = self.propagate(lambda s: self.info[s.end].upper)
        Lout = L[self.graph.output_name]
        P = self.pairs(L)
        if P is not None:
            P = np.minimum(P, math.sqrt(2.0) * Lout)
            np.fill_diagonal(P, 0.0)
        layers = [dict(name=s.end, op=s.describe(), upper=self.info[s.end].upper,
                       estimate=self.info[s.end].estimate, how=self.info[s.end].how) for s in self.segs]
        return LipschitzBound(Lout, P, "product", layers)

    # ------------------------------------------------------------------ local masks
    def masks(self, bounds: dict, b: int, tol_rel: float = 1e-9) -> dict[str, torch.Tensor]:
        """Per ReLU node: bool mask of neurons that may be active on box ``b``."""
        out = {}
        for node in self.graph.nodes:
            if isinstance(node.op, ReLU):
                lo, hi = bounds[node.inputs[0]]
                lo, hi = lo[b].double(), hi[b].double()
                tol = tol_rel * (1.0 + torch.maximum(lo.abs(), hi.abs()))
                out[node.name] = hi > -tol
        return out

    def seg_masks(self, seg: Segment, masks: dict):
        d_in = masks.get(seg.start)
        d_out = None
        cons = self.consumers.get(seg.end, [])
        if len(cons) == 1 and cons[0] in masks and seg.end != self.graph.output_name:
            d_out = masks[cons[0]]
        return d_in, d_out


def segment_analysis(graph: Graph, dense_limit: int = DENSE_LIMIT, estimate: bool = False) -> Analysis:
    """The :class:`Analysis` of ``graph`` (cached on the graph per ``dense_limit`` and ``estimate``)."""
    key = ("analysis", dense_limit, estimate)
    c = graph_cache(graph)
    if key not in c:
        c[key] = Analysis(graph, dense_limit, estimate)
    return c[key]


@few_threads
def product_bound(graph: Graph, dense_limit: int = DENSE_LIMIT, estimate: bool = False) -> LipschitzBound:
    """Global product bound (cached per graph). ``estimate``: also power-iterate every segment."""
    t0 = time.perf_counter()
    a = segment_analysis(graph, dense_limit, estimate)
    res = a.global_bound()
    res.time_s = time.perf_counter() - t0
    return res
