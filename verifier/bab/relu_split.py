"""Branch and bound by splitting unstable ReLUs (for image-sized inputs).

A domain is a set of split decisions ``z_j >= 0`` / ``z_j <= 0`` on pre-activation
neurons, stored as per-node clamp tensors (``-inf`` / ``+inf`` where unsplit). A
batch of domains is bounded at once: the clamps are intersected into the
interval bounds of their node before CROWN refines every later layer, so a split
neuron's relaxation becomes exact and every layer after it tightens. A domain
whose bounds become empty (lower > upper for some neuron) holds no input and is
closed. Branching picks, per domain, the unstable neuron with the largest
``|A_j| * (-l_j u_j / (u_j - l_j))`` (the objective's coefficient on the neuron
times the area of its relaxation; a BaBSR-style score). Domains are taken worst
bound first; the stored domains are capped (``BaBSettings.max_domains`` and a
memory budget) and the search reports ``open`` rather than grow past it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace

import torch

from ..attack import pgd_attack
from ..bounds.crown import backward_lower, intermediate_bounds, pre_activation_nodes
from ..bounds.objective import BoundSettings, objective_bounds
from ..problem import Deadline, Problem
from ..result import Counterexample
from .input_split import Outcome, _alpha_refine, _concretize, _Rows
from .settings import BaBSettings

log = logging.getLogger("verifier.bab")

MEMORY_BUDGET_BYTES = 4 * 2**30


def _bound_domains(graph, rows: _Rows, x_lo, x_hi, fix: dict, alpha_iters: int):
    """Bound a batch of domains; returns lb (B, K), tol, pre bounds, per-ReLU objective coefficients, infeasible (B,)."""
    B = next(iter(fix.values()))[0].shape[0]
    lo, hi = x_lo.expand(B, -1), x_hi.expand(B, -1)
    pre = intermediate_bounds(graph, lo, hi, "crown", fixed=fix)
    infeasible = torch.zeros(B, dtype=torch.bool, device=lo.device)
    for p in fix:
        l, u = pre[p]
        infeasible |= (l > u).reshape(B, -1).any(1)
    K = rows.C.shape[0]
    A0 = rows.C.reshape(1, K, *graph.output_shape).expand(B, K, *graph.output_shape)
    record: dict = {}
    _, Ax, bias = backward_lower(graph, graph.output_name, A0, lo, hi, pre, return_linear=True, record=record)
    lb, tol = _concretize(Ax, bias, lo, hi, rows.d, graph.dtype)
    if alpha_iters > 0:
        lb, tol, _ = _alpha_refine(graph, A0, rows.d, lo, hi, pre, lb, tol, Ax, alpha_iters)
    return lb, tol, pre, record, infeasible


def _scores(graph, pre, record, lb, rows: _Rows, grp_ok):
    """(B, total neurons) branching scores, with the (node, flat index) layout."""
    B = lb.shape[0]
    # weight rows: rows of open groups, the group's best row only
    gbest = torch.stack([torch.tensor(r, device=lb.device)[lb[:, r].argmax(1)] for r in rows.groups], 1)  # (B, G)
    w = torch.zeros_like(lb)
    w.scatter_add_(1, gbest, (~grp_ok).to(lb.dtype))
    parts, layout = [], []
    for node in graph.nonlinear_nodes():
        p = node.inputs[0]
        l, u = (t.reshape(B, -1) for t in pre[p])
        A = record[node.name].reshape(B, lb.shape[1], -1)  # (B, K, n)
        coef = (A.abs() * w.unsqueeze(-1)).sum(1)  # (B, n)
        unstable = (l < 0) & (u > 0)
        area = torch.where(unstable, -l * u / (u - l).clamp(min=1e-12), torch.zeros_like(l))
        s = torch.where(unstable, coef * area + 1e-9 * area, torch.full_like(l, -1.0))
        parts.append(s)
        layout.append((p, s.shape[1]))
    return torch.cat(parts, 1), layout


def relu_split_region(problem: Problem, lo_np, hi_np, idx, settings: BaBSettings, deadline: Deadline,
                      stats: dict) -> tuple[str, Counterexample | None]:
    graph, spec = problem.graph, problem.spec
    dev, dt = graph.device, graph.dtype
    rows = _Rows(spec, idx, dev, dt)
    x_lo = torch.tensor(lo_np, dtype=dt, device=dev).reshape(1, -1)
    x_hi = torch.tensor(hi_np, dtype=dt, device=dev).reshape(1, -1)
    pnodes = pre_activation_nodes(graph)
    # root: CROWN, then alpha-CROWN
    t = time.monotonic()
    C, d = rows.C, rows.d
    method = "alpha-crown" if settings.root_alpha else "crown"
    ob = objective_bounds(graph, C, d, x_lo, x_hi, BoundSettings(method), groups=rows.groups)
    stats["root_bound"] = float(rows.group_best(ob.lower).min())
    stats["root_time"] = time.monotonic() - t
    grp_ok = rows.group_ok(ob.lower, ob.tol, torch.zeros(1, len(rows.groups), dtype=torch.bool, device=dev))
    if bool(grp_ok.all()):
        return Outcome.PROVEN, None
    neurons = sum(graph.shape_of(p) and torch.Size(graph.shape_of(p)).numel() for p in pnodes)
    per_domain = neurons * 2 * (8 if dt == torch.float64 else 4) + 64
    cap = int(min(settings.max_domains, MEMORY_BUDGET_BYTES // per_domain))
    stats["domain_cap"] = cap
    inf = float("inf")
    FIX = {p: (torch.full((1, *graph.shape_of(p)), -inf, dtype=dt, device=dev),
               torch.full((1, *graph.shape_of(p)), inf, dtype=dt, device=dev)) for p in pnodes}
    DONE = grp_ok
    PRI = torch.full((1,), -inf, dtype=torch.float64, device=dev)  # smaller = worse = first
    last_log = time.monotonic()
    it = 0
    while PRI.numel() > 0:
        if deadline.expired():
            stats["open_domains"] = stats.get("open_domains", 0) + PRI.numel()
            return Outcome.OPEN, None
        it += 1
        take = min(settings.relu_batch, PRI.numel())
        order = torch.argsort(PRI)
        sel, rest = order[:take], order[take:]
        fix = {p: (FIX[p][0][sel], FIX[p][1][sel]) for p in pnodes}
        done = DONE[sel]
        FIX = {p: (FIX[p][0][rest], FIX[p][1][rest]) for p in pnodes}
        DONE, PRI = DONE[rest], PRI[rest]
        with torch.no_grad():
            lb, tol, pre, record, infeasible = _bound_domains(graph, rows, x_lo, x_hi, fix, settings.relu_alpha_iters)
        stats["bound_calls"] = stats.get("bound_calls", 0) + 1
        stats["domains"] = stats.get("domains", 0) + take
        ok = rows.group_ok(lb, tol, done) | infeasible.unsqueeze(1)
        open_ = ~ok.all(1)
        if not bool(open_.any()):
            continue
        o = torch.nonzero(open_).flatten()
        lb, ok = lb[o], ok[o]
        pre = {k: (v[0][o], v[1][o]) for k, v in pre.items()}
        record = {k: v[o] for k, v in record.items()}
        fix = {p: (fix[p][0][o], fix[p][1][o]) for p in pnodes}
        with torch.no_grad():
            scores, layout = _scores(graph, pre, record, lb, rows, ok)
        best = scores.max(1)
        if bool((best.values < 0).any()):
            # no unstable neuron left yet not proven: the relaxation is exact there, so the open
            # rows' bounds are exact for the linear pieces; try the attack on the whole box instead
            stats["exhausted_domains"] = stats.get("exhausted_domains", 0) + int((best.values < 0).sum())
            keep = best.values >= 0
            if not bool(keep.any()):
                return Outcome.OPEN, None
            lb, ok, best_idx = lb[keep], ok[keep], best.indices[keep]
            fix = {p: (fix[p][0][keep], fix[p][1][keep]) for p in pnodes}
        else:
            best_idx = best.indices
        # children: active (lo = 0) and inactive (hi = 0) copies
        n = best_idx.numel()
        new_fix = {}
        offset = 0
        for p, size in layout:
            flo, fhi = (t.reshape(n, -1) for t in fix[p])
            in_node = (best_idx >= offset) & (best_idx < offset + size)
            j = (best_idx - offset).clamp(0, size - 1)
            lo_a, hi_a, lo_b, hi_b = flo.clone(), fhi.clone(), flo.clone(), fhi.clone()
            r = torch.nonzero(in_node).flatten()
            lo_a[r, j[r]] = 0.0  # active: z >= 0
            hi_b[r, j[r]] = 0.0  # inactive: z <= 0
            shp = graph.shape_of(p)
            new_fix[p] = (torch.cat([lo_a, lo_b]).reshape(2 * n, *shp), torch.cat([hi_a, hi_b]).reshape(2 * n, *shp))
            offset += size
        pri = rows.group_best(lb).masked_fill(ok, inf).min(1).values
        FIX = {p: (torch.cat([FIX[p][0], new_fix[p][0]]), torch.cat([FIX[p][1], new_fix[p][1]])) for p in pnodes}
        DONE = torch.cat([DONE, ok, ok])
        PRI = torch.cat([PRI, pri, pri])
        stats["max_domains"] = max(stats.get("max_domains", 0), PRI.numel())
        if PRI.numel() > cap:
            stats["memory_cap_hit"] = True
            log.warning("branch and bound: %d domains exceed the cap of %d; giving up on this region", PRI.numel(), cap)
            stats["open_domains"] = stats.get("open_domains", 0) + PRI.numel()
            return Outcome.OPEN, None
        if settings.attack_every and it % settings.attack_every == 0:
            cex = pgd_attack(graph, spec, replace(problem_attack_settings(problem), seed=it), Deadline(min(2.0, deadline.left())),
                             problem.reference, rounds=1)
            if cex is not None:
                return Outcome.FALSIFIED, cex
        if time.monotonic() - last_log > settings.log_every:
            last_log = time.monotonic()
            log.info("relu split: %d domains, %d bounded, worst bound %.4g, %.1fs left",
                     PRI.numel(), stats["domains"], float(PRI.min()) if PRI.numel() else 0.0, deadline.left())
    return Outcome.PROVEN, None


def problem_attack_settings(problem):
    from ..options import AttackSettings

    return AttackSettings(restarts=32, steps=50)
