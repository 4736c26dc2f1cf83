"""Bounds on the spec's objective rows ``C y - d``, by IBP, CROWN or alpha-CROWN.

``C`` is propagated backward directly (not by bounding ``y`` first). The rows of
all disjuncts that share an input box are stacked, so one backward pass bounds
them all, batched over input boxes.

Rounding: the backward pass runs in the graph's dtype (float32 by default), but
the last step (concretising ``A x + c`` on the box) is done in float64, and a row
counts as proven only when its lower bound exceeds ``tol = rel * magnitude``,
where ``magnitude = sum |A| max(|lo|, |hi|) + sum |constant terms|`` adds up the
size of every term whose float32 rounding could move the bound, including each
bias met along the backward pass (``rel`` = 2e-5 for float32 and 1e-12 for
float64). Intermediate bounds are widened outward the same way before they are
used. A bound that only just clears zero is left unproven rather than risk an
unsound ``unsat``. A strict row (``C_i y < d_i``, flagged in ``strict``) is proven by a lower bound
at least the allowance (``verifier.bounds.proof.refutes``); a row whose true minimum is exactly zero
needs the exact check (``verifier.bounds.exact``), which the callers run where a float bound is
within rounding of zero.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from verifier.bounds.alpha_intermediate import MAX_SLOPES, intermediate_slope_count, optimise_all_slopes
from verifier.bounds.crown import Bounds, backward_lower, intermediate_bounds
from verifier.bounds.linear import LinearObjective, SlopeMemory, Steps, concretize_lower, keep_best, start_alphas
from verifier.bounds.optim import Adam
from verifier.bounds.proof import refutes
from verifier.ir.errors import UnsupportedError
from verifier.ir.graph import Graph
from verifier.ir.ops import ReLU
from verifier.settings import BoundSettings


@dataclass
class ObjectiveBounds:
    lower: torch.Tensor  # (B, K) float64 lower bounds of C y - d
    tol: torch.Tensor  # (B, K) float64 rounding allowance
    pre: Bounds = field(repr=False)  # per-node bounds used (B, *shape)
    upper: torch.Tensor | None = None  # (B, K) float64 upper bounds of C y - d, when asked
    # alpha-CROWN: the objective's best lower ReLU slopes per row, node -> (B, K, *shape); a warm start
    alphas: dict | None = field(default=None, repr=False)
    # alpha-CROWN with intermediate slopes: each pre-activation node's CROWN rows and their optimised slopes,
    # node -> (flat rows (m,), {ReLU node -> (B, 2m, *shape)}) (lower bounds of the rows, then upper)
    inter_slopes: dict | None = field(default=None, repr=False)
    strict: torch.Tensor | None = None  # (K,) bool: the strict rows (C_i y < d_i); None: none

    def proven(self) -> torch.Tensor:
        """(B, K) bool: the row's lower bound is positive beyond rounding (at least the allowance, for a strict row)."""
        return refutes(self.lower, self.tol, self.strict)


