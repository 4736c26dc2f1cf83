"""The statistics of randomized smoothing: the one-sided Clopper-Pearson lower bound (CERTIFY), the
two-sided exact binomial test (PREDICT) and the standard normal quantile (the radius)."""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import bdtrc
from scipy.stats import binomtest, norm


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper-Pearson lower confidence bound on a binomial proportion.

    Returns the ``p_L`` with ``P(Bin(n, p_L) >= k) = alpha``: with probability at
    least ``1 - alpha``, the true proportion is at least ``p_L``. Computed by
    root-finding on the exact binomial tail (``scipy.special.bdtrc``) and rounded
    down, so it never exceeds the exact bound by more than rounding.
    """

    k, n = int(k), int(n)
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if k == 0:
        return 0.0
    if k == n:  # closed form: p^n = alpha
        return float(np.nextafter(alpha ** (1.0 / n), 0.0))

    def tail(p: float) -> float:  # P(X >= k) - alpha, increasing in p
        return float(bdtrc(k - 1, n, p)) - alpha

    xtol = 1e-15
    root = brentq(tail, 0.0, 1.0, xtol=xtol, rtol=4 * np.finfo(float).eps, maxiter=500)
    # step down until the tail is at most alpha (conservative side of the root)
    p = root
    for _ in range(8):
        if tail(p) <= 0.0:
            break
        p = max(0.0, p - max(xtol, 4 * np.finfo(float).eps * p))
    return float(p)


def binomial_test_pvalue(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test p-value (as ``scipy.stats.binomtest``)."""

    if n == 0:
        return 1.0
    return float(binomtest(int(k), int(n), p).pvalue)


def phi_inv(p: float) -> float:
    return float(norm.ppf(p))
