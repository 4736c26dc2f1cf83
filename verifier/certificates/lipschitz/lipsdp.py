"""LipSDP-Neuron (Fazlyab et al., NeurIPS 2019): a global l2 Lipschitz bound of a feed-forward chain of dense
layers and ReLU / Tanh / Sigmoid activations, from a semidefinite program (``global_lipschitz(method='lipsdp')``
in ``global_bound.py`` uses it and falls back to the product bound).

One nonnegative multiplier per neuron (the coupled "network" multiplier form is not used: later work showed it
invalid), solved with cvxpy (Clarabel, else SCS) under a time limit. The solver's multipliers are then *checked*:
the certified constant is recomputed exactly from them through a Schur complement in float64, so solver
tolerances cannot make the bound too small.
"""
from __future__ import annotations

import math
import threading
import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from verifier.certificates.lipschitz.analysis import ACT_BETA, product_bound, segment_analysis
from verifier.certificates.lipschitz.norms import NORM_INFLATE
from verifier.certificates.lipschitz.results import LipschitzBound
from verifier.certificates.lipschitz.segments import DENSE_LIMIT
from verifier.certificates.threads import few_threads
from verifier.ir.errors import UnsupportedError
from verifier.ir.graph import Graph
from verifier.ir.ops import ReLU


class LipSDPFailed(RuntimeError):
    """The SDP could not be solved or its certificate could not be checked."""


@dataclass
class LipSDPResult:
    L: float
    rho: float
    time_s: float
    message: str


def mlp_chain(graph: Graph, dense_limit: int = DENSE_LIMIT) -> tuple[list[np.ndarray], list[float], list[type]]:
    """Dense weights ``W_0..W_l`` (out x in), activation slopes and types of a feed-forward chain.

    The graph must be ``segment, act, segment, act, ..., segment`` from input to output,
    with ReLU / Tanh / Sigmoid activations; raises UnsupportedError otherwise.
    """
    a = segment_analysis(graph, dense_limit)
    cons = a.consumers
    weights, betas, kinds = [], [], []
    first = a.by_first()
    cur = graph.input_name
    while True:
        nxt = cons.get(cur, [])
        if len(nxt) != 1 or nxt[0] not in first:
            raise UnsupportedError("LipSDP needs a chain of affine layers and activations (no branches)")
        seg = first[nxt[0]]
        info = a.info[seg.end]
        if info.dense is None:
            raise UnsupportedError(f"layer {seg.describe()} is too large for LipSDP")
        weights.append(info.dense.cpu().numpy())
        if seg.end == graph.output_name:
            break
        after = cons.get(seg.end, [])
        if len(after) != 1:
            raise UnsupportedError("LipSDP needs a chain of affine layers and activations (no branches)")
        act = graph.by_name[after[0]]
        if type(act.op) not in ACT_BETA:
            raise UnsupportedError(f"LipSDP does not handle {act.op.describe()}")
        betas.append(ACT_BETA[type(act.op)])
        kinds.append(type(act.op))
        cur = act.name
    if len(weights) < 2:
        raise UnsupportedError("LipSDP needs at least one hidden layer")
    return weights, betas, kinds


def _lipsdp_matrix_parts(Ws, betas, c=None):
    """Constant pieces of M(rho, T) for LipSDP-Neuron (alpha = 0): see :func:`lipsdp`.

    The input block is reduced to the row space of ``W_0`` (thin SVD ``W_0 = U S V^T``):
    with an orthogonal change of input coordinates, M(rho, T) splits into the same LMI
    with ``W_0`` replaced by ``U S`` and a separate block ``-rho I``, so both are
    equivalent for ``rho >= 0``.
    """
    Ws = list(Ws)
    U, S, _ = np.linalg.svd(Ws[0], full_matrices=False)
    keep = S > S.max() * 1e-13 if S.size and S.max() > 0 else np.zeros_like(S, dtype=bool)
    Ws[0] = U[:, keep] * S[keep]
    n0 = Ws[0].shape[1]
    hidden = [W.shape[0] for W in Ws[:-1]]
    n = sum(hidden)
    D = n0 + n
    A = np.zeros((n, D))
    r = c0 = 0
    for W in Ws[:-1]:
        A[r:r + W.shape[0], c0:c0 + W.shape[1]] = W
        r += W.shape[0]
        c0 += W.shape[1]
    beta = np.concatenate([np.full(h, b) for h, b in zip(hidden, betas)])
    Wl = Ws[-1] if c is None else (np.asarray(c, dtype=np.float64).reshape(1, -1) @ Ws[-1])
    last = Wl.T @ Wl  # (n_l, n_l)
    C0 = np.zeros((D, D))
    C0[D - hidden[-1]:, D - hidden[-1]:] = last
    return A, beta, C0, n0, n, D