def objective_bounds(graph: Graph, C: torch.Tensor, d: torch.Tensor, x_lo: torch.Tensor, x_hi: torch.Tensor,
                     settings: BoundSettings = BoundSettings(), need_upper: bool = False,
                     pre: Bounds | None = None, groups: list[list[int]] | None = None,
                     deadline=None, strict=None) -> ObjectiveBounds:
    """Lower (and optionally upper) bounds of ``C y - d`` for each input box.

    C: (K, n_outputs); d: (K,); x_lo/x_hi: (B, n_inputs). ``groups`` lists the rows
    of each disjunct: alpha-CROWN stops early once every group has a proven row. ``strict`` ((K,) bool, or
    None) marks the strict rows; ``ObjectiveBounds.proven`` decides them by ``refutes``.
    """
    dev, dt = graph.device, graph.dtype
    C, d = C.to(dev, dt), d.to(dev, dt)
    x_lo, x_hi = x_lo.to(dev, dt), x_hi.to(dev, dt)
    B, K = x_lo.shape[0], C.shape[0]
    if strict is not None:
        strict = torch.as_tensor(strict, dtype=torch.bool, device=dev).reshape(K)
        strict = strict if bool(strict.any()) else None
    with torch.no_grad():
        if pre is None:
            pre = intermediate_bounds(graph, x_lo, x_hi, "ibp" if settings.method == "ibp" else "crown",
                                      deadline=deadline)
        if settings.method == "ibp":
            ylo, yhi = (t.reshape(B, -1) for t in pre[graph.output_name])
            Cb = C.unsqueeze(0).expand(B, K, -1)
            lb, tol = concretize_lower(Cb, torch.zeros(B, K, dtype=dt, device=dev), ylo, yhi, d, dt)
            ub = None
            if need_upper:
                ub, _ = concretize_lower(-Cb, torch.zeros(B, K, dtype=dt, device=dev), ylo, yhi, -d, dt)
                ub = -ub
            return ObjectiveBounds(lb, tol, pre, ub, strict=strict)
        A0 = C.reshape(1, K, *graph.output_shape).expand(B, K, *graph.output_shape)
        info: dict = {}
        _, Ax, bias = backward_lower(graph, graph.output_name, A0, x_lo, x_hi, pre, return_linear=True, out=info)
        lb, tol = concretize_lower(Ax, bias, x_lo, x_hi, d, dt, info["bias_abs"])
        lb, tol = _best_of_interval(lb, tol, C, d, pre[graph.output_name], B, K, dt)
        ub = None
        if need_upper:
            _, Ax2, bias2 = backward_lower(graph, graph.output_name, -A0, x_lo, x_hi, pre, return_linear=True)
            ub, _ = concretize_lower(Ax2, bias2, x_lo, x_hi, -d, dt)  # upper bounds are reported, never trusted
            ub = -ub
    alphas, inter = None, None
    if settings.method == "alpha-crown" and graph.nonlinear_nodes():
        alphas, inter = {}, {}
        lb, tol, pre = _alpha_optimize(LinearObjective(graph, A0, d, x_lo, x_hi, pre), lb, tol, settings, groups,
                                       deadline, alphas, inter, strict)
    return ObjectiveBounds(lb, tol, pre, ub, alphas or None, inter or None, strict)


def _best_of_interval(lb, tol, C, d, out_bounds, B: int, K: int, dt):
    """The better, row by row, of the linear bound ``lb`` (allowance ``tol``) and the interval bound of ``C y - d``
    on the output's bounds (both sound; CROWN's is looser where the relaxations are loose, e.g. a Sigmoid on
    [-1000, 1000]). ``dt``: the graph's dtype, the precision the interval bound was computed in."""
    ylo, yhi = (t.reshape(B, -1) for t in out_bounds)
    zero = torch.zeros(B, K, dtype=lb.dtype, device=lb.device)
    lb_i, tol_i = concretize_lower(C.unsqueeze(0).expand(B, K, -1), zero, ylo, yhi, d, dt)
    better = (lb_i - tol_i) > (lb - tol)
    return torch.where(better, lb_i, lb), torch.where(better, tol_i, tol)


def _all_groups_proven(proven: torch.Tensor, groups) -> bool:
    if groups is None:
        return bool(proven.all())
    return all(bool(proven[:, g].any(1).all()) for g in groups)


def _alpha_optimize(obj: LinearObjective, lb, tol, settings: BoundSettings, groups, deadline=None,
                    best_alphas=None, inter_slopes=None, strict=None):
    """alpha-CROWN: projected gradient ascent on the lower ReLU slopes, per row and box.

    Every alpha in [0, 1] gives a sound bound, so the best bound seen per row is kept:
    the result is never looser than the CROWN bound it starts from. With
    ``settings.intermediate_alpha`` the intermediate layers' slopes are optimised as well
    (``alpha_intermediate.optimise_all_slopes``) and tighter intermediate bounds come back, unless
    the network is so large that their slopes would exceed ``MAX_SLOPES`` elements.
    """
    stop = lambda b, t: _all_groups_proven(refutes(b, t, strict), groups)  # noqa: E731
    if stop(lb, tol):
        return lb, tol, obj.pre
    steps = Steps(settings.alpha_iters, settings.alpha_lr, settings.lr_decay)
    if settings.intermediate_alpha and intermediate_slope_count(obj.graph, obj.pre) <= MAX_SLOPES:
        return optimise_all_slopes(obj, lb.clone(), tol.clone(), steps, deadline=deadline, stop=stop,
                                   best_alphas=best_alphas, inter_slopes=inter_slopes)
    lb, tol, _ = optimise_slopes(obj, lb.clone(), tol.clone(), steps, deadline=deadline, stop=stop,
                                 memory=SlopeMemory(best_alphas=best_alphas))
    return lb, tol, obj.pre


