"""Lipschitz fast path: answer ``unsat`` for robustness specs that a Lipschitz radius already covers.

A robustness spec is an l_inf box around a point whose unsafe set is "some other class
j reaches the target t": every disjunct is one row ``y_t - y_j <= 0`` (``C = e_t - e_j``,
``d = 0``). With ``c`` the box centre, ``h`` the actual half-widths (so a box clipped to
the input domain is handled exactly) and ``L_tj`` a Lipschitz bound of ``f_t - f_j`` valid
on the box, every ``x`` in the box has

    f_t(x) - f_j(x) >= f_t(c) - f_j(c) - L_tj * ||x - c||_2 >= m_j(c) - L_tj * ||h||_2,

so the disjunct is unreachable when that is positive beyond a rounding allowance. The
centre's logits are computed in float64 and a safety margin is subtracted; ``||h||_2`` is
rounded up. Global bounds are tried first (cached per graph), then a local bound on the box
that masks the ReLUs that interval bounds show inactive there.

The same argument covers slightly more general specs soundly (several boxes, rows
``a (y_t - y_j) <= d`` with ``a > 0``, disjuncts with several rows: one certified row
suffices); anything else returns None. The answer is ``unsat`` or nothing: this method
never claims ``sat``. A strict row (``a (y_t - y_j) < a delta``) is certified by a slack of at least zero,
a non-strict one by a positive slack (``verifier.bounds.proof.refutes``; the slack already has the safety
margin taken off).
"""
from __future__ import annotations

import math
import time

import numpy as np

from verifier.bounds.proof import refutes
from verifier.certificates.lipschitz.analysis import product_bound
from verifier.certificates.lipschitz.evaluate import gradient_norms, logits64
from verifier.certificates.lipschitz.local import local_lipschitz
from verifier.certificates.lipschitz.radii import safety_margin
from verifier.certificates.lipschitz.results import LipschitzBound
from verifier.ir.deadline import Deadline
from verifier.ir.errors import UnsupportedError
from verifier.ir.graph import Graph
from verifier.ir.result import Result, Verdict
from verifier.ir.spec import Spec

METHOD = "lipschitz"
_TICK = 1024  # disjuncts between two looks at the deadline


def pair_row(c: np.ndarray, d: float) -> tuple[int, int, float, float] | None:
    """``(t, j, delta, a)`` when the row ``c . y <= d`` reads ``a (y_t - y_j) <= a delta`` (a > 0), else None."""
    nz = np.flatnonzero(c)
    if nz.size != 2:
        return None
    a, b = nz
    if c[a] > 0 and c[b] == -c[a]:
        t, j = a, b
    elif c[b] > 0 and c[a] == -c[b]:
        t, j = b, a
    else:
        return None
    return int(t), int(j), float(d) / float(c[t]), float(c[t])


def robustness_target(spec: Spec) -> int | None:
    """The target class when ``spec`` is a plain robustness spec (as the issue defines it), else None.

    Plain: one input region; every disjunct is a single row ``y_t - y_j <= 0`` (coefficients
    +1 / -1, ``d = 0``) with the same ``t``.
    """
    if len(spec.regions()) != 1 or not spec.disjuncts:
        return None
    target = None
    for dj in spec.disjuncts:
        if dj.C.shape[0] != 1 or dj.d[0] != 0.0:
            return None
        pr = pair_row(dj.C[0], 0.0)
        if pr is None or dj.C[0][pr[0]] != 1.0:
            return None
        if target is None:
            target = pr[0]
        elif pr[0] != target:
            return None
    return target