def _lipsdp_M0(A, beta, C0, n0, t) -> np.ndarray:
    """M(0, T) in float64 for multipliers ``t``."""
    n, D = A.shape
    X = A.T * (beta * t)[None, :]  # (D, n): A^T diag(beta t)
    M0 = np.zeros((D, D))
    M0[:, n0:] += X
    M0[n0:, :] += X.T
    M0[n0:, n0:] -= 2.0 * np.diag(t)
    M0 += C0
    return 0.5 * (M0 + M0.T)


def _lipsdp_certify_rho(A, beta, C0, n0, t) -> float:
    """Smallest rho with M(rho, T) <= 0 for the given multipliers, checked in float64.

    M = [[-rho I, Q], [Q^T, R]]; with R negative definite, M <= 0 iff
    rho >= lambda_max(Q (-R)^{-1} Q^T) (Schur complement).
    """
    t = np.maximum(np.asarray(t, dtype=np.float64).reshape(-1), 0.0)
    M0 = _lipsdp_M0(A, beta, C0, n0, t)
    Q, negR = M0[:n0, n0:], -M0[n0:, n0:]
    scale = max(1.0, float(np.abs(negR).max()))
    lam = np.linalg.eigvalsh(negR)
    if lam.min() <= 1e-9 * scale:
        raise LipSDPFailed("the multipliers do not give a safely negative definite block")
    V = np.linalg.eigh(negR)[1]
    Y = (Q @ V) / np.sqrt(lam)[None, :]  # Q (-R)^{-1/2} in the eigenbasis
    S = Y @ Y.T
    rho = float(np.linalg.eigvalsh(0.5 * (S + S.T)).max())
    # relative allowance for the float64 eigen-decompositions
    return max(rho, 0.0) * (1.0 + 1e-7) + 1e-12 * scale


def _lipsdp_problem(A, beta, C0, n0, n, D, eps):
    """cvxpy problem: minimize rho s.t. M(rho, T) <= -eps I, t >= 0 (M assembled as a sparse linear map of t)."""
    import cvxpy as cp

    rows, cols, vals = [], [], []
    for k in range(n):
        a = A[k] * beta[k]
        nz = np.nonzero(a)[0]
        j = n0 + k
        rows += [nz * D + j, j * D + nz, np.array([j * D + j])]
        cols += [np.full(nz.size, k)] * 2 + [np.array([k])]
        vals += [a[nz], a[nz], np.array([-2.0])]
    G = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(D * D, n))
    t = cp.Variable(n, nonneg=True)
    rho = cp.Variable()
    E = np.zeros((D, D))
    E[:n0, :n0] = np.eye(n0)
    M = cp.reshape(G @ t, (D, D), order="C") + C0 - rho * E
    prob = cp.Problem(cp.Minimize(rho), [-M >> eps * np.eye(D)])
    return prob, t, rho


def _solve_within(prob, solver: str, opts: dict, timeout: float, verbose: bool = False) -> None:
    """Solve in a worker thread and stop waiting after ``timeout`` seconds (hard limit for the caller).

    The solvers' own time limits end an abandoned solve soon after (SCS exactly; Clarabel
    after its current iteration).
    """

    box: dict = {}

    def work():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prob.solve(solver=solver, verbose=verbose, **opts)
        except Exception as e:  # handed to the caller
            box["error"] = e

    th = threading.Thread(target=work, name="lipsdp-solve", daemon=True)
    th.start()
    th.join(max(0.0, timeout))
    if th.is_alive():
        raise LipSDPFailed(f"{solver} did not finish within the time limit of {timeout:.3g} s")
    if "error" in box:
        raise box["error"]