def optimise_slopes(obj: LinearObjective, lb, tol, steps: Steps, signs: dict | None = None, Ax=None, deadline=None,
                    stop=None, memory: SlopeMemory | None = None):
    """Projected Adam on the lower ReLU slopes (alpha in [0, 1]) and, with ``signs``, on split multipliers.

    ``signs`` maps pre-activation nodes to split signs ``s_j`` (+1 for ``z_j >= 0``, -1 for
    ``z_j <= 0``, 0 unsplit): every point of the domain has ``s_j z_j >= 0``, so
    ``obj - sum_j beta_j s_j z_j <= obj`` there and its lower bound over the relaxation is a
    sound lower bound of the objective for every beta >= 0 (beta-CROWN's Lagrangian).
    Every alpha and beta give sound bounds, so the best bound per row is kept (starting from
    ``lb``, ``tol``); ``Ax``, when given, follows the best rows' input coefficients. Stops early
    at the deadline or when ``stop(best_lb, best_tol)`` holds. Returns (lb, tol, Ax).
    ``memory`` holds the warm starts (a parent's optimum instead of CROWN's slopes; split multipliers: entries
    off the split neurons are ignored) and receives the slopes and multipliers of each row's best bound.
    """
    graph, A0, d, x_lo, x_hi, pre = obj.graph, obj.A0, obj.d, obj.x_lo, obj.x_hi, obj.pre
    iters, lr, decay = steps.iters, steps.lr, steps.decay
    mem = memory or SlopeMemory()
    init_alphas, init_betas, best_alphas, best_betas = mem.init_alphas, mem.init_betas, mem.best_alphas, mem.best_betas
    B, K = A0.shape[:2]
    alphas, betas, sgn = {}, {}, {}
    for node in graph.nonlinear_nodes():
        if not isinstance(node.op, ReLU):
            raise UnsupportedError(f"alpha-CROWN supports ReLU only, not node {node.onnx_node}")
        alphas[node.name] = start_alphas(node, pre, B, K, init_alphas).requires_grad_(True)
    for p, s in (signs or {}).items():
        s = s.to(x_lo.dtype)
        if bool((s != 0).any()):
            sgn[p] = s.unsqueeze(1)
            if init_betas is not None and p in init_betas:
                b0 = init_betas[p].to(x_lo.dtype).clamp(min=0.0) * (s.unsqueeze(1) != 0)
                betas[p] = b0.expand(B, K, *s.shape[1:]).clone().requires_grad_(True)
            else:
                betas[p] = torch.zeros(B, K, *s.shape[1:], dtype=x_lo.dtype, device=x_lo.device, requires_grad=True)
    opt = Adam(list(alphas.values()) + list(betas.values()), lr=lr, decay=decay)
    step_s = 0.0  # the last step's seconds: one that would end after the run's end is not started
    for _ in range(iters):
        if deadline is not None and deadline.step_would_overrun(step_s):
            break
        t_step = time.monotonic()
        with torch.enable_grad():
            info: dict = {}
            extra = {p: -betas[p] * sgn[p] for p in betas} if betas else None
            cur, Ax2, bias = backward_lower(graph, graph.output_name, A0, x_lo, x_hi, pre, alphas, return_linear=True,
                                            extra=extra, out=info)
            opt.zero_grad()
            (-cur.sum()).backward()
        with torch.no_grad():
            lb2, tol2 = concretize_lower(Ax2.detach(), bias.detach(), x_lo, x_hi, d, x_lo.dtype,
                                         info["bias_abs"].detach())
            better = (lb2 - tol2) > (lb - tol)
            lb, tol = torch.where(better, lb2, lb), torch.where(better, tol2, tol)
            if Ax is not None:
                Ax = torch.where(better.unsqueeze(-1), Ax2.detach(), Ax)
            keep_best(best_alphas, alphas, better)
            keep_best(best_betas, betas, better)
            if stop is not None and stop(lb, tol):
                break
            opt.step()
            for a in alphas.values():
                a.clamp_(0.0, 1.0)
            for b in betas.values():
                b.clamp_(min=0.0)
        step_s = time.monotonic() - t_step
    return lb, tol, Ax
