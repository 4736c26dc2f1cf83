"""The linear encoding of the piecewise-linear element-wise operators other than ReLU (``verifier.ir.ops.piecewise``).

Each element's input ``x`` (bounds ``l <= x <= u``) gets a variable, tied to its affine expression by an
equality row. Then

- a continuous op ``f(x) = a x + b + sum_k c_k relu(x - t_k)`` (LeakyRelu, Abs, Clip, Max / Min with a
  constant): one ReLU term per kink, encoded as ReLU is (``backends.encoding.network``): ``z = 0`` where
  ``u <= t``, ``z = x - t`` where ``l >= t``, else ``z >= x - t``, ``z >= 0`` and the big-M pair with a
  binary (``milp``, exact) or the triangle's chord (``lp``);
- ``Sign``: ``y = 1`` where ``l > 0``, ``y = -1`` where ``u < 0``, else ``y = p - q`` with binaries ``p``
  (``x >= 0``) and ``q`` (``x <= 0``), ``p + q <= 1``, ``x <= u p``, ``x >= l q``, ``x >= l (1 - p)``,
  ``x <= u (1 - q)``. Every point of the step satisfies the rows, which are exact away from ``x = 0``; at
  ``x = 0`` they also admit ``y = +-1`` (strict inequalities have no MILP form), a relaxation, never a cut. In
  ``lp`` mode the binaries are relaxed to ``[0, 1]``.

Nothing here talks to a solver.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from verifier.ir.ops.piecewise import PiecewiseLinear, Sign

VAR_PL_INPUT, VAR_PL_RELU, VAR_PL_BINARY = 5, 6, 7


def _flat_const(v, n: int, shape) -> np.ndarray:
    if torch.is_tensor(v):
        v = v.detach().to("cpu", torch.float64).numpy()
    return np.broadcast_to(np.asarray(v, dtype=np.float64), shape).reshape(-1).copy() if n else np.zeros(0)


def encode_piecewise(b, expr, lo: np.ndarray, hi: np.ndarray, op, shape, mode: str, widen: float):
    """Variables and rows for ``op`` applied to the elements of ``expr = (E, e)`` (``E`` with ``b.n`` columns)
    with bounds ``[lo, hi]``; returns the output expression and the number of elements that needed binaries.
    ``b`` is the encoder's row and variable builder."""
    E, e = expr
    n = len(lo)
    pad = widen * (1.0 + np.abs(lo) + np.abs(hi))
    l, u = lo - pad, hi + pad
    x = b.add_vars(l, u, False, VAR_PL_INPUT)
    b.add_rows(_cols(E, b.n) - b.unit(x), -e, -e)  # E v + e - x = 0
    if isinstance(op, Sign):
        return _sign(b, x, lo, hi, l, u, mode)
    if not isinstance(op, PiecewiseLinear):
        raise TypeError(f"no piecewise-linear encoding of {op.kind}")
    a, c0, kinks = op.relu_form()
    rows = [b.unit(x) * a]
    const = _flat_const(c0, n, shape)
    k_unstable = 0
    for t, c in kinks:
        tt = _flat_const(t, n, shape)
        zE, ze, k = _relu_shifted(b, x, tt, l, u, mode)
        rows.append(c * zE)
        const = const + c * ze
        k_unstable += k
    out = rows[0]
    for r in rows[1:]:
        out = _cols(out, b.n) + _cols(r, b.n)
    return (sp.csr_matrix(_cols(out, b.n)), const), k_unstable


def _cols(M, n: int) -> sp.csr_matrix:
    M = sp.csr_matrix(M)
    return M if M.shape[1] == n else sp.csr_matrix((M.data, M.indices, M.indptr), shape=(M.shape[0], n))


def _relu_shifted(b, x: np.ndarray, t: np.ndarray, l: np.ndarray, u: np.ndarray, mode: str):
    """The expression of ``relu(x - t)`` per element (x the variables ``x``, bounds ``[l, u]``)."""
    n = len(x)
    L, U = l - t, u - t
    active = L >= 0
    unstable = (U > 0) & ~active
    rows, cols, vals = [], [], []
    e = np.zeros(n)
    act = np.nonzero(active)[0]
    rows.append(act)
    cols.append(x[act])
    vals.append(np.ones(len(act)))
    e[act] = -t[act]
    uns = np.nonzero(unstable)[0]
    if uns.size:
        k = uns.size
        z = b.add_vars(np.zeros(k), U[uns], False, VAR_PL_RELU)
        r = np.arange(k)
        Iz = sp.csr_matrix((np.ones(k), (r, z)), shape=(k, b.n))
        Ix = sp.csr_matrix((np.ones(k), (r, x[uns])), shape=(k, b.n))
        b.add_rows(Iz - Ix, -t[uns], np.inf)  # z >= x - t
        if mode == "milp":
            v = b.add_vars(np.zeros(k), np.ones(k), True, VAR_PL_BINARY)
            Iz, Ix = _cols(Iz, b.n), _cols(Ix, b.n)
            Iv = sp.csr_matrix((np.ones(k), (r, v)), shape=(k, b.n))
            b.add_rows(Iz - sp.diags(U[uns]) @ Iv, -np.inf, 0.0)  # z <= U v
            b.add_rows(Iz - Ix - sp.diags(L[uns]) @ Iv, -np.inf, -t[uns] - L[uns])  # z <= x - t - L (1 - v)
        else:
            s = U[uns] / (U[uns] - L[uns])
            b.add_rows(Iz - sp.diags(s) @ Ix, -np.inf, -s * (t[uns] + L[uns]))  # z <= s (x - t - L)
        rows.append(uns)
        cols.append(z)
        vals.append(np.ones(k))
    rr, cc, vv = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    return sp.csr_matrix((vv, (rr, cc)), shape=(n, b.n)), e, int(uns.size)


def _sign(b, x, lo, hi, l, u, mode: str):
    n = len(x)
    pos, neg = lo > 0, hi < 0
    e = np.where(pos, 1.0, np.where(neg, -1.0, 0.0))
    uns = np.nonzero(~(pos | neg))[0]
    if uns.size == 0:
        return (sp.csr_matrix((n, b.n)), e), 0
    k = uns.size
    integer = mode == "milp"
    p = b.add_vars(np.zeros(k), np.ones(k), integer, VAR_PL_BINARY)
    q = b.add_vars(np.zeros(k), np.ones(k), integer, VAR_PL_BINARY)
    r = np.arange(k)

    def unit(idx):
        return sp.csr_matrix((np.ones(k), (r, idx)), shape=(k, b.n))
    Ix, Ip, Iq = unit(x[uns]), unit(p), unit(q)
    lu, uu = np.minimum(l[uns], 0.0), np.maximum(u[uns], 0.0)
    b.add_rows(Ip + Iq, -np.inf, 1.0)  # p + q <= 1
    b.add_rows(Ix - sp.diags(uu) @ Ip, -np.inf, 0.0)  # x <= u p
    b.add_rows(Ix - sp.diags(lu) @ Iq, 0.0, np.inf)  # x >= l q
    b.add_rows(Ix + sp.diags(lu) @ Ip, lu, np.inf)  # x >= l (1 - p)
    b.add_rows(Ix + sp.diags(uu) @ Iq, -np.inf, uu)  # x <= u (1 - q)
    rows = np.concatenate([uns, uns])
    cols = np.concatenate([p, q])
    vals = np.concatenate([np.ones(k), -np.ones(k)])
    return (sp.csr_matrix((vals, (rows, cols)), shape=(n, b.n)), e), k
