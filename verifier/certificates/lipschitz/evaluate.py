"""The network in float64 for the Lipschitz certificates: a per-graph cache, the float64 copy of the
graph, logits (:func:`logits64`) and exact gradient norms at sample points (:func:`gradient_norms`,
lower bounds of the Lipschitz constants: the fast path's cheap check and ``clever.py`` build on them)."""
from __future__ import annotations

import numpy as np
import torch

from verifier.certificates.threads import few_threads
from verifier.ir.graph import Graph


def graph_cache(graph: Graph) -> dict:
    """The Lipschitz certificates' cache dict kept on ``graph`` (analyses, the float64 copy)."""
    c = graph.__dict__.get("_lipschitz_cache")
    if c is None:
        c = {}
        graph.__dict__["_lipschitz_cache"] = c
    return c


def graph64(graph: Graph) -> Graph:
    """``graph`` in float64 (cached)."""
    c = graph_cache(graph)
    if "f64" not in c:
        c["f64"] = graph if graph.dtype == torch.float64 else graph.to(dtype=torch.float64)
    return c["f64"]


def logits64(graph: Graph, x) -> np.ndarray:
    """Network outputs in float64 for inputs ``(B, n_inputs)`` (or one example)."""
    g = graph64(graph)
    t = torch.tensor(np.array(x, dtype=np.float64), device=g.device).reshape(-1, graph.n_inputs)
    with torch.no_grad():
        return g.forward(t).cpu().numpy()


@few_threads
def gradient_norms(graph: Graph, X, pairs=None) -> dict:
    """Exact gradient information at sample points ``X`` ``(S, n_inputs)``, float64.

    Returns ``{'jacobian_norm': (S,) ||J(x)||_2, 'pair': (S, K, K) ||grad (f_i - f_j)(x)||}``.
    These are LOWER bounds on the Lipschitz constants (of the map and of each pair).
    """
    g = graph64(graph)
    x = torch.tensor(np.array(X, dtype=np.float64), device=g.device).reshape(-1, graph.n_inputs)
    x = x.detach().requires_grad_(True)
    K = graph.n_outputs
    with torch.enable_grad():
        y = g.forward(x)
        rows = []
        for k in range(K):
            (gk,) = torch.autograd.grad(y[:, k].sum(), x, retain_graph=k < K - 1)
            rows.append(gk.reshape(x.shape[0], -1))
    J = torch.stack(rows, 1)  # (S, K, n)
    jn = torch.linalg.matrix_norm(J, ord=2)
    P = torch.zeros(J.shape[0], K, K, dtype=J.dtype)
    for i in range(K):
        P[:, i, :] = (J[:, i:i + 1, :] - J).norm(dim=-1)
    return {"jacobian_norm": jn.cpu().numpy(), "pair": P.cpu().numpy()}
