"""Smooth element-wise operators: Exp, Log, Softplus, Pow with a constant exponent (Sqrt and Reciprocal its named
forms); Sin and Cos are in ``periodic``.

Every one derives from ``Smooth``, which holds the rules they share, computed in float64 and rounded outward:
- the interval rule is the exact range: the least and greatest of ``f`` at the interval's ends and at the
  stationary points of ``f`` inside it (``stationary(0)``);
- the linear relaxation: for any slope ``k`` the lines ``k x + b_l <= f(x) <= k x + b_u`` are sound on
  ``[lo, hi]`` with ``b_l`` / ``b_u`` the exact min / max of ``f(x) - k x`` there, which lie at the ends or
  where ``f'(x) = k`` (``stationary(k)`` lists every such point that can lie in the interval; a point off the
  interval is clamped into it, which only adds a candidate). Only the slopes are chosen, as auto_LiRPA does:
  where ``f`` is convex on the interval, the chord above and the tangent at ``lo + alpha (hi - lo)`` below
  (alpha 1/2 by default); where concave, the other way round; elsewhere (an inflection inside) the chord slope
  for both lines. The slope is rounded to the graph's dtype first, so the intercepts are those of the line
  as it is used; the intercepts get an outward margin of a few units of roundoff of the terms' magnitude,
  which also covers the network's own float evaluation of ``f``.
- forms that are not defined on the input's bounds (Log of a possibly non-positive input, Reciprocal across 0,
  ...) and values that overflow the dtype are an ``UnsupportedError`` naming the ONNX node (``label``).
"""
from __future__ import annotations

import math

import torch

from verifier.ir.errors import UnsupportedError
from verifier.ir.ops.base import Op

F64 = torch.float64


def _eps(dtype) -> float:
    return torch.finfo(dtype).eps if dtype.is_floating_point else torch.finfo(F64).eps


def round_down(v: torch.Tensor, dtype, scale: torch.Tensor | None = None) -> torch.Tensor:
    """``v`` (float64) pushed down by ~4 units of roundoff of ``dtype`` on ``scale`` (default ``|v|``) and cast:
    below the exact value even after the cast's rounding."""
    s = v.abs() if scale is None else scale
    return (v - 4 * _eps(dtype) * s - torch.finfo(dtype).tiny).to(dtype)


def round_up(v: torch.Tensor, dtype, scale: torch.Tensor | None = None) -> torch.Tensor:
    s = v.abs() if scale is None else scale
    return (v + 4 * _eps(dtype) * s + torch.finfo(dtype).tiny).to(dtype)


