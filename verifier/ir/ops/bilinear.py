"""Products of two graph values: ``Mul`` (x * y with numpy broadcasting, McCormick bounds; x * x as the convex
square), and ``FlooredReciprocal`` (Softmax's divisor, known to be at least 1).

ONNX Mul and Div of two network values (``x * Reciprocal(y)``), MatMul of two network values (a broadcast ``Mul``
and a ``ReduceSum``) and Softmax (``1 / sum_j exp(x_j - x_i)``) are built from these and the smooth operators of
``verifier.ir.ops.smooth`` (``Exp``, ``Reciprocal``) by the loader (``frontends/onnx/handlers_bilinear.py``).

``Mul`` has two inputs, so its linear relaxation cannot be the element-wise ``relax(lo, hi)`` of one input: it
implements ``relax_backward(A, bounds, in_shapes, alpha)``, which the CROWN pass calls for a nonlinear node of
several inputs (``verifier.bounds.crown.backward_lower``): given the coefficients ``A`` on the product it returns
those on each factor and the constant term. The planes are McCormick's, ``x y >= a x + b y + c_l`` and
``x y <= a' x + b' y + c_u`` on the box ``[lx, ux] x [ly, uy]``: per element and side one convex combination of the
two McCormick planes (each is loose at one corner only; the weight makes the relaxed values at those two corners
equal where it can, so a box of one sign gets the plane exact at its minimum and a symmetric box the average);
their constants are the exact extremes of the bilinear ``x y - a x - b y`` over the box's four corners, computed
in float64 from the slopes as rounded to the graph's dtype, with an outward margin: sound for whatever slopes. The
interval rule is the least and greatest corner product, rounded outward by one ulp.
"""
from __future__ import annotations

import torch

from verifier.ir.errors import UnsupportedError
from verifier.ir.ops.affine import _unbroadcast
from verifier.ir.ops.base import Op
from verifier.ir.ops.smooth import Exp, Pow, Reciprocal


def _down(t: torch.Tensor) -> torch.Tensor:
    return torch.nextafter(t, torch.full_like(t, float("-inf")))


def _up(t: torch.Tensor) -> torch.Tensor:
    return torch.nextafter(t, torch.full_like(t, float("inf")))


def _align(t: torch.Tensor, rank: int) -> torch.Tensor:
    """A batched ``(B, *s)`` tensor with size-1 axes after the batch axis up to ``rank`` ONNX axes (numpy's rule)."""
    extra = rank - (t.dim() - 1)
    return t.reshape(t.shape[0], *([1] * extra), *t.shape[1:]) if extra > 0 else t


def _label(op) -> str:
    return f"node {op.label}: " if op.label else ""