@few_threads
def lipsdp(graph: Graph, c=None, time_limit: float = 60.0, solver: str = "auto", max_dim: int = 1500,
           verbose: bool = False) -> LipSDPResult:
    """LipSDP-Neuron bound of ``x -> f(x)`` (or of ``x -> c^T f(x)`` when ``c`` is given).

    For ``f(x) = W_l phi(W_{l-1} ... phi(W_0 x + b_0) ...) + b_l`` with ``phi`` slope-restricted
    in ``[0, beta]`` and one multiplier ``t_i >= 0`` per hidden neuron, find the least ``rho`` with

        M(rho, T) = A^T diag(beta t) B + B^T diag(beta t) A - 2 B^T diag(t) B
                    + blkdiag(-rho I_{n0}, 0, ..., W_l^T W_l) <= 0,

    ``A = [blkdiag(W_0..W_{l-1}), 0]``, ``B = [0, I]``; then ``L = sqrt(rho)``. ReLU networks
    are solved with every layer scaled to unit norm (ReLU is positively homogeneous) and the
    product of the scales multiplied back. The returned bound is recomputed from the
    solver's multipliers (see ``_lipsdp_certify_rho``), never taken from the solver's rho.

    Solvers: ``auto`` tries SCS then Clarabel (Clarabel is accurate but its cost grows
    quickly with the size of the matrix; SCS is first-order and much faster here).
    """
    import cvxpy as cp

    t0 = time.perf_counter()
    Ws, betas, kinds = mlp_chain(graph)
    scale = 1.0
    if all(k is ReLU for k in kinds):
        norms = [float(np.linalg.norm(W, 2)) for W in Ws]
        if all(nv > 0 for nv in norms):
            Ws = [W / nv for W, nv in zip(Ws, norms)]
            scale = float(np.prod(norms))
    A, beta, C0, n0, n, D = _lipsdp_matrix_parts(Ws, betas, c)
    if D > max_dim:
        raise LipSDPFailed(f"SDP of size {D} exceeds the limit {max_dim}")
    names = cp.installed_solvers()
    if solver == "auto":
        order = [s for s in ("SCS", "CLARABEL") if s in names]
    else:
        order = [solver.upper()]
    last_err = "no SDP solver installed (pip install scs clarabel)"
    for s in order:
        left = time_limit - (time.perf_counter() - t0)
        if left <= 0.05:
            raise LipSDPFailed(f"time limit of {time_limit:g} s reached ({last_err})")
        inner = max(0.05, 0.85 * left - 0.1)  # the solver's own limit; the caller waits at most `left`
        if s == "CLARABEL":
            eps, opts = 1e-7, {"time_limit": inner}
        elif s == "SCS":
            # moderate accuracy: the bound is recomputed exactly from the multipliers afterwards
            eps, opts = 1e-5, {"time_limit_secs": inner, "eps_abs": 1e-5, "eps_rel": 1e-5, "max_iters": 200000}
        else:
            eps, opts = 1e-5, {}
        prob, t, rho = _lipsdp_problem(A, beta, C0, n0, n, D, eps)
        try:
            _solve_within(prob, s, opts, left, verbose)
        except LipSDPFailed:
            raise
        except Exception as e:  # cvxpy.SolverError and solver-specific errors
            last_err = f"{s}: {type(e).__name__}: {e}"
            continue
        if t.value is None:
            last_err = f"{s}: status {prob.status}"
            continue
        try:
            rho_c = _lipsdp_certify_rho(A, beta, C0, n0, t.value)
        except LipSDPFailed as e:
            last_err = f"{s} (status {prob.status}): {e}"
            continue
        if time.perf_counter() - t0 > time_limit:
            raise LipSDPFailed(f"time limit of {time_limit:g} s reached")
        return LipSDPResult(math.sqrt(rho_c) * scale * NORM_INFLATE, rho_c, time.perf_counter() - t0,
                            f"{s}, status {prob.status}, SDP size {D}")
    raise LipSDPFailed(last_err)


@few_threads
def lipsdp_pair_bounds(graph: Graph, cls: int, bound: LipschitzBound | None = None, time_limit: float = 60.0,
                       solver: str = "auto") -> LipschitzBound:
    """Tighten the pair bounds ``L(f_cls - f_j)`` with one LipSDP per class ``j`` (``c = e_cls - e_j``).

    Pairs not solved within ``time_limit`` (total) keep their previous bound.
    """
    t0 = time.perf_counter()
    base = bound or product_bound(graph)
    K = graph.n_outputs
    P = base.pair_matrix(K).copy()
    solved = 0
    for j in range(K):
        left = time_limit - (time.perf_counter() - t0)
        if j == cls or left <= 0.05:
            continue
        c = np.zeros(K)
        c[cls], c[j] = 1.0, -1.0
        try:
            r = lipsdp(graph, c=c, time_limit=left, solver=solver)
        except (UnsupportedError, LipSDPFailed):
            continue
        P[cls, j] = P[j, cls] = min(P[cls, j], r.L)
        solved += 1
    return LipschitzBound(base.L, P, base.method + "+lipsdp-pairs", base.layers, time.perf_counter() - t0,
                          f"LipSDP pair bounds for class {cls}: {solved}/{K - 1} solved")