def _in(points: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Candidate points clamped into ``[lo, hi]`` (NaN, i.e. no such point: ``lo``)."""
    points = torch.where(torch.isnan(points), lo, points)
    return torch.minimum(torch.maximum(points, lo), hi)


class Smooth(Op):
    """A smooth element-wise function: ``f`` / ``df`` in float64, ``stationary(k)``, ``curvature``, ``check``."""

    affine = False
    kind = "Smooth"
    # CROWN bounds every element of the input (the lines depend on its bounds everywhere, not only across 0)
    refine_inputs = True

    def __init__(self, label: str = ""):
        self.label = label  # the ONNX node, for messages

    # ---------------------------------------------------------------- what each function gives
    def f(self, x: torch.Tensor) -> torch.Tensor:  # float64
        raise NotImplementedError

    def df(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def stationary(self, k: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> list[torch.Tensor]:
        """Every point where ``f'(x) = k`` that can lie in ``[lo, hi]`` (NaN or off the interval where none)."""
        raise NotImplementedError

    def curvature(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Boolean masks: ``f`` convex on ``[lo, hi]``, ``f`` concave on it (neither: an inflection inside)."""
        raise NotImplementedError

    def check(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """Raise ``UnsupportedError`` where ``f`` is not defined on some ``[lo, hi]``."""

    # ---------------------------------------------------------------- shared rules
    def refuse(self, why: str) -> UnsupportedError:
        return UnsupportedError(f"node {self.label or self.kind}: {why}")

    def forward(self, x):
        return self.f(x)

    def ibp(self, b):
        lo, hi = b
        self.check(lo, hi)
        lo64, hi64 = lo.double(), hi.double()
        vals = [self.f(lo64), self.f(hi64)]
        vals += [self.f(_in(p, lo64, hi64)) for p in self.stationary(torch.zeros_like(lo64), lo64, hi64)]
        st = torch.stack(vals)
        out_lo, out_hi = round_down(st.min(0).values, lo.dtype), round_up(st.max(0).values, lo.dtype)
        if not (bool(torch.isfinite(out_lo).all()) and bool(torch.isfinite(out_hi).all())):
            raise self.refuse(f"{self.kind} overflows {str(lo.dtype).removeprefix('torch.')} on the input's bounds "
                              f"[{float(lo.min()):.4g}, {float(hi.max()):.4g}]")
        return out_lo, out_hi

    def intercepts(self, k: torch.Tensor, lo64: torch.Tensor, hi64: torch.Tensor, dtype):
        """``(k, b_l, b_u)`` in ``dtype``: ``k x + b_l <= f(x) <= k x + b_u`` on every ``[lo, hi]``."""
        k = torch.where(torch.isfinite(k), k, torch.zeros_like(k)).to(dtype).double()  # the slope as used
        pts = [lo64, hi64] + [_in(p, lo64, hi64) for p in self.stationary(k, lo64, hi64)]
        fs = torch.stack([self.f(p) for p in pts])
        g = fs - k * torch.stack(pts)
        scale = fs.abs().max(0).values + k.abs() * torch.maximum(lo64.abs(), hi64.abs())
        return k.to(dtype), round_down(g.min(0).values, dtype, scale), round_up(g.max(0).values, dtype, scale)

    def slopes(self, lo64, hi64, alpha=None):
        """(lower slope, upper slope): chord and tangent by curvature, the chord for both elsewhere."""
        width = hi64 - lo64
        wide = width > 1e-9 * (1 + lo64.abs() + hi64.abs())
        mid = lo64 + (0.5 if alpha is None else alpha.double().clamp(0, 1)) * width
        chord = (self.f(hi64) - self.f(lo64)) / torch.where(wide, width, torch.ones_like(width))
        tangent = self.df(mid)
        chord = torch.where(wide & torch.isfinite(chord), chord, tangent)
        tangent = torch.where(torch.isfinite(tangent), tangent, chord)
        convex, concave = self.curvature(lo64, hi64)
        k_l = torch.where(convex, tangent, chord)
        k_u = torch.where(concave, tangent, chord)
        return k_l, k_u

    def relax(self, lo, hi, alpha=None):
        """Lines ``a_l x + b_l <= f(x) <= a_u x + b_u`` on ``[lo, hi]``; ``alpha`` (in [0, 1], lo's shape): where
        the tangent touches, as a fraction of the interval."""
        self.check(lo, hi)
        lo64, hi64 = lo.double(), hi.double()
        k_l, k_u = self.slopes(lo64, hi64, alpha)
        a_l, b_l, _ = self.intercepts(k_l, lo64, hi64, lo.dtype)
        a_u, _, b_u = self.intercepts(k_u, lo64, hi64, lo.dtype)
        if not (bool(torch.isfinite(b_l).all()) and bool(torch.isfinite(b_u).all())):
            raise self.refuse(f"a linear bound of {self.kind} overflows {str(lo.dtype).removeprefix('torch.')} on "
                              f"the input's bounds [{float(lo.min()):.4g}, {float(hi.max()):.4g}]")
        return a_l, b_l, a_u, b_u

    def relax_forward(self, lo, hi, Lw, Lb, Uw, Ub):
        """Lower / upper linear functions ``(W (B, n, *S), b (B, *S))`` of the input pushed through the lines."""
        a_l, b_l, a_u, b_u = self.relax(lo, hi)
        pl, pu = (a_l >= 0), (a_u >= 0)
        low = (torch.where(pl.unsqueeze(1), Lw, Uw) * a_l.unsqueeze(1), torch.where(pl, Lb, Ub) * a_l + b_l)
        up = (torch.where(pu.unsqueeze(1), Uw, Lw) * a_u.unsqueeze(1), torch.where(pu, Ub, Lb) * a_u + b_u)
        return low, up

    def describe(self):
        return self.kind


def _everywhere(lo):
    return torch.ones_like(lo, dtype=torch.bool), torch.zeros_like(lo, dtype=torch.bool)


class Exp(Smooth):
    kind = "Exp"

    def f(self, x):
        return torch.exp(x)

    df = f

    def stationary(self, k, lo, hi):
        return [torch.log(k)]  # NaN / -inf (clamped to lo) for k <= 0

    def curvature(self, lo, hi):
        return _everywhere(lo)


class Softplus(Smooth):
    """``log(1 + exp(x))``."""

    kind = "Softplus"

    def f(self, x):
        return torch.logaddexp(x, torch.zeros_like(x))

    def df(self, x):
        return torch.sigmoid(x)

    def stationary(self, k, lo, hi):
        return [torch.log(k) - torch.log1p(-k)]  # sigmoid(x) = k; NaN off (0, 1)

    def curvature(self, lo, hi):
        return _everywhere(lo)


class Log(Smooth):
    kind = "Log"

    def f(self, x):
        return torch.log(x)

    def df(self, x):
        return 1 / x

    def stationary(self, k, lo, hi):
        return [1 / k]  # k <= 0: off the positive interval (clamped)

    def curvature(self, lo, hi):
        convex, concave = _everywhere(lo)
        return concave, convex

    def check(self, lo, hi):
        if not bool((lo > 0).all()):
            raise self.refuse(f"Log of an input that may be <= 0 (lower bound {float(lo.min()):.4g}) is not "
                              "supported")


class Pow(Smooth):
    """``x ** p`` for a constant real ``p`` (not 0 or 1, which the loader turns into a constant and an identity).

    Integer ``p``: every real input (``p < 0``: an interval without 0); other ``p``: ``x >= 0`` (``p < 0``:
    ``x > 0``). ``f'' = p (p - 1) x^(p - 2)`` decides the curvature; an odd ``p >= 3`` across 0 has an inflection
    (the chord-slope pair); ``f'(x) = k`` has at most one root on each side of 0."""

    kind = "Pow"

    def __init__(self, p: float, label: str = ""):
        super().__init__(label)
        self.p = float(p)
        self.integer = self.p == math.floor(self.p)

    def f(self, x):
        return torch.pow(x, self.p)

    def df(self, x):
        return self.p * torch.pow(x, self.p - 1)

    def stationary(self, k, lo, hi):
        p = self.p
        q = k / p
        pos = torch.pow(q, 1 / (p - 1))  # x > 0: x^(p-1) = q
        if not self.integer:
            return [pos]
        neg = -torch.pow(q * (-1) ** (int(p) - 1), 1 / (p - 1))  # x = -t < 0: t^(p-1) = (-1)^(p-1) q
        return [pos, neg]

    def curvature(self, lo, hi):
        p = self.p
        up = p * (p - 1) > 0  # the sign of f'' on x > 0
        on_neg = up if (not self.integer or int(p) % 2 == 0) else not up  # times (-1)^(p - 2) on x < 0
        pos, neg = lo >= 0, hi <= 0
        false = torch.zeros_like(lo, dtype=torch.bool)
        convex = (pos if up else false) | (neg if on_neg else false)
        concave = (pos if not up else false) | (neg if not on_neg else false)
        if self.integer and int(p) % 2 == 0 and p > 0:  # convex on all of R
            convex = torch.ones_like(convex)
        return convex, concave

    def check(self, lo, hi):
        p = self.p
        if self.integer and p > 0:
            return
        if self.integer:  # p < 0: 0 excluded
            bad, what = (lo <= 0) & (hi >= 0), "an input interval that may contain 0"
        elif p > 0:
            bad, what = lo < 0, "an input that may be negative"
        else:
            bad, what = lo <= 0, "an input that may be <= 0"
        if bool(bad.any()):
            i = torch.nonzero(bad.reshape(-1))[0, 0]
            raise self.refuse(f"{self.describe()} of {what} (bounds [{float(lo.reshape(-1)[i]):.4g}, "
                              f"{float(hi.reshape(-1)[i]):.4g}]) is not supported")

    def describe(self):
        return f"{self.kind}({self.p:g})" if self.kind == "Pow" else self.kind


class Sqrt(Pow):
    kind = "Sqrt"

    def __init__(self, label: str = ""):
        super().__init__(0.5, label)

    def f(self, x):
        return torch.sqrt(x)


class Reciprocal(Pow):
    kind = "Reciprocal"

    def __init__(self, label: str = ""):
        super().__init__(-1.0, label)

    def f(self, x):
        return torch.reciprocal(x)