class Mul(Op):
    """``y = x0 * x1`` for two graph values (numpy broadcasting)."""

    kind = "Mul"
    affine = False
    n_inputs = 2
    refine_inputs = True  # CROWN bounds every element of the factors (the planes depend on their bounds)

    def __init__(self, label: str = "", square: bool = False):
        self.label = label
        self.square = square  # both inputs are the same graph value: x * x, bounded as the convex square
        self._pow2 = Pow(2.0, label) if square else None

    def forward(self, a, b):
        r = max(a.dim(), b.dim()) - 1
        return _align(a, r) * _align(b, r)

    def ibp(self, ba, bb):
        if self.square:
            return self._pow2.ibp(ba)
        r = max(ba[0].dim(), bb[0].dim()) - 1
        (la, ha), (lb, hb) = [(_align(t[0], r), _align(t[1], r)) for t in (ba, bb)]
        st = torch.stack(torch.broadcast_tensors(la * lb, la * hb, ha * lb, ha * hb))
        return _down(st.min(0).values), _up(st.max(0).values)

    def planes(self, ba, bb, out_rank: int):
        """McCormick planes on the factors' boxes, in the output's (broadcast) shape ``(B, *out)``:
        ``(a_l, b_l, c_l, a_u, b_u, c_u)`` with ``a_l x + b_l y + c_l <= x y <= a_u x + b_u y + c_u``."""
        dt = ba[0].dtype
        lx, ux = (_align(t, out_rank).double() for t in ba)
        ly, uy = (_align(t, out_rank).double() for t in bb)
        lx, ux, ly, uy = torch.broadcast_tensors(lx, ux, ly, uy)
        w = (ux - lx) * (uy - ly)
        pos = w > 0
        wd = torch.where(pos, 2 * w, torch.ones_like(w))
        half = torch.full_like(w, 0.5)
        # lower: lam * (ly x + lx y - lx ly) + (1 - lam) * (uy x + ux y - ux uy); the first is loose by w at
        # (ux, uy), the second at (lx, ly): lam makes the two corners' relaxed values equal where it can
        lam = torch.where(pos, ((ux * uy - lx * ly + w) / wd).clamp(0, 1), half)
        # upper: mu * (uy x + lx y - lx uy) + (1 - mu) * (ly x + ux y - ux ly); loose at (ux, ly) / (lx, uy)
        mu = torch.where(pos, ((lx * uy - ux * ly + w) / wd).clamp(0, 1), half)
        a_l = (lam * ly + (1 - lam) * uy).to(dt).double()
        b_l = (lam * lx + (1 - lam) * ux).to(dt).double()
        a_u = (mu * uy + (1 - mu) * ly).to(dt).double()
        b_u = (mu * lx + (1 - mu) * ux).to(dt).double()
        corners = [(lx, ly), (lx, uy), (ux, ly), (ux, uy)]

        def extremes(a, b):
            g = torch.stack([x * y - a * x - b * y for x, y in corners])
            mag = torch.stack([(x * y).abs() + (a * x).abs() + (b * y).abs() for x, y in corners]).max(0).values
            return g.min(0).values, g.max(0).values, 1e-7 * mag + 1e-300

        g_lo, _, m_l = extremes(a_l, b_l)
        _, g_hi, m_u = extremes(a_u, b_u)
        if not bool(torch.isfinite(torch.stack([g_lo, g_hi])).all()):
            raise UnsupportedError(f"{_label(self)}the bounds of the product's factors are not finite")
        c_l, c_u = _down((g_lo - m_l).to(dt)), _up((g_hi + m_u).to(dt))
        return a_l.to(dt), b_l.to(dt), c_l, a_u.to(dt), b_u.to(dt), c_u

    def relax_backward(self, A, bounds, in_shapes, alpha=None):
        """Coefficients on both factors and the constant term of the lower bound of ``A . (x0 * x1)``.

        A: ``(B, K, *out)``; bounds: the factors' ``(lo, hi)``, ``(B, *in_i)``. Returns ``([A_0, A_1], c, c_abs)``
        with ``A_i`` ``(B, K, *in_i)``, ``c`` ``(B, K)`` and ``c_abs`` ``(B, K)`` the sum of the constants' magnitudes
        (for the rounding allowance). The lower plane is taken where ``A >= 0``, the upper one where ``A < 0``."""
        B, K = A.shape[:2]
        out = A.shape[2:]
        A_pos = A.clamp(min=0)
        A_neg = A - A_pos
        if self.square:  # Pow(2)'s lines (the tangent at the midpoint below, the chord above), on the first input
            k_l, c_l, k_u, c_u = self._pow2.relax(bounds[0][0].unsqueeze(1), bounds[0][1].unsqueeze(1))
            A0 = A_pos * k_l + A_neg * k_u
            c = (A_pos * c_l + A_neg * c_u).reshape(B, K, -1).sum(-1)
            c_abs = (A_pos * c_l.abs() - A_neg * c_u.abs()).reshape(B, K, -1).sum(-1)
            return [A0, torch.zeros_like(A0)], c, c_abs
        a_l, b_l, c_l, a_u, b_u, c_u = (t.unsqueeze(1) for t in self.planes(bounds[0], bounds[1], len(out)))
        ins = []
        for lo_coef, up_coef, shp in ((a_l, a_u, in_shapes[0]), (b_l, b_u, in_shapes[1])):
            Ai = (A_pos * lo_coef + A_neg * up_coef).reshape(B * K, *out)
            ins.append(_unbroadcast(Ai, shp).reshape(B, K, *shp))
        c = (A_pos * c_l + A_neg * c_u).reshape(B, K, -1).sum(-1)
        c_abs = (A_pos * c_l.abs() - A_neg * c_u.abs()).reshape(B, K, -1).sum(-1)
        return ins, c, c_abs

    def describe(self):
        return "Mul(x, x)" if self.square else "Mul(x, y)"


