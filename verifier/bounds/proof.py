"""When a bound refutes a row of the unsafe set: the one rule every proof decision uses.

A row of a disjunct is ``C_i y <= d_i`` (unsafe) or, flagged strict, ``C_i y < d_i``. A sound lower
bound ``lb`` of ``C_i y - d_i`` over the input set, with ``tol`` its allowance for rounding (or a
solver's tolerance), refutes the row when

- non-strict: ``lb - tol > 0`` (no input reaches ``C_i y - d_i <= 0``);
- strict: ``lb - tol >= 0`` (no input reaches ``C_i y - d_i < 0``).

The comparisons are made as ``lb > tol`` and ``lb >= tol`` (for floats ``lb - tol >= 0`` exactly when
``lb >= tol``: a difference of two finite floats is zero only when they are equal). A NaN in ``lb`` or
``tol`` never refutes anything (every comparison with NaN is False). ``refutes`` takes torch tensors,
numpy arrays or Python floats; ``strict`` is None (no strict row) or a bool mask that broadcasts
against ``lb``.

A solver that minimises ``t >= max_i (C_i y - d_i)`` over a disjunct (MILP, LP) refutes it by a bound on
``t``: strictly when every row is strict (``max_is_strict``: then the unsafe set is ``t < 0``), else as a
non-strict row (some row reaches zero while the strict ones stay negative only when ``t <= 0``).

``within_rounding`` marks the rows whose float bound cannot decide them but an exact computation
(``verifier.bounds.exact``) might: the bound is within its rounding allowance of zero or above it.
"""
from __future__ import annotations

import numpy as np
import torch


def refutes(lb, tol, strict=None):
    """The rows that the lower bounds ``lb`` (allowance ``tol``) refute; strict rows (``strict``) need ``lb >= tol``."""
    if torch.is_tensor(lb):
        out = lb > tol
        if strict is None:
            return out
        s = torch.as_tensor(strict, dtype=torch.bool, device=lb.device)
        return out | (s & (lb >= tol))
    if isinstance(lb, np.ndarray) or isinstance(tol, np.ndarray) or isinstance(strict, np.ndarray):
        out = np.greater(lb, tol)
        if strict is None:
            return out
        return out | (np.asarray(strict, dtype=bool) & np.greater_equal(lb, tol))
    return bool(lb > tol or (bool(strict) and lb >= tol))


# absolute slack of "within rounding of zero": the allowances of the intermediate layers (an unstable-looking
# ReLU whose pre-activation bound is 0 widened to +1e-6) move a bound that is 0 in exact arithmetic below -tol
NEAR_ZERO = 1e-4


def within_rounding(lb, tol):
    """The rows whose lower bound is at least ``-tol - NEAR_ZERO``: possibly undecided by rounding only (or
    already refuted). Only picks the rows an exact computation is tried on; it proves nothing."""
    if torch.is_tensor(lb):
        return (lb + tol + NEAR_ZERO) >= 0
    return np.greater_equal(np.asarray(lb) + np.asarray(tol) + NEAR_ZERO, 0)


def max_is_strict(strict) -> bool:
    """Whether a disjunct's ``t = max_i (C_i y - d_i)`` is unsafe only for ``t < 0``: every row strict (``strict``
    the disjunct's (m,) mask, or None)."""
    return strict is not None and len(strict) > 0 and bool(np.all(strict))
