"""The exact sparse matrices of an affine operator (``flat(op(x)) = sum_i M_i flat(x_i) + c``).

Specialised rules for the common ops (Reshape, Transpose, Scale, Linear, AddNodes);
any other affine op through its own linear rule (``op.backward`` applied to identity
rows, in chunks, sparsified).
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch

from verifier.ir.ops import AddNodes, Linear, Reshape, Scale, Transpose


def affine_matrices(op, in_shapes: list[tuple[int, ...]], out_shape: tuple[int, ...], chunk: int = 1024):
    """Exact matrices ``M_i`` (out_size x in_size_i, sparse) and constant ``c`` with
    ``flat(op(x)) = sum M_i flat(x_i) + c``."""
    out_size = math.prod(out_shape)
    in_sizes = [math.prod(s) for s in in_shapes]
    if isinstance(op, Reshape) and in_sizes[0] == out_size:
        return [sp.identity(out_size, format="csr")], np.zeros(out_size)
    if isinstance(op, Transpose):
        perm_idx = np.arange(in_sizes[0]).reshape(in_shapes[0]).transpose(op.perm).reshape(-1)
        M = sp.csr_matrix((np.ones(out_size), (np.arange(out_size), perm_idx)), shape=(out_size, in_sizes[0]))
        return [M], np.zeros(out_size)
    if isinstance(op, Scale) and tuple(in_shapes[0]) == tuple(out_shape):
        s = np.ones(out_size) if op.scale is None else np.broadcast_to(_np(op.scale), out_shape).reshape(-1)
        c = np.zeros(out_size) if op.shift is None else np.broadcast_to(_np(op.shift), out_shape).reshape(-1)
        return [sp.diags(s, format="csr")], c.astype(np.float64).copy()
    if isinstance(op, Linear) and len(in_shapes[0]) >= 1:
        W = _np(op.weight)  # (K, N)
        lead = math.prod(in_shapes[0][:-1])
        if tuple(in_shapes[0][:-1]) == tuple(out_shape[:-1]):
            M = sp.kron(sp.identity(lead, format="csr"), sp.csr_matrix(W.T), format="csr")
            c = np.zeros(out_size) if op.bias is None else np.broadcast_to(_np(op.bias), out_shape).reshape(-1)
            return [M], c.astype(np.float64).copy()
    if isinstance(op, AddNodes) and all(tuple(s) == tuple(out_shape) for s in in_shapes):
        I = sp.identity(out_size, format="csr")
        return [op.s0 * I, op.s1 * I], np.zeros(out_size)
    return _matrices_by_backward(op, in_shapes, out_shape, chunk)


def _np(t) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy() if torch.is_tensor(t) else np.asarray(t, dtype=np.float64)


def _matrices_by_backward(op, in_shapes, out_shape, chunk):
    """Generic rule: the op's own ``backward`` applied to identity rows, in chunks, sparsified."""
    out_size = math.prod(out_shape)
    blocks: list[list[sp.csr_matrix]] = [[] for _ in in_shapes]
    consts = []
    op64 = op.to("cpu", torch.float64)
    for s in range(0, out_size, chunk):
        m = min(chunk, out_size - s)
        A = torch.zeros(m, out_size, dtype=torch.float64)
        A[torch.arange(m), torch.arange(s, s + m)] = 1.0
        A_ins, c = op64.backward(A.reshape(m, *out_shape), [tuple(x) for x in in_shapes])
        for k, Ai in enumerate(A_ins):
            blocks[k].append(sp.csr_matrix(Ai.reshape(m, -1).numpy()))
        consts.append(c.numpy())
    return [sp.vstack(b, format="csr") for b in blocks], np.concatenate(consts)
