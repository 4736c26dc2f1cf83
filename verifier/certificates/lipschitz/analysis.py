"""Lipschitz certificates (l2) for the networks of the layer graph.

For a logit map ``f`` that is L-Lipschitz in l2, a margin ``m = f_y(x) - max_j f_j(x) > 0``
certifies that the class stays ``y`` within l2 radius ``m / (sqrt(2) L)``; per class pair,
``min_j (f_y - f_j)(x) / L_yj`` with ``L_yj`` a Lipschitz bound of ``f_y - f_j`` is tighter.
An l_inf radius follows from ``||d||_2 <= sqrt(n) ||d||_inf``: ``r_inf = r_2 / sqrt(n)``.

What is computed here:

- :func:`global_lipschitz` (``method='product'``): a bound on ``L`` as a product (along the
  DAG: products along paths, sums at residual additions) of operator-norm upper bounds of
  *segments*, i.e. maximal chains of single-input affine nodes (Linear, Conv, Scale,
  Reshape, Transpose, AveragePool) between nonlinearities. A segment's norm is the largest
  singular value of its Jacobian, materialized when small (float64 SVD); larger segments
  are bounded operator by operator: dense weights by SVD, convolutions *as operators*
  (never as dense matrices) by the exact norm of the circular convolution that contains
  the zero-padded one (FFT of the kernel, one small SVD per frequency), and everything by
  the Schur bound ``sqrt(max row sum |A| * max column sum |A|)`` computed with autograd
  through the |weights| operator. Power iteration (autograd of the operator, :func:`power_iteration`)
  gives a *lower* estimate of each norm; it is reported next to the upper bound but never
  used as one (it underestimates). Pair bounds collapse the last segment into one vector
  per class pair (the rows ``f_y - f_j`` of the last layer).
- ``method='lipsdp'``: LipSDP-Neuron for feed-forward chains of dense layers (``lipsdp.py``, solved
  with cvxpy and its certificate re-checked in float64). When the network does not fit, the solver
  fails, or time runs out, the product bound is returned with a message.
- :func:`local_lipschitz`: on an input box, ReLUs that cannot be active there (from the
  core's interval or CROWN bounds) are masked out of the segments next to them; each
  masked segment norm is at most the unmasked one, and the result is clipped to the global
  bound, so it is never larger.
- ``gradient_norms``: exact gradient norms at sample points (lower bounds of the constants; the
  fast path's check and ``clever.py``'s CLEVER estimate build on them).
"""
from __future__ import annotations

import contextlib
import copy
import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from verifier.bounds.crown import intermediate_bounds
from verifier.certificates.smoothing.certify import torch_threads
from verifier.ir.errors import UnsupportedError
from verifier.ir.graph import Graph, Node
from verifier.ir.ops import AddNodes, AveragePool, Conv, Linear, MaxPool, ReLU, Reshape, Scale, Sigmoid, Tanh, Transpose

# a segment's Jacobian is materialized (and its norm computed exactly) up to this many entries,
# when its smaller side is at most DENSE_MIN_SIDE (the cost of the eigenvalue problem)
DENSE_LIMIT = 1 << 22
DENSE_MIN_SIDE = 1024
# relative inflation of every float64 norm (covers eigenvalue / FFT rounding many times over)
NORM_INFLATE = 1.0 + 1e-8
# activation slopes: every supported activation is slope-restricted in [0, beta]
ACT_BETA = {ReLU: 1.0, Tanh: 1.0, Sigmoid: 0.25}


# CPU threads for the (small, dense) linear algebra here. Multi-threaded eigen-decompositions of
# a few hundred rows are slower than one thread already, and dramatically slower (100x measured)
# when other processes keep the cores busy.
LINALG_THREADS = 1


@contextlib.contextmanager
def linalg_threads(n: int | None = LINALG_THREADS):
    """Limit torch's and the BLAS libraries' CPU threads (threadpoolctl when installed)."""
    with torch_threads(n):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - comes with scikit-learn
            yield
            return
        with threadpool_limits(n):
            yield


