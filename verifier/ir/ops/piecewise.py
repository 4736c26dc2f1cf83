"""Piecewise-linear element-wise operators: LeakyRelu, Abs, Clip (and Max / Min with a constant), and the steps
Sign and Floor.

The continuous ones (``PiecewiseLinear``) are written as ``f(x) = a x + b + sum_k c_k relu(x - t_k)``
(``relu_form``): their interval rule is the exact range (the extremes lie at the interval's ends or at a kink
``t_k`` inside it), their linear relaxation is that of the one ReLU term shifted (one kink: CROWN's chord and
adaptive lower line, the roles swapped where ``c < 0``) or the chord-slope pair of parallel lines whose
intercepts are the exact extremes of ``f(x) - k x`` (several kinks), and the MILP encoding
(``backends.encoding.piecewise``) is exact through the same ReLU terms.

``Sign`` is a step (-1, 0, 1): monotone interval rule, sound lines through the jump, and an exact MILP
encoding with two binaries. ``Floor`` is a staircase: monotone interval rule, the lines ``x - 1`` and ``x``
(constants on one stair), and no MILP encoding (its number of stairs is unbounded).
Their gradient is zero almost everywhere: the attack descends surrogate gradients through them
(``verifier.attack.surrogate``).
"""
from __future__ import annotations

import torch

from verifier.ir.ops.activation import ReLU, _parallel_lines
from verifier.ir.ops.base import Op


class PiecewiseLinear(Op):
    """A continuous piecewise-linear element-wise function given by ``relu_form``."""

    affine = False

    def relu_form(self) -> tuple[float, torch.Tensor | float, list[tuple[torch.Tensor | float, float]]]:
        """``(a, b, [(t_k, c_k), ...])`` with ``f(x) = a x + b + sum_k c_k relu(x - t_k)`` (``b``, ``t_k``
        scalars or tensors broadcastable to the op's input, without the batch axis)."""
        raise NotImplementedError

    def ibp(self, b):
        lo, hi = b
        vals = [self.forward(lo), self.forward(hi)]
        for t, _ in self.relu_form()[2]:
            vals.append(self.forward(torch.minimum(torch.maximum(_as(t, lo), lo), hi)))
        st = torch.stack(vals)
        return st.min(0).values, st.max(0).values

    def relax(self, lo, hi, alpha=None):
        a, b, kinks = self.relu_form()
        if len(kinks) != 1:
            def stationary(k):
                return [_as(t, k).double().expand_as(k) for t, _ in kinks]
            return _parallel_lines(self.forward, stationary, lo, hi)
        (t, c), = kinks
        t = _as(t, lo)
        ls, _, us, ub = ReLU().relax(lo - t, hi - t, alpha)  # ls y <= relu(y) <= us y + ub, y = x - t
        low = (ls, -ls * t) if c >= 0 else (us, ub - us * t)
        up = (us, ub - us * t) if c >= 0 else (ls, -ls * t)
        b = _as(b, lo)
        return a + c * low[0], b + c * low[1], a + c * up[0], b + c * up[1]

    def default_alpha(self, lo, hi):
        (t, _), = self.relu_form()[2]
        return ReLU.default_alpha(lo - _as(t, lo), hi - _as(t, lo))


def _as(v, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype) if torch.is_tensor(v) else torch.tensor(float(v), dtype=like.dtype, device=like.device)


class LeakyRelu(PiecewiseLinear):
    kind = "LeakyRelu"

    def __init__(self, alpha: float = 0.01):
        self.alpha = float(alpha)

    def forward(self, x):
        return torch.where(x >= 0, x, x * self.alpha)

    def relu_form(self):
        return self.alpha, 0.0, [(0.0, 1.0 - self.alpha)]

    def describe(self):
        return f"LeakyRelu({self.alpha:g})"


class Abs(PiecewiseLinear):
    kind = "Abs"

    def forward(self, x):
        return x.abs()

    def relu_form(self):
        return -1.0, 0.0, [(0.0, 2.0)]


