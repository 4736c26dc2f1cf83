"""The linear encoding of a ReLU network on an input box: ``encode_network`` and ``NetworkEncoding``.

``encode_network`` walks the graph's nodes once and builds a ``NetworkEncoding``:
variables for the input, for every pre-activation element that is not provably
inactive, and for every unstable ReLU output (plus a binary per unstable ReLU in
``milp`` mode). Affine operators introduce no variables: each node's value is an
affine expression ``E v + e`` (sparse ``E``) of the variables created so far; the
exact matrix of an operator comes from ``backends.encoding.affine``.

ReLU ``z = relu(x)`` with pre-activation bounds ``l <= x <= u``:

- ``u <= 0``: ``z = 0``; ``l >= 0``: ``z = x`` (stable neurons are linear);
- unstable, ``milp``: ``z >= x``, ``z >= 0``, ``z <= u v``, ``z <= x - l (1 - v)``, ``v`` binary (big-M);
- unstable, ``lp``: ``z >= x``, ``z >= 0``, ``z <= u/(u-l) (x - l)`` (the triangle).

The other piecewise-linear element-wise ops (LeakyRelu, Abs, Clip, Sign) are encoded by
``backends.encoding.piecewise``; any other nonlinear op is an UnsupportedError naming the node.

``NetworkEncoding.with_objective(C, d)`` adds the epigraph variable ``t`` and the
rows ``t >= C_i y - d_i``; minimising ``t`` gives ``min_x max_i (C y - d)_i`` over
the box, the quantity whose sign decides the disjunct (met iff all rows <= 0).
The result is a ``LinearModel`` (``backends.encoding.model``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from backends.encoding.affine import affine_matrices
from backends.encoding.model import LinearModel
from backends.encoding.piecewise import encode_piecewise
from verifier.ir.errors import UnsupportedError
from verifier.ir.graph import Graph
from verifier.ir.ops import ReLU
from verifier.ir.ops.piecewise import PiecewiseLinear, Sign

# stability slack: a neuron with u <= STABLE_EPS is treated as inactive, l >= -STABLE_EPS as active
STABLE_EPS = 1e-9
# relative widening of the big-M / triangle constants against float64 rounding of the bounds
WIDEN = 1e-10

VAR_INPUT, VAR_PRE, VAR_RELU, VAR_BINARY, VAR_T = 0, 1, 2, 3, 4


@dataclass
class NetworkEncoding:
    """Variables and rows of the network on one input box; node values as affine expressions."""

    mode: str
    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray
    kind: np.ndarray  # VAR_* per variable
    A: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    input_vars: np.ndarray
    exprs: dict  # node name -> (E csr (size, n_vars_at_creation), e (size,))
    output: tuple  # (Y csr (n_out, n_vars), y0 (n_out,)) of the output node or of ``stop_at``
    relu_binaries: dict  # ReLU node name -> (element index array, binary var index array)
    pre_vars: dict  # pre-activation node name -> var index per element (-1 where none)
    n_unstable: int = 0

    @property
    def n_vars(self) -> int:
        return len(self.lb)

    def expr(self, name: str) -> tuple[sp.csr_matrix, np.ndarray]:
        E, e = self.exprs[name]
        return _pad(E, self.n_vars), e

    def with_objective(self, C: np.ndarray, d: np.ndarray, t_bounds: tuple[float, float] | None = None) -> LinearModel:
        """Model of ``min t`` s.t. ``t >= (C y - d)_i`` for every row ``i`` (``y`` the output expression)."""
        C = np.atleast_2d(np.asarray(C, dtype=np.float64))
        d = np.asarray(d, dtype=np.float64).reshape(-1)
        Y, y0 = self.output
        Y = _pad(Y, self.n_vars)
        G = sp.csr_matrix(C) @ Y  # (K, n)
        g = C @ y0 - d
        n = self.n_vars
        if t_bounds is None:
            t_bounds = objective_range(G, g, self.lb, self.ub)
        t = n
        lb = np.append(self.lb, t_bounds[0])
        ub = np.append(self.ub, t_bounds[1])
        integer = np.append(self.integer, False)
        K = C.shape[0]
        rows = sp.hstack([G, sp.csr_matrix(-np.ones((K, 1)))], format="csr")  # G v - t <= -g
        A = sp.vstack([_pad(self.A, n + 1), rows], format="csr")
        row_lo = np.concatenate([self.row_lo, np.full(K, -np.inf)])
        row_hi = np.concatenate([self.row_hi, -g])
        cost = np.zeros(n + 1)
        cost[t] = 1.0
        return LinearModel(cost, lb, ub, integer, A, row_lo, row_hi, 0.0, self.input_vars, t)

    def with_linear_objective(self, row: sp.csr_matrix | np.ndarray, const: float = 0.0) -> LinearModel:
        """Model of ``min row . v + const`` over the encoding (used to tighten neuron bounds)."""
        cost = np.asarray(sp.csr_matrix(row).toarray()).reshape(-1)
        cost = np.concatenate([cost, np.zeros(self.n_vars - len(cost))])
        return LinearModel(cost, self.lb, self.ub, self.integer, self.A, self.row_lo, self.row_hi, float(const),
                           self.input_vars, -1)


def objective_range(G: sp.csr_matrix, g: np.ndarray, lb: np.ndarray, ub: np.ndarray) -> tuple[float, float]:
    """Interval bounds ``[lo, hi]`` of ``max_i (G v + g)_i`` over the variable box (a valid range for ``t``)."""
    Gp, Gn = G.maximum(0), G.minimum(0)
    lo = Gp @ lb + Gn @ ub + g
    hi = Gp @ ub + Gn @ lb + g
    lo_t, hi_t = float(np.max(lo)), float(np.max(hi))
    pad = 1e-6 * (1.0 + abs(lo_t) + abs(hi_t))
    return lo_t - pad, hi_t + pad


def _pad(E: sp.csr_matrix, n: int) -> sp.csr_matrix:
    if E.shape[1] == n:
        return E
    E = sp.csr_matrix(E)
    return sp.csr_matrix((E.data, E.indices, E.indptr), shape=(E.shape[0], n))


def _flat(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy().reshape(-1)


class _Builder:
    def __init__(self):
        self.lb: list[np.ndarray] = []
        self.ub: list[np.ndarray] = []
        self.integer: list[np.ndarray] = []
        self.kind: list[np.ndarray] = []
        self.n = 0
        self.blocks: list[sp.csr_matrix] = []
        self.row_lo: list[np.ndarray] = []
        self.row_hi: list[np.ndarray] = []

    def add_vars(self, lb, ub, integer: bool, kind: int) -> np.ndarray:
        lb = np.asarray(lb, dtype=np.float64).reshape(-1)
        ub = np.asarray(ub, dtype=np.float64).reshape(-1)
        idx = np.arange(self.n, self.n + len(lb))
        self.n += len(lb)
        self.lb.append(lb)
        self.ub.append(ub)
        self.integer.append(np.full(len(lb), integer))
        self.kind.append(np.full(len(lb), kind, dtype=np.int8))
        return idx

    def add_rows(self, M: sp.spmatrix, lo, hi) -> None:
        M = sp.csr_matrix(M)
        if M.shape[0] == 0:
            return
        self.blocks.append(M)
        self.row_lo.append(np.broadcast_to(np.asarray(lo, dtype=np.float64), (M.shape[0],)).copy())
        self.row_hi.append(np.broadcast_to(np.asarray(hi, dtype=np.float64), (M.shape[0],)).copy())

    def unit(self, idx: np.ndarray, size: int | None = None, rows: np.ndarray | None = None) -> sp.csr_matrix:
        """Sparse matrix with a 1 at (rows[k], idx[k]) (rows default 0..len(idx)-1)."""
        rows = np.arange(len(idx)) if rows is None else rows
        size = len(idx) if size is None else size
        return sp.csr_matrix((np.ones(len(idx)), (rows, idx)), shape=(size, self.n))

    def finish(self):
        cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dtype=dt))
        lb, ub = cat(self.lb, np.float64), cat(self.ub, np.float64)
        integer, kind = cat(self.integer, bool), cat(self.kind, np.int8)
        if self.blocks:
            A = sp.vstack([_pad(b, self.n) for b in self.blocks], format="csr")
        else:
            A = sp.csr_matrix((0, self.n))
        return lb, ub, integer, kind, A, cat(self.row_lo, np.float64), cat(self.row_hi, np.float64)


# ---------------------------------------------------------------------------------------------- the walk
def encode_network(graph: Graph, pre: dict, x_lo: np.ndarray, x_hi: np.ndarray, mode: str = "milp",
                   stop_at: str | None = None) -> NetworkEncoding:
    """Encode ``graph`` on the box ``[x_lo, x_hi]`` with pre-activation bounds ``pre`` (name -> (lo, hi), batch 1).

    mode: ``milp`` (big-M, exact) or ``lp`` (triangle relaxation). With ``stop_at``
    the walk ends at that node, whose expression becomes ``output`` (for per-neuron
    bound tightening).
    """
    if mode not in ("milp", "lp"):
        raise ValueError(f"unknown encoding mode {mode!r}")
    b = _Builder()
    x_lo = np.asarray(x_lo, dtype=np.float64).reshape(-1)
    x_hi = np.asarray(x_hi, dtype=np.float64).reshape(-1)
    if x_lo.size != graph.n_inputs:
        raise ValueError(f"input box has {x_lo.size} entries, the network {graph.n_inputs} inputs")
    xin = b.add_vars(x_lo, x_hi, False, VAR_INPUT)
    exprs: dict = {graph.input_name: (b.unit(xin), np.zeros(graph.n_inputs))}
    pre_vars: dict = {}
    relu_bins: dict = {}
    n_unstable = 0
    out_name = stop_at or graph.output_name
    if out_name != graph.input_name:
        for node in graph.nodes:
            if node.op.affine:
                in_shapes = [graph.shape_of(i) for i in node.inputs]
                Ms, c = affine_matrices(node.op, in_shapes, node.shape)
                E = None
                e = c.astype(np.float64).copy()
                for name, M in zip(node.inputs, Ms):
                    Ei, ei = exprs[name]
                    term = sp.csr_matrix(M) @ _pad(Ei, b.n)
                    E = term if E is None else E + term
                    e = e + M @ ei
                exprs[node.name] = (sp.csr_matrix(E), e)
            elif isinstance(node.op, ReLU):
                src = node.inputs[0]
                if src not in pre_vars:
                    pre_vars[src], exprs[src] = _pre_activation(b, exprs[src], src, pre, graph)
                z_expr, bins, k = _relu(b, exprs[src], pre_vars[src], _bounds_of(pre, src, graph), mode)
                exprs[node.name] = z_expr
                relu_bins[node.name] = bins
                n_unstable += k
            elif isinstance(node.op, (PiecewiseLinear, Sign)):
                src = node.inputs[0]
                lo, hi = _bounds_of(pre, src, graph)
                E, e = exprs[src]
                exprs[node.name], k = encode_piecewise(b, (_pad(E, b.n), e), lo, hi, node.op, graph.shape_of(src),
                                                       mode, WIDEN)
                n_unstable += k
            else:
                where = node.onnx_node or f"'{node.name}' ({node.op.kind})"  # onnx_node: "'name' (OpType)"
                raise UnsupportedError(f"the {mode.upper()} encoding supports piecewise-linear networks only, not node "
                                       f"{where}")
            if node.name == out_name:
                break
    lb, ub, integer, kind, A, row_lo, row_hi = b.finish()
    E, e = exprs[out_name]
    return NetworkEncoding(mode, lb, ub, integer, kind, A, row_lo, row_hi, xin, exprs, (_pad(E, b.n), e),
                           relu_bins, pre_vars, n_unstable)


def _bounds_of(pre: dict, name: str, graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    if name not in pre:
        raise KeyError(f"no pre-activation bounds for node '{name}'")
    lo, hi = pre[name]
    lo, hi = _flat(lo), _flat(hi)
    n = math.prod(graph.shape_of(name))
    if lo.size != n:
        raise ValueError(f"bounds of '{name}' have {lo.size} entries, expected {n} (batch of one box)")
    return lo, hi


def _pre_activation(b: _Builder, expr, name: str, pre: dict, graph: Graph):
    """Variables for the elements of pre-activation node ``name`` that are not provably inactive."""
    E, e = expr
    E = _pad(E, b.n)
    lo, hi = _bounds_of(pre, name, graph)
    n = len(lo)
    var = np.full(n, -1, dtype=np.int64)
    live = np.nonzero(hi > STABLE_EPS)[0]
    if live.size == 0:
        return var, (E, e)
    # reuse a variable when the element is exactly that variable (e.g. a ReLU right on the input)
    Ecsr = E[live]
    nnz = np.diff(Ecsr.indptr)
    reuse = np.zeros(len(live), dtype=bool)
    single = nnz == 1
    if single.any():
        starts = Ecsr.indptr[:-1][single]
        reuse[single] = (Ecsr.data[starts] == 1.0) & (e[live][single] == 0.0)
        var[live[reuse]] = Ecsr.indices[starts[reuse[single]]]
    new = live[~reuse]
    if new.size:
        pad = WIDEN * (1.0 + np.abs(lo[new]) + np.abs(hi[new]))
        idx = b.add_vars(lo[new] - pad, hi[new] + pad, False, VAR_PRE)
        var[new] = idx
        # E v - x = -e
        M = sp.vstack([_pad(E[new], b.n)]) - b.unit(idx)
        b.add_rows(M, -e[new], -e[new])
    # the node's expression: unit rows where a variable exists, the old expression elsewhere
    has = var >= 0
    rows_var = np.nonzero(has)[0]
    Eu = sp.csr_matrix((np.ones(len(rows_var)), (rows_var, var[rows_var])), shape=(n, b.n))
    keep = sp.diags((~has).astype(np.float64)) @ _pad(E, b.n)
    e2 = np.where(has, 0.0, e)
    return var, (sp.csr_matrix(Eu + keep), e2)


def _relu(b: _Builder, pre_expr, var: np.ndarray, bounds, mode: str):
    lo, hi = bounds
    n = len(lo)
    inactive = hi <= STABLE_EPS
    active = (~inactive) & (lo >= -STABLE_EPS)
    unstable = ~(inactive | active)
    rows, cols = [], []
    act = np.nonzero(active)[0]
    rows.append(act)
    cols.append(var[act])
    uns = np.nonzero(unstable)[0]
    bins = (uns, np.zeros(0, dtype=np.int64))
    if uns.size:
        pad = WIDEN * (1.0 + np.abs(lo[uns]) + np.abs(hi[uns]))
        l, u = lo[uns] - pad, hi[uns] + pad
        x = var[uns]
        z = b.add_vars(np.zeros(uns.size), u, False, VAR_RELU)
        k = uns.size
        r = np.arange(k)
        Iz = sp.csr_matrix((np.ones(k), (r, z)), shape=(k, b.n))
        Ix = sp.csr_matrix((np.ones(k), (r, x)), shape=(k, b.n))
        b.add_rows(Iz - Ix, 0.0, np.inf)  # z >= x
        if mode == "milp":
            v = b.add_vars(np.zeros(k), np.ones(k), True, VAR_BINARY)
            Iz, Ix = _pad(Iz, b.n), _pad(Ix, b.n)
            Iv = sp.csr_matrix((np.ones(k), (r, v)), shape=(k, b.n))
            b.add_rows(Iz - sp.diags(u) @ Iv, -np.inf, 0.0)  # z <= u v
            b.add_rows(Iz - Ix - sp.diags(l) @ Iv, -np.inf, -l)  # z <= x - l (1 - v)
            bins = (uns, v)
        else:
            s = u / (u - l)
            b.add_rows(Iz - sp.diags(s) @ Ix, -np.inf, -s * l)  # z <= s (x - l)
        rows.append(uns)
        cols.append(z)
    rr = np.concatenate(rows)
    cc = np.concatenate(cols)
    E = sp.csr_matrix((np.ones(len(rr)), (rr, cc)), shape=(n, b.n))
    return (E, np.zeros(n)), bins, int(uns.size)
