"""Bounding a batch of ReLU-split domains: CROWN (re-deriving the layers after each domain's split where asked),
then alpha/beta-CROWN steps on the rows still open (``bound_domains``)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from verifier.bab.domains import Domains, Region
from verifier.bounds.crown import backward_lower, intermediate_bounds
from verifier.bounds.linear import LinearObjective, SlopeMemory, Steps, concretize_lower, start_alphas
from verifier.bounds.objective import optimise_slopes
from verifier.bounds.proof import refutes
from verifier.ir.deadline import Deadline


@dataclass(frozen=True)
class BoundSteps:
    """How a search bounds its domains: ``alpha_iters`` alpha/beta steps (stopping at ``deadline``); with
    ``recompute`` CROWN re-derives the layers after each domain's split, from the root's optimised intermediate
    slopes ``slopes`` where given; ``coefficients``: keep the CROWN pass's per-ReLU objective coefficients (only
    the BaBSR score reads them)."""

    alpha_iters: int
    recompute: bool
    deadline: Deadline | None = None
    slopes: dict | None = None
    coefficients: bool = True


def bound_domains(region: Region, taken: Domains, steps: BoundSteps, crown_only: dict | None = None):
    """Bound a batch of domains taken from the store; returns (the bounded ``Domains``, the seconds of the
    alpha/beta steps: the part that stops at the deadline).

    ``taken.pre`` holds each domain's known bounds of every pre-activation node (the parent's bounds with
    the split clamps applied); with ``steps.recompute`` CROWN re-derives every layer from them (tighter,
    costlier; ``crown_only`` (node -> (B,) mask) limits it to the domains whose new split comes before
    the node, since CROWN on the others would give the parent's bounds again), otherwise they are used
    as they are and only the objective is re-bounded. ``taken.alphas`` and ``taken.betas`` warm-start the
    slopes and split multipliers (the parents' optimised ones, node -> broadcastable to (B, K, *shape)).
    Only the rows of the groups ``taken.ok`` leaves open are optimised (one CROWN pass bounds every row);
    after a few splits most domains have one or two open rows of the nine of a classification spec.

    The result has the bounds of the pre-activation nodes, the split signs, the best slopes and multipliers
    found per row (node -> (B, K, *shape); the starting ones where no step improved; empty without alpha
    steps), each row's bound (the parent's ``taken.lb`` where that is better: it holds on the child), the
    groups proven (all of them on a domain whose bounds are empty: lower > upper for some neuron, no input),
    the input coefficients of each row's best linear bound, and with ``steps.coefficients`` the CROWN pass's
    per-ReLU coefficients.
    """
    graph, rows = region.graph, region.rows
    PRE, SGN = taken.pre, taken.sgn
    B = next(iter(PRE.values()))[0].shape[0]
    lo, hi = region.x_lo.expand(B, -1), region.x_hi.expand(B, -1)
    if steps.recompute:
        pre = intermediate_bounds(graph, lo, hi, "crown", fixed=PRE, crown_only=crown_only, slopes=steps.slopes)
    else:
        pre = dict(PRE)
    infeasible = torch.zeros(B, dtype=torch.bool, device=lo.device)
    for p in PRE:
        l, u = pre[p]
        infeasible |= (l > u).reshape(B, -1).any(1)
    K = rows.C.shape[0]
    A0 = rows.C.reshape(1, K, *graph.output_shape).expand(B, K, *graph.output_shape)
    record: dict = {}
    info: dict = {}
    _, Ax, bias = backward_lower(graph, graph.output_name, A0, lo, hi, pre, return_linear=True,
                                 record=record if steps.coefficients else None, out=info)
    lb, tol = concretize_lower(Ax, bias, lo, hi, rows.d, graph.dtype, info["bias_abs"])
    out = Domains(pre, SGN, {}, {}, lb, tol, Ax=Ax, record=record)
    t_alpha = time.monotonic()
    if steps.alpha_iters > 0:
        _alpha_beta_steps(region, taken, out, steps, A0, rows.rows_open(taken.ok))
    alpha_s = time.monotonic() - t_alpha
    inherit = (taken.lb - taken.tol) > (out.lb - out.tol)
    out.lb, out.tol = torch.where(inherit, taken.lb, out.lb), torch.where(inherit, taken.tol, out.tol)
    out.ok = rows.group_ok(out.lb, out.tol, taken.ok) | infeasible.unsqueeze(1)
    out.pre = {p: pre[p] for p in PRE}  # the ReLU inputs' bounds: all the branching needs
    return out, alpha_s


def _alpha_beta_steps(region: Region, taken: Domains, out: Domains, steps: BoundSteps, A0, row_open):
    """alpha and beta-CROWN steps (beta: multipliers of the split constraints; see optimise_slopes) from the
    warm starts ``taken``, on the open rows; the best bounds, slopes and multipliers go into ``out``."""
    graph, pre, lo = region.graph, out.pre, region.x_lo
    B, K = out.lb.shape
    for node in graph.nonlinear_nodes():
        out.alphas[node.name] = start_alphas(node, pre, B, K, taken.alphas)
    for p, s in taken.sgn.items():
        b0 = taken.betas[p] if taken.betas is not None and p in taken.betas else \
            torch.zeros(1, 1, *s.shape[1:], dtype=lo.dtype, device=lo.device)
        out.betas[p] = b0.to(lo.dtype).expand(B, K, *s.shape[1:]).clone()
    if bool(row_open.all()):
        out.lb, out.tol, out.Ax = optimise_slopes(
            LinearObjective(graph, A0, region.rows.d, lo.expand(B, -1), region.x_hi.expand(B, -1), pre), out.lb,
            out.tol, Steps(steps.alpha_iters, 0.3, 0.95), signs=taken.sgn, deadline=steps.deadline, Ax=out.Ax,
            stop=all_proven, memory=SlopeMemory(taken.alphas, taken.betas, out.alphas, out.betas))
    elif bool(row_open.any()):
        _optimise_open_rows(region, out, row_open, steps)


def all_proven(lb, tol) -> bool:
    """Every row of the batch is proven (as a non-strict row: stopping later is always safe): its alpha/beta steps
    can stop."""
    return bool(refutes(lb, tol).all())


def _optimise_open_rows(region: Region, out: Domains, row_open, steps: BoundSteps):
    """alpha/beta steps on the open (domain, row) pairs only, each as a one-row item, from the slopes and
    multipliers of ``out``; the results are written into ``out``'s ``lb``, ``tol``, ``Ax``, ``alphas`` and
    ``betas`` (B, K, ...) in place."""
    graph, rows = region.graph, region.rows
    pre, lb, tol, Ax, alphas, betas = out.pre, out.lb, out.tol, out.Ax, out.alphas, out.betas
    bi, ki = torch.nonzero(row_open, as_tuple=True)
    N = bi.numel()
    A0 = rows.C[ki].reshape(N, 1, *graph.output_shape)
    d = rows.d[ki].reshape(N, 1)
    pre_i = {p: (pre[p][0][bi], pre[p][1][bi]) for p in out.sgn}  # the ReLU inputs' bounds are all it needs
    sgn_i = {p: s[bi] for p, s in out.sgn.items()}
    al_i = {k: v[bi, ki].unsqueeze(1) for k, v in alphas.items()}
    be_i = {k: v[bi, ki].unsqueeze(1) for k, v in betas.items()}
    best_a = {k: v.clone() for k, v in al_i.items()}
    best_b = {k: v.clone() for k, v in be_i.items()}
    lb_i, tol_i, Ax_i = optimise_slopes(
        LinearObjective(graph, A0, d, region.x_lo.expand(N, -1), region.x_hi.expand(N, -1), pre_i),
        lb[bi, ki].unsqueeze(1), tol[bi, ki].unsqueeze(1), Steps(steps.alpha_iters, 0.3, 0.95), signs=sgn_i,
        deadline=steps.deadline, Ax=Ax[bi, ki].unsqueeze(1), stop=all_proven,
        memory=SlopeMemory(al_i, be_i, best_a, best_b))
    lb[bi, ki], tol[bi, ki], Ax[bi, ki] = lb_i[:, 0], tol_i[:, 0], Ax_i[:, 0]
    for k, v in best_a.items():
        alphas[k][bi, ki] = v[:, 0]
    for k, v in best_b.items():
        betas[k][bi, ki] = v[:, 0]
