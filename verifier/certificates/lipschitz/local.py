"""Local Lipschitz bounds: valid on an input box, with the ReLUs that cannot be active there masked out.

The ReLUs whose pre-activation upper bound on the box (interval or CROWN bounds) is <= 0 are
masked out of the segments next to them; each masked segment norm is at most the unmasked one,
and the result is clipped to the global bound, so it is never larger. :func:`local_certified_radius`
turns them into certified radii on l_inf boxes around a point.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from verifier.bounds.crown import intermediate_bounds
from verifier.certificates.lipschitz.analysis import product_bound, segment_analysis
from verifier.certificates.lipschitz.evaluate import graph64, logits64
from verifier.certificates.lipschitz.radii import radius_from_logits
from verifier.certificates.lipschitz.results import LipschitzBound, Radius
from verifier.certificates.lipschitz.segments import DENSE_LIMIT, masked_norm
from verifier.certificates.threads import few_threads
from verifier.ir.graph import Graph


def _box_bounds(graph: Graph, lo: torch.Tensor, hi: torch.Tensor, bounds_method: str) -> dict:
    """Bounds of every node of the float64 graph on the boxes ``[lo, hi]`` (``ibp`` or a CROWN variant)."""
    g64 = graph64(graph)
    lo_, hi_ = lo.to(g64.device), hi.to(g64.device)
    if bounds_method == "ibp":
        return g64.ibp(lo_, hi_)
    return intermediate_bounds(g64, lo_, hi_, bounds_method)


@few_threads
def local_lipschitz(graph: Graph, lo, hi, bounds_method: str = "crown", bounds: dict | None = None,
                    global_bound: LipschitzBound | None = None, dense_limit: int = DENSE_LIMIT) -> list[LipschitzBound]:
    """Lipschitz bounds valid on each input box ``[lo[b], hi[b]]`` (shape ``(B, n_inputs)``).

    ReLUs whose pre-activation upper bound on the box is <= 0 are masked out of the
    adjacent segments. Every bound is clipped to the global one (never larger).
    """
    t0 = time.perf_counter()
    a = segment_analysis(graph, dense_limit)
    glob = global_bound or a.global_bound()
    lo = torch.tensor(np.array(lo, dtype=np.float64)).reshape(-1, graph.n_inputs)
    hi = torch.tensor(np.array(hi, dtype=np.float64)).reshape(-1, graph.n_inputs)
    if bounds is None:
        bounds = _box_bounds(graph, lo, hi, bounds_method)
    K = graph.n_outputs
    gP = glob.pair_matrix(K)
    out = []
    for b in range(lo.shape[0]):
        masks = a.masks(bounds, b)

        def seg_norm(seg, masks=masks):
            d_in, d_out = a.seg_masks(seg, masks)
            return masked_norm(a.info[seg.end], d_in, d_out)

        L = a.propagate(seg_norm)
        Lout = min(L[graph.output_name], glob.L)
        P = a.pairs(L, masks.get(a.tail.start) if a.tail is not None else None)
        P = gP.copy() if P is None else np.minimum(P, gP)
        P = np.minimum(P, math.sqrt(2.0) * Lout)
        np.fill_diagonal(P, 0.0)
        active = sum(int(m.sum()) for m in masks.values())
        total = sum(m.numel() for m in masks.values())
        out.append(LipschitzBound(Lout, P, "local-" + glob.method, [], 0.0,
                                  f"{active}/{total} ReLUs possibly active"))
    dt = time.perf_counter() - t0
    for r in out:
        r.time_s = dt / max(1, len(out))
    return out


@few_threads
def local_certified_radius(graph: Graph, x, global_bound: LipschitzBound | None = None,
                           bounds_method: str = "crown", factors=(1.0, 1.5, 2.0, 3.0, 4.0, 6.0)) -> Radius:
    """Certified l2 and l_inf radii from local Lipschitz bounds on l_inf boxes around ``x``.

    On a box of half-width ``e`` with local pair bounds ``L_j(e)``, let
    ``r(e) = min_j m_j / L_j(e)``. The box contains the l2 ball of radius ``e`` and the
    l_inf ball of radius ``e``, whose points lie within l2 distance ``e sqrt(n)``; so
    ``min(r(e), e)`` is a certified l2 radius and ``min(r(e) / sqrt(n), e)`` a certified
    l_inf radius. Half-widths ``factor * r_global`` are tried in increasing order, for
    l_inf and for l2, stopping as soon as a larger box cannot help (``r(e)`` below the
    box, or no ReLU stable any more). The result is never below the global radii.
    """
    glob = global_bound or product_bound(graph)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    n = graph.n_inputs
    sq = math.sqrt(n)
    z = logits64(graph, x)[0]
    K = graph.n_outputs
    base = radius_from_logits(z, glob.pair_matrix(K), n)
    if base.l2 <= 0 or not math.isfinite(base.l2):
        return base
    best = {"l2": base.l2, "linf": base.linf}
    seen: dict[float, float] = {}

    def r_of(e: float) -> tuple[float, bool]:
        if e not in seen:
            lb = local_lipschitz(graph, x[None, :] - e, x[None, :] + e, bounds_method, global_bound=glob)[0]
            r = radius_from_logits(z, lb.pair_matrix(K), n, base.prediction).l2
            seen[e] = (r, lb.L >= glob.L * (1 - 1e-9))
        return seen[e]

    for kind, start in (("linf", base.linf), ("l2", base.l2)):
        for f in factors:
            e = float(f * start)
            r, no_gain = r_of(e)
            cert = min(r / sq, e) if kind == "linf" else min(r, e)
            best[kind] = max(best[kind], cert)
            # also the other norm from the same box
            other = "l2" if kind == "linf" else "linf"
            best[other] = max(best[other], min(r / sq, e) if other == "linf" else min(r, e))
            if no_gain or cert < e:
                break
    return Radius(base.prediction, base.margin, best["l2"], best["linf"])