class Clip(PiecewiseLinear):
    """``min(max(x, lo), hi)`` with constant ``lo`` / ``hi`` (tensors broadcastable to the input, or None for no
    bound on that side; ``lo <= hi``): ONNX Clip, and Max / Min of a value and a constant."""

    kind = "Clip"
    _tensor_attrs = ("lo", "hi")

    def __init__(self, lo: torch.Tensor | None, hi: torch.Tensor | None):
        if lo is None and hi is None:
            raise ValueError("Clip needs a lower or an upper bound")
        self.lo, self.hi = lo, hi

    def forward(self, x):
        if self.lo is not None:
            x = torch.maximum(x, self.lo.to(x.dtype))
        if self.hi is not None:
            x = torch.minimum(x, self.hi.to(x.dtype))
        return x

    def relu_form(self):
        if self.lo is None:  # x - relu(x - hi)
            return 1.0, 0.0, [(self.hi, -1.0)]
        kinks = [(self.lo, 1.0)] + ([(self.hi, -1.0)] if self.hi is not None else [])
        return 0.0, self.lo, kinks  # lo + relu(x - lo) [- relu(x - hi)]

    def describe(self):
        def s(t):
            return "-" if t is None else (f"{float(t):g}" if t.numel() == 1 else f"tensor{tuple(t.shape)}")
        return f"Clip({s(self.lo)}, {s(self.hi)})"


class Sign(Op):
    """ONNX Sign: -1 below 0, 0 at 0, 1 above 0."""

    kind = "Sign"
    affine = False

    def forward(self, x):
        return torch.sign(x)

    def ibp(self, b):
        return torch.sign(b[0]), torch.sign(b[1])  # non-decreasing

    def relax(self, lo, hi, alpha=None):
        """Lines ``a_l x + b_l <= sign(x) <= a_u x + b_u`` on ``[lo, hi]``.

        Stable (``lo > 0`` or ``hi < 0``): the constant. Across 0: the lower line through ``(0, -1)`` and
        ``(hi, 1)`` (through ``(0, 0)`` and ``(hi, 1)`` when ``lo = 0``), the upper one through ``(lo, -1)``
        and ``(0, 1)`` (through ``(lo, -1)`` and ``(0, 0)`` when ``hi = 0``); each lies below (above) every
        value of the step on the interval, the jump at 0 included. As CROWN picks ReLU's lower line, a sloped
        line is kept only where the interval reaches further on its side of 0 (``hi >= -lo`` for the lower,
        ``-lo >= hi`` for the upper); elsewhere the constant -1 (1), also sound.
        """
        one, zero = torch.ones_like(lo), torch.zeros_like(lo)
        pos, neg = lo > 0, hi < 0
        safe_hi = torch.where(hi > 0, hi, one)
        safe_lo = torch.where(lo < 0, lo, -one)
        # lower line
        a_l = torch.where(hi > 0, torch.where(lo < 0, 2 / safe_hi, 1 / safe_hi), zero)
        b_l = torch.where(lo < 0, -one, zero)
        a_l = torch.where(pos | neg | ((lo < 0) & (hi < -lo)), zero, a_l)
        b_l = torch.where(pos, one, torch.where(neg, -one, b_l))
        # upper line
        a_u = torch.where(lo < 0, torch.where(hi > 0, -2 / safe_lo, -1 / safe_lo), zero)
        b_u = torch.where(hi > 0, one, zero)
        a_u = torch.where(pos | neg | ((hi > 0) & (-lo < hi)), zero, a_u)
        b_u = torch.where(pos, one, torch.where(neg, -one, b_u))
        return a_l, b_l, a_u, b_u


class Floor(Op):
    """ONNX Floor: the largest integer not above ``x``."""

    kind = "Floor"
    affine = False

    def forward(self, x):
        return torch.floor(x)

    def ibp(self, b):
        return torch.floor(b[0]), torch.floor(b[1])  # non-decreasing

    def relax(self, lo, hi, alpha=None):
        """Lines ``x - 1 < floor(x) <= x``; the constant ``floor(lo)`` for both where ``[lo, hi]`` lies on one
        stair (``floor(lo) = floor(hi)``)."""
        f_lo = torch.floor(lo)
        flat = f_lo == torch.floor(hi)
        a = torch.where(flat, torch.zeros_like(lo), torch.ones_like(lo))
        return a, torch.where(flat, f_lo, -torch.ones_like(lo)), a, torch.where(flat, f_lo, torch.zeros_like(lo))
