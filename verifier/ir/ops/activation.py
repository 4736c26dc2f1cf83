"""Element-wise nonlinear operators: ReLU (full bound support), Sigmoid and Tanh (forward and IBP)."""
from __future__ import annotations

import torch

from verifier.ir.errors import UnsupportedError
from verifier.ir.ops.base import Op


class ReLU(Op):
    kind = "Relu"
    affine = False
    upper_bias_nonneg = True  # the chord's constant -l u / (u - l) >= 0

    def forward(self, x):
        return torch.relu(x)

    def ibp(self, b):
        return torch.relu(b[0]), torch.relu(b[1])

    @staticmethod
    def default_alpha(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """CROWN's adaptive lower slope: 1 where ``u >= -l`` else 0."""
        return (hi >= -lo).to(lo.dtype)

    def relax(self, lo, hi, alpha=None):
        """Lines ``a_l x <= relu(x) <= a_u x + b_u`` valid on ``[lo, hi]``; returns (a_l, b_l=None, a_u, b_u).

        Stable active: slope 1; stable inactive: slope 0; unstable: the upper
        chord ``u/(u-l) (x - l)`` and the lower line ``alpha x`` with ``alpha``
        in [0, 1] (any such alpha is sound).
        """
        active = lo >= 0
        inactive = hi <= 0
        unstable = ~(active | inactive)
        denom = torch.where(unstable, hi - lo, torch.ones_like(lo))
        up_slope = torch.where(unstable, hi / denom, active.to(lo.dtype))
        up_bias = torch.where(unstable, -lo * hi / denom, torch.zeros_like(lo))
        if alpha is None:
            alpha = self.default_alpha(lo, hi)
        low_slope = torch.where(unstable, alpha, active.to(lo.dtype))
        return low_slope, None, up_slope, up_bias  # lower line through 0: no constant

    def relax_forward(self, lo, hi, Lw, Lb, Uw, Ub):
        """Push lower/upper linear functions (W (B, n, *S), b (B, *S)) through the relaxation."""
        ls, _, us, ub = self.relax(lo, hi)
        return (Lw * ls.unsqueeze(1), Lb * ls), (Uw * us.unsqueeze(1), Ub * us + ub)


def _parallel_lines(f, stationary, lo, hi):
    """Sound lines ``k x + b_l <= f(x) <= k x + b_u`` on [lo, hi] with k the chord slope.

    The intercepts are the exact min / max of ``f(x) - k x`` over the interval: it is
    attained at an end point or at a point where ``f'(x) = k`` (``stationary(k)``
    returns those candidates). A small outward margin covers rounding.
    """
    lo64, hi64 = lo.double(), hi.double()
    width = hi64 - lo64
    flo, fhi = f(lo64), f(hi64)
    k = torch.where(width > 1e-12, (fhi - flo) / width.clamp(min=1e-12), torch.zeros_like(width))
    cands = [flo - k * lo64, fhi - k * hi64]
    for x in stationary(k):
        inside = (x >= lo64) & (x <= hi64)
        g = f(x) - k * x
        cands.append(torch.where(inside, g, cands[0]))
    stack = torch.stack(cands)
    b_l, b_u = stack.min(0).values, stack.max(0).values
    margin = 1e-7 * (1 + b_l.abs() + b_u.abs())
    out = lo.dtype
    return k.to(out), (b_l - margin).to(out), k.to(out), (b_u + margin).to(out)


def _sigmoid_stationary(k):
    disc = (1 - 4 * k).clamp(min=0).sqrt()
    s1, s2 = ((1 - disc) / 2).clamp(1e-15, 1 - 1e-15), ((1 + disc) / 2).clamp(1e-15, 1 - 1e-15)
    valid = k <= 0.25
    xs = [torch.log(s / (1 - s)) for s in (s1, s2)]
    return [torch.where(valid, x, torch.full_like(x, float("nan"))) for x in xs]


def _tanh_stationary(k):
    r = (1 - k).clamp(min=0, max=1 - 1e-15).sqrt()
    valid = k <= 1
    xs = [torch.atanh(r), torch.atanh(-r)]
    return [torch.where(valid, x, torch.full_like(x, float("nan"))) for x in xs]


class MonotoneSmooth(Op):
    """A smooth increasing S-shaped activation (``fn``; ``stationary(k)`` gives the points where its slope is
    ``k``): forward, interval bounds (monotone) and the sound parallel-line relaxation."""

    affine = False
    fn = staticmethod(torch.sigmoid)
    stationary = staticmethod(_sigmoid_stationary)

    def forward(self, x):
        return self.fn(x)

    def ibp(self, b):
        """``fn`` of the ends in float64, rounded outward to the dtype (float32 sigmoid / tanh are not correctly
        rounded: one ulp inside the exact range otherwise)."""
        lo, hi = b
        dt = lo.dtype
        lo_f, hi_f = self.fn(lo.double()).to(dt), self.fn(hi.double()).to(dt)
        return torch.nextafter(lo_f, torch.full_like(lo_f, -float("inf"))), \
            torch.nextafter(hi_f, torch.full_like(hi_f, float("inf")))

    def relax(self, lo, hi, alpha=None):
        return _parallel_lines(self.fn, self.stationary, lo, hi)

    def relax_forward(self, lo, hi, Lw, Lb, Uw, Ub):
        k, bl, _, bu = self.relax(lo, hi)  # k >= 0 (monotone)
        return (Lw * k.unsqueeze(1), Lb * k + bl), (Uw * k.unsqueeze(1), Ub * k + bu)


class Sigmoid(MonotoneSmooth):
    """Sigmoid: forward, interval bounds (monotone) and sound parallel-line relaxation."""

    kind = "Sigmoid"
    fn = staticmethod(torch.sigmoid)
    stationary = staticmethod(_sigmoid_stationary)


class Tanh(MonotoneSmooth):
    """Tanh: forward, interval bounds (monotone) and sound parallel-line relaxation."""

    kind = "Tanh"
    fn = staticmethod(torch.tanh)
    stationary = staticmethod(_tanh_stationary)


class MaxPool(Op):
    """Max pooling: forward and interval bounds (monotone); no linear relaxation."""

    kind = "MaxPool"
    affine = False

    def __init__(self, kernel, strides, pads, dilations=None, ceil_mode=False):
        self.kernel = tuple(kernel)
        self.strides = tuple(strides)
        self.pads = tuple(pads[: len(self.kernel)])
        self.dilations = tuple(dilations or [1] * len(self.kernel))
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x):
        lead = x.shape[:-3]
        y = torch.nn.functional.max_pool2d(x.reshape(-1, *x.shape[-3:]), self.kernel, self.strides, self.pads,
                                           self.dilations, ceil_mode=self.ceil_mode)
        return y.reshape(*lead, *y.shape[1:])

    def ibp(self, b):
        return self.forward(b[0]), self.forward(b[1])

    def relax(self, lo, hi, alpha=None):
        raise UnsupportedError("linear bounds for MaxPool are not implemented; use --method ibp or attack")
