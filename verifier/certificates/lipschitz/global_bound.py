"""The global l2 Lipschitz bound of a network: the product of operator norms (``analysis``) or LipSDP
(``lipsdp``, which builds on the same analysis), whichever the caller asks for."""
from __future__ import annotations

import copy
import math
import time

import numpy as np

from verifier.certificates.lipschitz.analysis import product_bound
from verifier.certificates.lipschitz.lipsdp import LipSDPFailed, lipsdp
from verifier.certificates.lipschitz.results import LipschitzBound
from verifier.certificates.lipschitz.segments import DENSE_LIMIT
from verifier.certificates.threads import few_threads
from verifier.ir.errors import UnsupportedError
from verifier.ir.graph import Graph


@few_threads
def global_lipschitz(graph: Graph, method: str = "product", time_limit: float = 60.0, solver: str = "auto",
                     dense_limit: int = DENSE_LIMIT, estimate: bool = False, max_sdp_dim: int = 1500) -> LipschitzBound:
    """Global l2 Lipschitz bound: ``product`` or ``lipsdp`` (falls back to the product bound)."""
    if method == "product":
        return product_bound(graph, dense_limit, estimate)
    if method != "lipsdp":
        raise ValueError(f"unknown Lipschitz method {method!r}; choose product or lipsdp")
    t0 = time.perf_counter()
    prod = product_bound(graph, dense_limit, estimate)
    try:
        sdp = lipsdp(graph, time_limit=time_limit, solver=solver, max_dim=max_sdp_dim)
    except (UnsupportedError, LipSDPFailed) as e:
        out = copy.copy(prod)
        out.message = f"LipSDP not used ({e}); product bound"
        out.time_s = time.perf_counter() - t0
        return out
    L = min(sdp.L, prod.L)
    P = prod.pair_matrix(graph.n_outputs).copy()
    P = np.minimum(P, math.sqrt(2.0) * L)
    np.fill_diagonal(P, 0.0)
    return LipschitzBound(L, P, "lipsdp", prod.layers, time.perf_counter() - t0,
                          f"LipSDP {sdp.L:.6g} vs product {prod.L:.6g} (solver {sdp.message})")