def _few_threads(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if torch.get_num_threads() == LINALG_THREADS:  # already inside (or nothing to change)
            return fn(*args, **kwargs)
        with linalg_threads():
            return fn(*args, **kwargs)

    return wrapper


# =========================================================================== results
@dataclass
class LipschitzBound:
    """Upper bounds on l2 Lipschitz constants of a graph's output map."""

    L: float  # bound on Lip(x -> f(x)) for the whole output vector
    pair: np.ndarray | None = None  # (K, K): bound on Lip(f_i - f_j); diagonal 0
    method: str = "product"
    layers: list[dict] = field(default_factory=list)  # per segment / activation: name, upper, estimate
    time_s: float = 0.0
    message: str = ""

    def pair_bound(self, i: int, j: int) -> float:
        if self.pair is not None:
            return float(self.pair[i, j])
        return math.sqrt(2.0) * self.L

    def pair_matrix(self, k: int) -> np.ndarray:
        if self.pair is not None:
            return self.pair
        m = np.full((k, k), math.sqrt(2.0) * self.L)
        np.fill_diagonal(m, 0.0)
        return m


@dataclass
class Radius:
    prediction: int  # argmax of the logits at x
    margin: float  # f_pred - max_{j != pred} f_j (float64)
    l2: float  # certified l2 radius (0 if none)
    linf: float  # certified l_inf radius, l2 / sqrt(n)


# =========================================================================== segments
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


def _bias_free(op):
    """A copy of an affine op without its constant term (the linear part)."""
    if isinstance(op, (Linear, Conv)):
        new = copy.copy(op)
        new.bias = None
        return new
    if isinstance(op, Scale):
        return Scale(op.scale, None)
    return op


def _abs_op(op):
    """The op with |weights| and no constant term (entrywise |A| of its matrix), or None."""
    if isinstance(op, Linear):
        return Linear(op.weight.abs(), None)
    if isinstance(op, Conv):
        new = copy.copy(op)
        new.weight, new.bias = op.weight.abs(), None
        return new
    if isinstance(op, Scale):
        return Scale(op.scale.abs() if op.scale is not None else None, None)
    if isinstance(op, (Reshape, Transpose, AveragePool)):
        return op
    return None


class _SegOps:
    """float64 linear (bias-free) and |A| operators of a segment, batched over a leading axis."""

    def __init__(self, seg: Segment, device="cpu"):
        self.seg = seg
        self.ops = [_bias_free(n.op.to(device=device, dtype=torch.float64)) for n in seg.nodes]
        absops = [_abs_op(o) for o in self.ops]
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


def _vjp(fn, v: torch.Tensor, in_shape) -> torch.Tensor:
    x = torch.zeros((v.shape[0], *in_shape), dtype=v.dtype, device=v.device, requires_grad=True)
    with torch.enable_grad():
        y = fn(x)
        (g,) = torch.autograd.grad(y, x, grad_outputs=v.reshape(y.shape))
    return g


# =========================================================================== operator norms
def spectral_norm(a: torch.Tensor) -> float:
    """Largest singular value of a dense matrix, slightly inflated.

    Computed as the square root of the top eigenvalue of the smaller Gram matrix in float64
    (much faster than an SVD; the rounding of the Gram product and of the eigenvalue is
    far below the inflation).
    """
    if a.numel() == 0:
        return 0.0
    a = a.double()
    g = a @ a.T if a.shape[0] <= a.shape[1] else a.T @ a
    lam = float(torch.linalg.eigvalsh(g)[-1])
    return math.sqrt(max(lam, 0.0)) * NORM_INFLATE


@_few_threads
def power_iteration(fn, in_shape, iters: int = 200, tol: float = 1e-8, seed: int = 0,
                    dtype=torch.float64, device="cpu") -> float:
    """Estimate ``||A||_2`` of a linear map ``fn`` (batched over a leading axis) by power iteration on A^T A.

    ``A^T A v`` is taken with autograd, so convolutions run as operators. The result
    ``||A v||`` for a unit ``v`` is a LOWER bound on the norm (an estimate, not a certificate).
    """
    gen = torch.Generator(device=device).manual_seed(seed)
    v = torch.randn((1, *in_shape), generator=gen, dtype=dtype, device=device)
    v = v / v.norm()
    est = 0.0
    for _ in range(iters):
        x = v.detach().requires_grad_(True)
        with torch.enable_grad():
            y = fn(x)
            (u,) = torch.autograd.grad(0.5 * (y * y).sum(), x)
        nrm = float(u.norm())
        if nrm == 0.0:
            return 0.0
        v = (u / nrm).detach()
        new = math.sqrt(nrm)
        if abs(new - est) <= tol * new:
            break
        est = new
    with torch.no_grad():
        return float(fn(v).norm())


@_few_threads
def conv_fft_bound(conv: Conv, in_shape) -> float:
    """Upper bound on the l2 operator norm of a zero-padded (strided, dilated, grouped) convolution.

    The padded input embeds isometrically into an ``N``-periodic grid (N = padded size);
    the stride-1 valid convolution is then a restriction of the circular convolution on
    that grid, whose singular values are those of the ``C_out x C_in`` matrices of the
    kernel's DFT at each frequency (Sedghi et al. 2019), so the norm is at most the largest
    of those. A stride ``s`` convolution is first rewritten as a stride-1 convolution of the
    ``s x s`` polyphase components of the input (``C_in * s^2`` channels, kernel
    ``ceil(k / s)``), a permutation of the input, which keeps the bound tight. Dilation is
    expanded into the kernel; groups give a block-diagonal operator (max over groups).
    """
    w = conv.weight.detach().to(torch.float64)
    nd = conv.nd
    cout, cin_g = w.shape[:2]
    k = list(w.shape[2:])
    dil = list(conv.dilations)
    if any(d > 1 for d in dil):
        keff = [(kk - 1) * d + 1 for kk, d in zip(k, dil)]
        wd = torch.zeros(cout, cin_g, *keff, dtype=torch.float64, device=w.device)
        wd[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dil)] = w
        w, k = wd, keff
    spatial = list(in_shape[-nd:])
    begin = list(conv.pads)
    end = [conv.fpad[2 * (nd - 1 - i) + 1] for i in range(nd)]
    padded = [s_ + b + e for s_, b, e in zip(spatial, begin, end)]
    st = [int(v) for v in conv.strides]
    if any(v > 1 for v in st):
        kq = [-(-kk // v) for kk, v in zip(k, st)]  # ceil(k / s)
        wp = torch.zeros(cout, cin_g, *[q * v for q, v in zip(kq, st)], dtype=torch.float64, device=w.device)
        wp[(slice(None), slice(None)) + tuple(slice(0, kk) for kk in k)] = w
        view = [cout, cin_g]
        for q, v in zip(kq, st):
            view += [q, v]
        wp = wp.reshape(view)
        perm = [0, 1] + [3 + 2 * i for i in range(nd)] + [2 + 2 * i for i in range(nd)]
        w = wp.permute(*perm).reshape(cout, cin_g * math.prod(st), *kq)
        k = kq
        padded = [-(-p // v) for p, v in zip(padded, st)]
    size = [max(p, kk) for p, kk in zip(padded, k)]
    cin_eff = w.shape[1]
    dims = tuple(range(2, 2 + nd))
    what = torch.fft.fftn(w, s=size, dim=dims)  # (cout, cin_eff, *size) complex
    what = what.permute(*range(2, 2 + nd), 0, 1).reshape(-1, cout, cin_eff)
    g = conv.group
    cog = cout // g
    best = 0.0
    for gi in range(g):
        blk = what[:, gi * cog:(gi + 1) * cog, :]
        best = max(best, float(torch.linalg.matrix_norm(blk, ord=2).max()))
    return best * NORM_INFLATE


def _schur(abs_fn, in_shape, out_shape, d_in=None, d_out=None, dtype=torch.float64, device="cpu") -> float:
    """``sqrt(max_i sum_j |A_ij| * max_j sum_i |A_ij|)`` for ``D_out A D_in`` given the |A| operator."""
    ones_in = torch.ones((1, *in_shape), dtype=dtype, device=device)
    if d_in is not None:
        ones_in = ones_in * d_in.reshape(1, *in_shape).to(dtype)
    with torch.no_grad():
        rows = abs_fn(ones_in).reshape(-1)
    ones_out = torch.ones((1, *out_shape), dtype=dtype, device=device)
    if d_out is not None:
        m = d_out.reshape(-1).to(dtype)
        rows = rows * m
        ones_out = ones_out * m.reshape(1, *out_shape)
    cols = _vjp(abs_fn, ones_out, in_shape).reshape(-1)
    if d_in is not None:
        cols = cols * d_in.reshape(-1).to(dtype)
    r = float(rows.max()) if rows.numel() else 0.0
    c = float(cols.max()) if cols.numel() else 0.0
    return math.sqrt(max(r, 0.0) * max(c, 0.0)) * NORM_INFLATE


@_few_threads
def op_norm_upper(op, in_shape) -> float:
    """Upper bound on the l2 operator norm of one affine operator's linear part."""
    if isinstance(op, Linear):
        return spectral_norm(op.weight)
    if isinstance(op, Scale):
        return float(op.scale.abs().max()) * NORM_INFLATE if op.scale is not None else 1.0
    if isinstance(op, (Reshape, Transpose)):
        return 1.0
    if isinstance(op, Conv):
        op64 = op.to(dtype=torch.float64)
        a = _abs_op(op64)
        out_shape = tuple(op64._conv(torch.zeros((1, *in_shape), dtype=torch.float64, device=op64.weight.device),
                                     None).shape[1:])
        schur = _schur(a.forward, in_shape, out_shape, device=op64.weight.device)
        return min(conv_fft_bound(op64, in_shape), schur)
    if isinstance(op, AveragePool):
        out_shape = tuple(op.forward(torch.zeros((1, *in_shape), dtype=torch.float64)).shape[1:])
        return _schur(op.forward, in_shape, out_shape)
    raise UnsupportedError(f"no Lipschitz rule for the operator {op.describe()}")


def _maxpool_factor(op: MaxPool) -> float:
    """l2 Lipschitz constant bound of max pooling: sqrt(max number of windows sharing an input)."""
    m = 1
    for k, s, d in zip(op.kernel, op.strides, op.dilations):
        m *= min(k, math.ceil(((k - 1) * d + 1) / s))
    return math.sqrt(m)


# =========================================================================== segment norms
@dataclass
class _SegInfo:
    seg: Segment
    ops: _SegOps
    upper: float  # certified upper bound of ||A||
    dense: torch.Tensor | None  # Jacobian when materialized
    estimate: float | None = None  # power-iteration estimate (lower)
    how: str = ""


def _analyze_segment(seg: Segment, dense_limit: int, estimate: bool, device="cpu") -> _SegInfo:
    ops = _SegOps(seg, device)
    if seg.n_in * seg.n_out <= dense_limit and min(seg.n_in, seg.n_out) <= DENSE_MIN_SIDE:
        J = ops.dense()
        up = spectral_norm(J)
        return _SegInfo(seg, ops, up, J, up / NORM_INFLATE if estimate else None, "dense SVD")
    prod = 1.0
    shape = seg.in_shape
    for node in seg.nodes:
        prod *= op_norm_upper(node.op, shape)
        shape = node.shape
    up, how = prod, "product of operator norms"
    if ops.abs_ops is not None:
        s = _schur(ops.absolute, seg.in_shape, seg.out_shape, device=device)
        if s < up:
            up, how = s, "Schur bound"
    est = power_iteration(ops.linear, seg.in_shape, device=device) if estimate else None
    return _SegInfo(seg, ops, up, None, est, how)


def _masked_norm(info: _SegInfo, d_in, d_out) -> float:
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
    s = _schur(info.ops.absolute, seg.in_shape, seg.out_shape, d_in, d_out, device=info.ops.device)
    return min(info.upper, s)


# =========================================================================== the analysis
class _Analysis:
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
        self.info = {s.end: _analyze_segment(s, dense_limit, estimate, dev) for s in self.segs}
        # pair-bound tail: the segment that produces the output
        self.tail = self.seg_by_end.get(graph.output_name)
        self.tail_J = None
        if self.tail is not None:
            info = self.info[self.tail.end]
            if info.dense is not None:
                self.tail_J = info.dense
            elif self.tail.n_out * self.tail.n_in <= 4 * dense_limit and self.tail.n_out <= 4096:
                eye = torch.eye(self.tail.n_out, dtype=torch.float64, device=dev)
                self.tail_J = _vjp(info.ops.linear, eye, self.tail.in_shape).reshape(self.tail.n_out, -1)

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
                L[node.name] = _maxpool_factor(node.op) * L[node.inputs[0]]
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


# =========================================================================== public API
def _cache(graph: Graph) -> dict:
    c = graph.__dict__.get("_lipschitz_cache")
    if c is None:
        c = {}
        graph.__dict__["_lipschitz_cache"] = c
    return c


def _analysis(graph: Graph, dense_limit: int = DENSE_LIMIT, estimate: bool = False) -> _Analysis:
    key = ("analysis", dense_limit, estimate)
    c = _cache(graph)
    if key not in c:
        c[key] = _Analysis(graph, dense_limit, estimate)
    return c[key]


@_few_threads
def product_bound(graph: Graph, dense_limit: int = DENSE_LIMIT, estimate: bool = False) -> LipschitzBound:
    """Global product bound (cached per graph). ``estimate``: also power-iterate every segment."""
    t0 = time.perf_counter()
    a = _analysis(graph, dense_limit, estimate)
    res = a.global_bound()
    res.time_s = time.perf_counter() - t0
    return res


@_few_threads
def local_lipschitz(graph: Graph, lo, hi, bounds_method: str = "crown", bounds: dict | None = None,
                    global_bound: LipschitzBound | None = None, dense_limit: int = DENSE_LIMIT) -> list[LipschitzBound]:
    """Lipschitz bounds valid on each input box ``[lo[b], hi[b]]`` (shape ``(B, n_inputs)``).

    ReLUs whose pre-activation upper bound on the box is <= 0 are masked out of the
    adjacent segments. Every bound is clipped to the global one (never larger).
    """
    t0 = time.perf_counter()
    a = _analysis(graph, dense_limit)
    glob = global_bound or a.global_bound()
    lo = torch.tensor(np.array(lo, dtype=np.float64)).reshape(-1, graph.n_inputs)
    hi = torch.tensor(np.array(hi, dtype=np.float64)).reshape(-1, graph.n_inputs)
    if bounds is None:
        g64 = _graph64(graph)
        lo_, hi_ = lo.to(g64.device), hi.to(g64.device)
        if bounds_method == "ibp":
            bounds = g64.ibp(lo_, hi_)
        else:

            bounds = intermediate_bounds(g64, lo_, hi_, bounds_method)
    K = graph.n_outputs
    gP = glob.pair_matrix(K)
    out = []
    for b in range(lo.shape[0]):
        masks = a.masks(bounds, b)

        def seg_norm(seg, masks=masks):
            d_in, d_out = a.seg_masks(seg, masks)
            return _masked_norm(a.info[seg.end], d_in, d_out)

        L = a.propagate(seg_norm)
        Lout = min(L[graph.output_name], glob.L)
        P = a.pairs(L, masks.get(a.tail.start) if a.tail is not None else None)
        P = gP.copy() if P is None else np.minimum(P, gP)
        P = np.minimum(P, math.sqrt(2.0) * Lout)
        np.fill_diagonal(P, 0.0)
        active = sum(int(m.sum()) for m in masks.values())
        total = sum(m.numel() for m in masks.values())
        out.append(LipschitzBound(Lout, P, "local-" + glob.method, [], 0.0,
                                  f"{active}/{total} ReLUs possibly active"))
    dt = time.perf_counter() - t0
    for r in out:
        r.time_s = dt / max(1, len(out))
    return out


def _graph64(graph: Graph) -> Graph:
    c = _cache(graph)
    if "f64" not in c:
        c["f64"] = graph if graph.dtype == torch.float64 else graph.to(dtype=torch.float64)
    return c["f64"]


def logits64(graph: Graph, x) -> np.ndarray:
    """Network outputs in float64 for inputs ``(B, n_inputs)`` (or one example)."""
    g = _graph64(graph)
    t = torch.tensor(np.array(x, dtype=np.float64), device=g.device).reshape(-1, graph.n_inputs)
    with torch.no_grad():
        return g.forward(t).cpu().numpy()


def safety_margin(z_i: float, z_j: float) -> float:
    """Allowance for the rounding of the network evaluation (float32 runtimes included)."""
    return 1e-5 * (1.0 + abs(z_i) + abs(z_j))


def radius_from_logits(z: np.ndarray, pair: np.ndarray, n_inputs: int, cls: int | None = None) -> Radius:
    """Certified radii for class ``cls`` (default: argmax) from float64 logits and pair bounds."""
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    pred = int(np.argmax(z))
    c = pred if cls is None else int(cls)
    others = [j for j in range(z.size) if j != c]
    if not others:
        return Radius(pred, math.inf, math.inf, math.inf)
    margin = float(min(z[c] - z[j] for j in others))
    r = math.inf
    for j in others:
        m = z[c] - z[j] - safety_margin(z[c], z[j])
        Lj = float(pair[c, j])
        if m <= 0:
            r = 0.0
            break
        r = min(r, m / Lj if Lj > 0 else math.inf)
    r = max(0.0, r)
    return Radius(pred, margin, r, r / math.sqrt(n_inputs))


@_few_threads
def certified_radius(graph: Graph, x, bound: LipschitzBound, cls: int | None = None) -> Radius:
    """Certified l2 / l_inf radius of ``x`` (one example) for its predicted class (or ``cls``)."""
    z = logits64(graph, x)[0]
    return radius_from_logits(z, bound.pair_matrix(graph.n_outputs), graph.n_inputs, cls)


@_few_threads
def local_certified_radius(graph: Graph, x, global_bound: LipschitzBound | None = None,
                           bounds_method: str = "crown", factors=(1.0, 1.5, 2.0, 3.0, 4.0, 6.0)) -> Radius:
    """Certified l2 and l_inf radii from local Lipschitz bounds on l_inf boxes around ``x``.

    On a box of half-width ``e`` with local pair bounds ``L_j(e)``, let
    ``r(e) = min_j m_j / L_j(e)``. The box contains the l2 ball of radius ``e`` and the
    l_inf ball of radius ``e``, whose points lie within l2 distance ``e sqrt(n)``; so
    ``min(r(e), e)`` is a certified l2 radius and ``min(r(e) / sqrt(n), e)`` a certified
    l_inf radius. Half-widths ``factor * r_global`` are tried in increasing order, for
    l_inf and for l2, stopping as soon as a larger box cannot help (``r(e)`` below the
    box, or no ReLU stable any more). The result is never below the global radii.
    """
    glob = global_bound or product_bound(graph)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    n = graph.n_inputs
    sq = math.sqrt(n)
    z = logits64(graph, x)[0]
    K = graph.n_outputs
    base = radius_from_logits(z, glob.pair_matrix(K), n)
    if base.l2 <= 0 or not math.isfinite(base.l2):
        return base
    best = {"l2": base.l2, "linf": base.linf}
    seen: dict[float, float] = {}

    def r_of(e: float) -> tuple[float, bool]:
        if e not in seen:
            lb = local_lipschitz(graph, x[None, :] - e, x[None, :] + e, bounds_method, global_bound=glob)[0]
            r = radius_from_logits(z, lb.pair_matrix(K), n, base.prediction).l2
            seen[e] = (r, lb.L >= glob.L * (1 - 1e-9))
        return seen[e]

    for kind, start in (("linf", base.linf), ("l2", base.l2)):
        for f in factors:
            e = float(f * start)
            r, no_gain = r_of(e)
            cert = min(r / sq, e) if kind == "linf" else min(r, e)
            best[kind] = max(best[kind], cert)
            # also the other norm from the same box
            other = "l2" if kind == "linf" else "linf"
            best[other] = max(best[other], min(r / sq, e) if other == "linf" else min(r, e))
            if no_gain or cert < e:
                break
    return Radius(base.prediction, base.margin, best["l2"], best["linf"])


# =========================================================================== sampling (estimates)
@_few_threads
def gradient_norms(graph: Graph, X, pairs=None) -> dict:
    """Exact gradient information at sample points ``X`` ``(S, n_inputs)``, float64.

    Returns ``{'jacobian_norm': (S,) ||J(x)||_2, 'pair': (S, K, K) ||grad (f_i - f_j)(x)||}``.
    These are LOWER bounds on the Lipschitz constants (of the map and of each pair).
    """
    g = _graph64(graph)
    x = torch.tensor(np.array(X, dtype=np.float64), device=g.device).reshape(-1, graph.n_inputs)
    x = x.detach().requires_grad_(True)
    K = graph.n_outputs
    with torch.enable_grad():
        y = g.forward(x)
        rows = []
        for k in range(K):
            (gk,) = torch.autograd.grad(y[:, k].sum(), x, retain_graph=k < K - 1)
            rows.append(gk.reshape(x.shape[0], -1))
    J = torch.stack(rows, 1)  # (S, K, n)
    jn = torch.linalg.matrix_norm(J, ord=2)
    P = torch.zeros(J.shape[0], K, K, dtype=J.dtype)
    for i in range(K):
        P[:, i, :] = (J[:, i:i + 1, :] - J).norm(dim=-1)
    return {"jacobian_norm": jn.cpu().numpy(), "pair": P.cpu().numpy()}
