"""The solver-neutral linear model every solver adapter accepts, and a rigorous bound of its LP relaxation.

``LinearModel``: cost, variable bounds, integrality and a sparse row matrix with
row bounds (``min cost . v + offset`` s.t. ``row_lo <= A v <= row_hi``).

``safe_lp_bound`` turns any row multipliers of an LP into a rigorous lower bound
of its optimum (Neumaier and Shcherbina 2004): ``c x = (c - A^T y) x + y^T A x``
minimised term by term over the variable and row bounds, with a margin for the
float64 rounding of the evaluation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp


@dataclass
class LinearModel:
    """``min cost . v + offset`` s.t. ``row_lo <= A v <= row_hi``, ``lb <= v <= ub``, ``v[integer]`` integral."""

    cost: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray  # bool mask
    A: sp.csr_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    offset: float = 0.0
    input_vars: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    t_var: int = -1

    @property
    def n_vars(self) -> int:
        return len(self.lb)

    @property
    def n_rows(self) -> int:
        return self.A.shape[0]

    @property
    def n_integer(self) -> int:
        return int(self.integer.sum())

    def with_cost(self, cost: np.ndarray, offset: float = 0.0) -> "LinearModel":
        return LinearModel(np.asarray(cost, dtype=np.float64), self.lb, self.ub, self.integer, self.A, self.row_lo,
                           self.row_hi, offset, self.input_vars, self.t_var)

    def relaxed(self) -> "LinearModel":
        """The same model with integrality dropped."""
        return LinearModel(self.cost, self.lb, self.ub, np.zeros_like(self.integer), self.A, self.row_lo,
                           self.row_hi, self.offset, self.input_vars, self.t_var)

    def with_fixed(self, idx: np.ndarray, values: np.ndarray) -> "LinearModel":
        lb, ub = self.lb.copy(), self.ub.copy()
        lb[idx] = values
        ub[idx] = values
        return LinearModel(self.cost, lb, ub, self.integer.copy(), self.A, self.row_lo, self.row_hi, self.offset,
                           self.input_vars, self.t_var)

    def objective_value(self, v: np.ndarray) -> float:
        return float(self.cost @ v + self.offset)

    def max_violation(self, v: np.ndarray) -> float:
        """Largest violation of a row or variable bound by the point ``v`` (for tests and diagnostics)."""
        r = self.A @ v
        viol = [np.maximum(self.row_lo - r, 0), np.maximum(r - self.row_hi, 0), np.maximum(self.lb - v, 0),
                np.maximum(v - self.ub, 0)]
        return float(max((x.max() if x.size else 0.0) for x in viol))


def safe_lp_bound(model: LinearModel, row_dual: np.ndarray | None) -> float:
    """Rigorous lower bound of the LP relaxation of ``model`` from any row multipliers ``y``.

    ``min c.v  >=  sum_j min(r_j lb_j, r_j ub_j) + sum_i min(y_i lo_i, y_i hi_i)`` with
    ``r = c - A^T y``; multipliers whose row side is infinite are dropped (set to 0),
    which keeps the bound valid. Returns ``-inf`` when a variable with a nonzero
    reduced cost is unbounded on the wrong side.
    """
    n = model.n_vars
    y = np.zeros(model.n_rows) if row_dual is None else np.asarray(row_dual, dtype=np.float64).copy()
    y[(y > 0) & ~np.isfinite(model.row_lo)] = 0.0
    y[(y < 0) & ~np.isfinite(model.row_hi)] = 0.0
    AT = model.A.T.tocsr()
    r = model.cost - AT @ y
    lb, ub = model.lb, model.ub
    with np.errstate(invalid="ignore"):
        term_v = np.where(r > 0, r * lb, np.where(r < 0, r * ub, 0.0))
        rl = np.where(np.isfinite(model.row_lo), model.row_lo, 0.0)
        rh = np.where(np.isfinite(model.row_hi), model.row_hi, 0.0)
        term_r = np.where(y > 0, y * rl, np.where(y < 0, y * rh, 0.0))
    if not np.all(np.isfinite(term_v)):
        return -math.inf
    val = float(term_v.sum() + term_r.sum() + model.offset)
    # rounding allowance: every product and sum above carries at most ~n eps relative error
    xmax = np.maximum(np.abs(np.where(np.isfinite(lb), lb, 0)), np.abs(np.where(np.isfinite(ub), ub, 0)))
    mag = float((np.abs(model.cost) + abs(AT) @ np.abs(y)) @ xmax + np.abs(term_r).sum() + abs(model.offset))
    return val - 1e-12 * (n + model.n_rows + 10) * mag - 1e-15