class FlooredReciprocal(Reciprocal):
    """``1 / x`` of an input that is at least ``floor > 0`` by construction (Softmax's divisor
    ``sum_j exp(x_j - x_i)`` holds the term ``exp(0) = 1``): its bounds are raised to the floor before the
    reciprocal's rules apply, so that a loose lower bound (interval sums are widened outward, a CROWN line of the
    exponentials may dip below 0) is never taken for a divisor across 0.

    ``slack``: the bounds are of the ONNX value ``v`` with ``1 / x - slack <= v <= 1 / x``, so the lower bound and the
    lower line are moved down by it. Softmax clamps its exponents at ``SOFTMAX_EXP_CAP`` (so that no bound of an
    exponential overflows): where a clamp acts the true value is below ``exp(-cap)``, and ``1 / x`` is no less."""

    def __init__(self, floor: float, label: str = "", slack: float = 0.0):
        super().__init__(label)
        self.floor = float(floor)
        self.slack = float(slack)

    def _floored(self, lo, hi):
        return lo.clamp(min=self.floor), hi.clamp(min=self.floor)

    def ibp(self, b):
        lo, hi = super().ibp(self._floored(*b))
        return (_down(lo - self.slack) if self.slack else lo), hi

    def relax(self, lo, hi, alpha=None):
        a_l, b_l, a_u, b_u = super().relax(*self._floored(lo, hi), alpha)
        return a_l, (_down(b_l - self.slack) if self.slack else b_l), a_u, b_u

    def describe(self):
        return f"Reciprocal(input >= {self.floor:g}{f', slack {self.slack:.3g}' if self.slack else ''})"


# Softmax's exponents x_j - x_i are clamped at this (``CappedExp``): exp(60) * 6000 terms stays far below float32's
# largest value, and where the clamp acts the softmax value is below exp(-60) ~ 8.8e-27
SOFTMAX_EXP_CAP = 60.0


class CappedExp(Exp):
    """``exp(min(x, cap))``: Softmax's exponentials, whose bounds never overflow (``FlooredReciprocal``'s slack
    covers the difference from ``exp``).

    Convex where ``hi <= cap`` (the tangent below, the chord above, as ``Exp``); across the cap the chord slope for
    both lines. The intercepts are exact for any slope: ``f(x) - k x`` is extreme at the ends, at ``log k`` on the
    exponential's side or at the cap (linear beyond it)."""

    kind = "Exp"

    def __init__(self, cap: float, label: str = ""):
        super().__init__(label)
        self.cap = float(cap)

    def f(self, x):
        return torch.exp(x.clamp(max=self.cap))

    def df(self, x):
        return torch.where(x < self.cap, torch.exp(x.clamp(max=self.cap)), torch.zeros_like(x))

    def stationary(self, k, lo, hi):
        return [torch.log(k).clamp(max=self.cap), torch.full_like(lo, self.cap)]

    def curvature(self, lo, hi):
        return hi <= self.cap, torch.zeros_like(lo, dtype=torch.bool)

    def describe(self):
        return f"Exp(min(x, {self.cap:g}))"