def box_center_radius(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre of the box and an upper bound on the largest l2 distance from it to a box point."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    c = (lo + hi) / 2.0
    h = np.maximum(hi - c, c - lo)
    r = float(np.sqrt(np.sum(h * h)))
    return c, r * (1.0 + 1e-12) + 1e-300


def _disjunct_certified(rows, z: np.ndarray, P: np.ndarray, r: float) -> tuple[bool, float]:
    """Is one of the disjunct's pair rows ``(t, j, delta, a, strict)`` provably violated everywhere? Also the best
    lower bound of ``C y - d``."""
    best = -math.inf
    for t, j, delta, a, strict in rows:
        slack = a * (z[t] - z[j] - delta - P[t, j] * r - safety_margin(z[t], z[j]))
        best = max(best, slack)
        if refutes(slack, 0.0, strict):
            return True, best
    return False, best


def lipschitz_fast_path(graph: Graph, spec: Spec, local: str | None = "ibp",
                        bound: LipschitzBound | None = None, deadline: Deadline | None = None) -> Result | None:
    """``Result(UNSAT, method='lipschitz')`` when Lipschitz radii cover every input region, else None.

    ``local``: bounds used for the local Lipschitz bound when the global one does not
    suffice (``ibp``, ``crown``, or None to skip). ``deadline``: looked at every :data:`_TICK` disjuncts (a spec
    of many disjuncts takes a while here); None once it has passed.
    """
    t0 = time.perf_counter()
    if spec.n_inputs != graph.n_inputs or spec.n_outputs != graph.n_outputs:
        return None
    rows_of = []
    for k, dj in enumerate(spec.disjuncts):
        if deadline is not None and not (k + 1) % _TICK and deadline.expired():
            return None
        strict = dj.strict_rows()
        rows = [(*pr, bool(strict[k])) for k, pr in ((k, pair_row(dj.C[k], dj.d[k])) for k in range(dj.C.shape[0]))
                if pr is not None]
        if not rows:
            return None
        rows_of.append(rows)
    # Cheap necessary condition first: every Lipschitz bound valid on a box is at least the
    # gradient norm at the box centre, so when even that cannot cover the box, stop here.
    # (Returning None is always safe; only the unsat below needs the sound bounds.)
    regions = spec.regions()
    if deadline is not None and deadline.expired():
        return None
    try:
        for lo, hi, idx in regions:
            c, r = box_center_radius(lo, hi)
            z = logits64(graph, c)[0]
            G = gradient_norms(graph, c[None, :])["pair"][0]
            for i in idx:
                if not any(a * (z[t] - z[j] - delta) >= a * G[t, j] * r for t, j, delta, a, _ in rows_of[i]):
                    return None
    except (UnsupportedError, NotImplementedError):
        return None
    try:
        glob = bound or product_bound(graph)
    except (UnsupportedError, NotImplementedError):
        return None
    K = graph.n_outputs
    gP = glob.pair_matrix(K)
    used = "global"
    worst = math.inf
    for lo, hi, idx in regions:
        c, r = box_center_radius(lo, hi)
        z = logits64(graph, c)[0]
        if not np.all(np.isfinite(z)):
            return None
        pending = []
        for i in idx:
            ok, slack = _disjunct_certified(rows_of[i], z, gP, r)
            if not ok:
                pending.append(i)
            else:
                worst = min(worst, slack)
        if pending and local:
            try:
                lb = local_lipschitz(graph, lo[None, :], hi[None, :], local, global_bound=glob)[0]
            except (UnsupportedError, NotImplementedError):
                return None
            lP = lb.pair_matrix(K)
            for i in pending:
                ok, slack = _disjunct_certified(rows_of[i], z, lP, r)
                if not ok:
                    return None
                worst = min(worst, slack)
            used = f"local ({local})"
        elif pending:
            return None
    dt = time.perf_counter() - t0
    return Result(Verdict.UNSAT, method=METHOD, bound=float(worst), time_s=dt,
                  timings={"lipschitz": dt},
                  stats={"lipschitz_L": glob.L, "lipschitz_bound": used, "min_slack": float(worst)},
                  message=f"Lipschitz radius covers the input box ({used} bound, L <= {glob.L:.4g})")
