"""Operator-norm bounds (l2) of the affine operators of the layer graph, all in float64.

- :func:`spectral_norm`: the largest singular value of a dense matrix (slightly inflated: an upper bound);
- :func:`conv_fft_bound`: the exact norm of the circular convolution that contains a zero-padded one
  (FFT of the kernel, one small SVD per frequency), never a dense matrix;
- :func:`schur_bound`: ``sqrt(max row sum |A| * max column sum |A|)`` through the |weights| operator
  (:func:`abs_op`) with autograd;
- :func:`op_norm_upper`: the best of those for one operator; :func:`maxpool_factor` for max pooling;
- :func:`power_iteration`: a *lower* estimate of a norm (reported next to the bounds, never used as one).
"""
from __future__ import annotations

import copy
import math

import torch

from verifier.certificates.threads import few_threads
from verifier.ir.errors import UnsupportedError
from verifier.ir.ops import AveragePool, Conv, Linear, MaxPool, Reshape, Scale, Transpose

# relative inflation of every float64 norm (covers eigenvalue / FFT rounding many times over)
NORM_INFLATE = 1.0 + 1e-8


def bias_free(op):
    """A copy of an affine op without its constant term (the linear part)."""
    if isinstance(op, (Linear, Conv)):
        new = copy.copy(op)
        new.bias = None
        return new
    if isinstance(op, Scale):
        return Scale(op.scale, None)
    return op


def abs_op(op):
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


def vjp(fn, v: torch.Tensor, in_shape) -> torch.Tensor:
    """``v^T J`` of the map ``fn`` (batched over a leading axis; linear, so taken at 0) with autograd."""
    x = torch.zeros((v.shape[0], *in_shape), dtype=v.dtype, device=v.device, requires_grad=True)
    with torch.enable_grad():
        y = fn(x)
        (g,) = torch.autograd.grad(y, x, grad_outputs=v.reshape(y.shape))
    return g


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


@few_threads
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


def _dilated_kernel(w: torch.Tensor, dil) -> torch.Tensor:
    """The kernel of a dilated convolution as an undilated one (zeros between the taps)."""
    cout, cin_g = w.shape[:2]
    keff = [(kk - 1) * d + 1 for kk, d in zip(w.shape[2:], dil)]
    wd = torch.zeros(cout, cin_g, *keff, dtype=torch.float64, device=w.device)
    wd[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dil)] = w
    return wd


def _polyphase_kernel(w: torch.Tensor, st) -> torch.Tensor:
    """A stride-``st`` kernel as the stride-1 kernel on the ``st`` polyphase components of the input."""
    nd = len(st)
    cout, cin_g = w.shape[:2]
    k = list(w.shape[2:])
    kq = [-(-kk // v) for kk, v in zip(k, st)]  # ceil(k / s)
    wp = torch.zeros(cout, cin_g, *[q * v for q, v in zip(kq, st)], dtype=torch.float64, device=w.device)
    wp[(slice(None), slice(None)) + tuple(slice(0, kk) for kk in k)] = w
    view = [cout, cin_g]
    for q, v in zip(kq, st):
        view += [q, v]
    wp = wp.reshape(view)
    perm = [0, 1] + [3 + 2 * i for i in range(nd)] + [2 + 2 * i for i in range(nd)]
    return wp.permute(*perm).reshape(cout, cin_g * math.prod(st), *kq)


@few_threads
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
    cout = w.shape[0]
    dil = list(conv.dilations)
    if any(d > 1 for d in dil):
        w = _dilated_kernel(w, dil)
    spatial = list(in_shape[-nd:])
    begin = list(conv.pads)
    end = [conv.fpad[2 * (nd - 1 - i) + 1] for i in range(nd)]
    padded = [s_ + b + e for s_, b, e in zip(spatial, begin, end)]
    st = [int(v) for v in conv.strides]
    if any(v > 1 for v in st):
        w = _polyphase_kernel(w, st)
        padded = [-(-p // v) for p, v in zip(padded, st)]
    k = list(w.shape[2:])
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


def schur_bound(abs_fn, in_shape, out_shape, d_in=None, d_out=None, dtype=torch.float64, device="cpu") -> float:
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
    cols = vjp(abs_fn, ones_out, in_shape).reshape(-1)
    if d_in is not None:
        cols = cols * d_in.reshape(-1).to(dtype)
    r = float(rows.max()) if rows.numel() else 0.0
    c = float(cols.max()) if cols.numel() else 0.0
    return math.sqrt(max(r, 0.0) * max(c, 0.0)) * NORM_INFLATE


@few_threads
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
        a = abs_op(op64)
        out_shape = tuple(op64._conv(torch.zeros((1, *in_shape), dtype=torch.float64, device=op64.weight.device),
                                     None).shape[1:])
        schur = schur_bound(a.forward, in_shape, out_shape, device=op64.weight.device)
        return min(conv_fft_bound(op64, in_shape), schur)
    if isinstance(op, AveragePool):
        out_shape = tuple(op.forward(torch.zeros((1, *in_shape), dtype=torch.float64)).shape[1:])
        return schur_bound(op.forward, in_shape, out_shape)
    raise UnsupportedError(f"no Lipschitz rule for the operator {op.describe()}")


def maxpool_factor(op: MaxPool) -> float:
    """l2 Lipschitz constant bound of max pooling: sqrt(max number of windows sharing an input)."""
    m = 1
    for k, s, d in zip(op.kernel, op.strides, op.dilations):
        m *= min(k, math.ceil(((k - 1) * d + 1) / s))
    return math.sqrt(m)
