"""Sin and Cos: ``sin(x + phase)`` with phase 0 and pi / 2, on the shared rules of ``smooth.Smooth``.

``f'(x) = cos(x + phase) = k`` holds on two arithmetic progressions ``s + 2 pi n`` with ``s = +-acos(k) - phase``;
along each, ``f(x) - k x`` changes by ``-2 pi k`` a period, so its min and max over the points inside an interval
are at the progression's first and last point there: four candidates cover every stationary point, however
wide the interval. ``f`` is concave where ``sin(x + phase) >= 0`` and convex where it is <= 0: an interval
inside one half-period gets the tangent and the chord; one of at least a period gets slope 0 (its lines are the
exact range [-1, 1]); others the chord slope for both lines.
"""
from __future__ import annotations

import math

import torch

from verifier.ir.ops.smooth import Smooth

TWO_PI = 2 * math.pi


class Periodic(Smooth):
    phase = 0.0

    def df(self, x):
        return torch.cos(x + self.phase)

    def stationary(self, k, lo, hi):
        a = torch.acos(k.clamp(-1, 1))  # |k| > 1: no root; the points taken are harmless extra candidates
        out = []
        for s in (a - self.phase, -a - self.phase):
            first = s + TWO_PI * torch.ceil((lo - s) / TWO_PI)
            last = s + TWO_PI * torch.floor((hi - s) / TWO_PI)
            out += [first, last]
        return out

    def curvature(self, lo, hi):
        m = torch.floor((lo + self.phase) / math.pi)
        one_half = (hi + self.phase) <= (m + 1) * math.pi  # [lo, hi] + phase inside [m pi, (m + 1) pi]
        even = torch.remainder(m, 2) == 0  # sin >= 0 there: concave
        return one_half & ~even, one_half & even

    def slopes(self, lo64, hi64, alpha=None):
        k_l, k_u = super().slopes(lo64, hi64, alpha)
        wide = (hi64 - lo64) >= TWO_PI
        zero = torch.zeros_like(k_l)
        return torch.where(wide, zero, k_l), torch.where(wide, zero, k_u)


class Sin(Periodic):
    kind = "Sin"
    phase = 0.0

    def f(self, x):
        return torch.sin(x)


class Cos(Periodic):
    kind = "Cos"
    phase = math.pi / 2

    def f(self, x):
        return torch.cos(x)
