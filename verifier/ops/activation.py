"""Element-wise nonlinear operators: ReLU (full bound support), Sigmoid and Tanh (forward and IBP)."""
from __future__ import annotations

import torch

from ..errors import UnsupportedError
from .base import Op


class ReLU(Op):
    kind = "Relu"
    affine = False

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


class Sigmoid(Op):
    kind = "Sigmoid"
    affine = False

    def forward(self, x):
        return torch.sigmoid(x)

    def ibp(self, b):
        return torch.sigmoid(b[0]), torch.sigmoid(b[1])

    def relax(self, lo, hi, alpha=None):
        raise UnsupportedError("linear bounds for Sigmoid are not implemented; use --method ibp or attack")


class Tanh(Op):
    kind = "Tanh"
    affine = False

    def forward(self, x):
        return torch.tanh(x)

    def ibp(self, b):
        return torch.tanh(b[0]), torch.tanh(b[1])

    def relax(self, lo, hi, alpha=None):
        raise UnsupportedError("linear bounds for Tanh are not implemented; use --method ibp or attack")


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
