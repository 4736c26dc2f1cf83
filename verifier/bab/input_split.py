"""Branch and bound by splitting the input box (for networks with few inputs, e.g. ACAS Xu).

Each round bounds a batch of sub-boxes at once with CROWN (intermediate CROWN
bounds per box). A sub-box is closed when every disjunct has a row whose lower
bound of ``C y - d`` is positive beyond rounding.

Branching (``BaBSettings.input_branching``):
- ``"smear"``: split the dimension with the largest ``|A_i| * width_i`` of the
  linear bound on the unproven rows (cheap);
- ``"best"``: bound both halves for every dimension and keep the split whose worse
  child has the best bound (the bound-improvement heuristic; 2n bounds per box,
  far fewer boxes).
The smear scores are capped by ``BaBSettings.input_max_aspect`` (see ``_branch_dim``).
A box whose bound is positive but within float32's rounding allowance is bounded again in
float64 (``_recheck_float64``) instead of being split for ever.
Every round the network is evaluated at each open box's centre and at the
vertex that minimises each row's linear lower bound: a point meeting a disjunct
is validated with onnxruntime and ends the search with ``sat``.
"""
from __future__ import annotations

import logging
import time

import torch

from verifier.attack import pgd_attack
from verifier.bab.common import Outcome, Rows, falsify
from verifier.bounds.crown import backward_lower, intermediate_bounds
from verifier.bounds.linear import concretize_lower
from verifier.bounds.objective import optimise_slopes
from verifier.ir.deadline import Deadline
from verifier.ir.problem import Problem
from verifier.ir.result import Counterexample
from verifier.settings.bab import BaBSettings
from verifier.settings.options import AttackSettings

log = logging.getLogger("verifier.bab")


def bound_boxes(graph, C, d, lo, hi, chunk: int = 4096, alpha_iters: int = 0, parent=None, alpha_ax: bool = True,
                deadline=None):
    """Lower bounds (B, K) float64, rounding allowance (B, K), input coefficients (B, K, n) and
    the pre-activation bounds (dict node -> (lo, hi)).

    ``parent`` optionally gives known bounds of the pre-activation nodes (those of the box the
    boxes were split from, still valid on every sub-box): they are intersected in before CROWN,
    so neurons already stable there cost no CROWN row.
    """
    if lo.shape[0] > chunk:
        parts = [bound_boxes(graph, C, d, lo[i:i + chunk], hi[i:i + chunk], chunk, alpha_iters, alpha_ax=alpha_ax,
                             deadline=deadline, parent=
                             None if parent is None else {k: (v[0][i:i + chunk], v[1][i:i + chunk])
                                                          for k, v in parent.items()})
                 for i in range(0, lo.shape[0], chunk)]
        lb, tol, Ax = (torch.cat(p) for p in zip(*[q[:3] for q in parts]))
        pre = {k: (torch.cat([q[3][k][0] for q in parts]), torch.cat([q[3][k][1] for q in parts])) for k in parts[0][3]}
        return lb, tol, Ax, pre
    B, K = lo.shape[0], C.shape[0]
    pre = intermediate_bounds(graph, lo, hi, "crown", fixed=parent)
    A0 = C.reshape(1, K, *graph.output_shape).expand(B, K, *graph.output_shape)
    info: dict = {}
    _, Ax, bias = backward_lower(graph, graph.output_name, A0, lo, hi, pre, return_linear=True, out=info)
    lb, tol = concretize_lower(Ax, bias, lo, hi, d, graph.dtype, info["bias_abs"])
    if alpha_iters > 0 and graph.nonlinear_nodes():
        lb, tol, Ax_alpha = optimise_slopes(graph, A0, d, lo, hi, pre, lb, tol, alpha_iters, lr=0.5, Ax=Ax,
                                            deadline=deadline)
        if alpha_ax:  # else the split heuristic keeps CROWN's coefficients
            Ax = Ax_alpha
    keep = {n.inputs[0] for n in graph.nonlinear_nodes()}
    return lb, tol, Ax, {k: v for k, v in pre.items() if k in keep}


def _recheck_float64(problem, rows: Rows, lo, hi, lb, pre, done, grp_ok, settings: BaBSettings, stats: dict):
    """Bound again in float64 the boxes that only float32's rounding allowance keeps open.

    A box whose every open group has a positive best row bound, not above the allowance
    (``rel_tol(float32)`` times the terms' magnitude), would otherwise be split until it cannot
    be split further: halving does not shrink the allowance. float64's allowance is ~1e7 times
    smaller. The float32 pre-activation bounds (rounding already allowed for) seed the pass.
    """
    near = ~grp_ok.all(1) & (grp_ok | (rows.group_best(lb) > 0)).all(1)
    if not bool(near.any()):
        return grp_ok
    g64 = problem.graph64()
    dt = torch.float64
    parent = {k: (v[0][near].to(dt), v[1][near].to(dt)) for k, v in pre.items()}
    lb64, tol64, _, _ = bound_boxes(g64, rows.C.to(dt), rows.d.to(dt), lo[near].to(dt), hi[near].to(dt),
                                    alpha_iters=settings.input_alpha_iters, parent=parent)
    ok = grp_ok.clone()
    ok[near] = rows.group_ok(lb64, tol64, done[near])
    stats["float64_rechecked"] = stats.get("float64_rechecked", 0) + int(near.sum())
    stats["float64_proved"] = stats.get("float64_proved", 0) + int(ok[near].all(1).sum())
    return ok


def _halves(lo, hi, dim):
    ar = torch.arange(lo.shape[0], device=lo.device)
    mid = (lo[ar, dim] + hi[ar, dim]) / 2
    lo2, hi1 = lo.clone(), hi.clone()
    hi1[ar, dim] = mid
    lo2[ar, dim] = mid
    return (lo, hi1), (lo2, hi)


def input_split_region(problem: Problem, lo_np, hi_np, idx, settings: BaBSettings, deadline: Deadline,
                       stats: dict, frontier: dict | None = None) -> tuple[str, Counterexample | None]:
    """Search one input region. Returns (outcome, counterexample).

    ``frontier``: a dict that receives the boxes still open when the deadline stops the search,
    or, when it already holds such boxes, the search resumes from them instead of the whole
    region (the boxes of earlier rounds are proven; a resumed search proves the rest). Splitting
    by ``best`` neither saves nor resumes (its stored boxes mean something else).
    """
    graph = problem.graph
    dev, dt = graph.device, graph.dtype
    rows = Rows(problem.spec, idx, dev, dt)
    G = len(rows.groups)
    n = graph.n_inputs
    best_mode = settings.input_branching == "best"
    LO = torch.tensor(lo_np, dtype=dt, device=dev).reshape(1, -1)
    HI = torch.tensor(hi_np, dtype=dt, device=dev).reshape(1, -1)
    DONE = torch.zeros(1, G, dtype=torch.bool, device=dev)  # groups already proven on the box
    root_width = (HI - LO).clamp(min=1e-30)
    PRE = None  # parent's pre-activation bounds of each stored box (None at the root)
    if frontier is not None and best_mode:
        frontier = None
    if frontier and "LO" in frontier:
        LO, HI, DONE, PRE = frontier.pop("LO"), frontier.pop("HI"), frontier.pop("DONE"), frontier.pop("PRE")
        log.info("input split: resuming from %d open boxes", LO.shape[0])
    last_log = time.monotonic()
    first = True
    it = 0
    while LO.shape[0] > 0:
        if deadline.expired():
            stats["open_domains"] = stats.get("open_domains", 0) + LO.shape[0]
            if frontier is not None:
                frontier.update(LO=LO, HI=HI, DONE=DONE, PRE=PRE)
            return Outcome.OPEN, None
        N = LO.shape[0]
        per = settings.batch // (2 * n) if (best_mode and not first) else settings.batch
        take = max(1, min(per, N))
        # newest boxes first (depth first), which keeps the number of stored boxes small
        lo, hi, done = LO[N - take:], HI[N - take:], DONE[N - take:]
        LO, HI, DONE = LO[: N - take], HI[: N - take], DONE[: N - take]
        parent = None
        if PRE is not None:
            parent = {k: (v[0][N - take:], v[1][N - take:]) for k, v in PRE.items()}
            PRE = {k: (v[0][: N - take], v[1][: N - take]) for k, v in PRE.items()}
        with torch.no_grad():
            if best_mode and not first:
                lo, hi, done = _best_split(problem, rows, lo, hi, done, stats)
                parent = None
                if lo is None:
                    return Outcome.FALSIFIED, hi
            first = False
            lb, tol, Ax, pre = bound_boxes(graph, rows.C, rows.d, lo, hi, alpha_iters=settings.input_alpha_iters,
                                           parent=parent, alpha_ax=settings.input_alpha_ax, deadline=deadline)
            stats["bound_calls"] = stats.get("bound_calls", 0) + 1
            stats["domains"] = stats.get("domains", 0) + lo.shape[0]
            grp_ok = rows.group_ok(lb, tol, done)
            if graph.dtype != torch.float64:
                grp_ok = _recheck_float64(problem, rows, lo, hi, lb, pre, done, grp_ok, settings, stats)
            open_ = ~grp_ok.all(1)
            if not bool(open_.any()):
                continue
            lo, hi, Ax, lb, grp_ok = lo[open_], hi[open_], Ax[open_], lb[open_], grp_ok[open_]
            pre = {k: (v[0][open_], v[1][open_]) for k, v in pre.items()}
            cex = falsify(problem, rows, lo, hi, Ax, grp_ok)
            if cex is not None:
                return Outcome.FALSIFIED, cex
            width = hi - lo
            if bool((width.max(1).values <= 1e-9 * (1 + hi.abs().max(1).values)).any()):
                stats["unsplittable"] = True
                return Outcome.OPEN, None
            if best_mode:  # children are chosen (and bounded) in the next round
                LO, HI, DONE = torch.cat([LO, lo]), torch.cat([HI, hi]), torch.cat([DONE, grp_ok])
                PRE = None
            else:
                dim = _branch_dim(settings, rows, lb, Ax, width, root_width, grp_ok)
                (l1, h1), (l2, h2) = _halves(lo, hi, dim)
                LO, HI, DONE = torch.cat([LO, l1, l2]), torch.cat([HI, h1, h2]), torch.cat([DONE, grp_ok, grp_ok])
                if PRE is None:
                    PRE = {k: (torch.cat([v[0], v[0]]), torch.cat([v[1], v[1]])) for k, v in pre.items()}
                else:
                    PRE = {k: (torch.cat([PRE[k][0], v[0], v[0]]), torch.cat([PRE[k][1], v[1], v[1]]))
                           for k, v in pre.items()}
        it += 1
        if settings.attack_every and it % settings.attack_every == 0:
            # a PGD round over the whole region now and then (new seed each time): falsifies
            # properties whose violations are too small to hit at box centres and vertices
            cex = pgd_attack(graph, problem.spec, AttackSettings(seed=1000 + it),
                             deadline.sub(2.0), problem.reference, rounds=3,
                             box=(lo_np, hi_np))
            if cex is not None:
                return Outcome.FALSIFIED, cex
        stats["max_domains"] = max(stats.get("max_domains", 0), LO.shape[0])
        if LO.shape[0] > settings.max_domains:
            stats["memory_cap_hit"] = True
            stats["open_domains"] = stats.get("open_domains", 0) + LO.shape[0]
            log.warning("input split: %d boxes exceed the cap of %d; giving up on this region", LO.shape[0],
                        settings.max_domains)
            return Outcome.OPEN, None
        if time.monotonic() - last_log > settings.log_every:
            last_log = time.monotonic()
            frac = torch.where(root_width > 1e-30, (HI - LO) / root_width, torch.ones_like(root_width))
            left = float(frac.prod(1).sum()) if LO.shape[0] else 0.0
            log.info("input split: %d open boxes (%.3g%% of the region), %d bounded, worst bound %.4g, %.1fs left",
                     LO.shape[0], 100 * left, stats["domains"], float(rows.group_best(lb).min()), deadline.left())
    return Outcome.PROVEN, None


def _branch_dim(settings: BaBSettings, rows: Rows, lb, Ax, width, root_width, grp_ok):
    """The dimension to split each box along (``settings.input_branching``), (B,).

    The smear scores estimate how much a split improves the linear bound; a dimension the bound
    barely depends on scores near zero even when the network is far from linear along it, and
    then the score can keep halving one other dimension for ever. ``input_max_aspect`` stops that:
    a box whose chosen side is that many times narrower (relative to the region) than its widest
    side is split along the widest side instead.
    """
    rel = width / root_width
    if settings.input_branching == "widest":
        return rel.argmax(1)
    if settings.input_branching == "smear-all":
        rows_open = (~grp_ok).to(Ax.dtype) @ rows.member.T.to(Ax.dtype)  # (B, K)
        score = ((Ax.abs() * rows_open.unsqueeze(-1)).sum(1) * width)
        dim = torch.where(width > 0, score, torch.full_like(score, -1.0)).argmax(1)
    else:
        dim = _smear_dim(rows, lb, Ax, width, grp_ok)
    if settings.input_max_aspect:
        widest = rel.max(1)
        thin = rel.gather(1, dim.unsqueeze(1)).squeeze(1) * settings.input_max_aspect < widest.values
        dim = torch.where(thin, widest.indices, dim)
    return dim


def _smear_dim(rows: Rows, lb, Ax, width, grp_ok):
    dev = lb.device
    best_row = torch.stack([torch.tensor(r, device=dev)[lb[:, r].argmax(1)] for r in rows.groups], 1)  # (B, G)
    coef = torch.gather(Ax, 1, best_row.unsqueeze(-1).expand(-1, -1, Ax.shape[2])).abs()  # (B, G, n)
    coef = coef * (~grp_ok).unsqueeze(-1)
    score = (coef * width.unsqueeze(1)).sum(1)
    score = torch.where(width > 0, score + 1e-12 * width, torch.full_like(score, -1.0))
    return score.argmax(1)


def _best_split(problem, rows: Rows, lo, hi, done, stats):
    """For each box, bound both halves along every dimension; return the children of the best split.

    Returns (lo, hi, done) of the chosen children (still to be bounded by the caller), or
    (None, counterexample, None) when a child's probe falsifies the property.
    """
    graph = problem.graph
    B, n = lo.shape
    dims = torch.arange(n, device=lo.device)
    L = lo.unsqueeze(1).expand(B, n, n).reshape(-1, n)
    H = hi.unsqueeze(1).expand(B, n, n).reshape(-1, n)
    dim = dims.repeat(B)
    (l1, h1), (l2, h2) = _halves(L, H, dim)
    cl, ch = torch.cat([l1, l2]), torch.cat([h1, h2])  # (2*B*n, n)
    lb, tol, _, _ = bound_boxes(graph, rows.C, rows.d, cl, ch)
    stats["domains"] = stats.get("domains", 0) + cl.shape[0]
    dd = done.repeat_interleave(n, 0).repeat(2, 1)
    ok = rows.group_ok(lb, tol, dd)
    gb = rows.group_best(lb).masked_fill(ok, float("inf"))  # proven groups do not count
    quality = gb.min(1).values.clamp(max=1e30).reshape(2, B, n)  # worst open group of each child
    quality = torch.minimum(quality[0], quality[1])  # the worse child of each split (B, n)
    width = hi - lo
    quality = torch.where(width > 0, quality, torch.full_like(quality, -float("inf")))
    best = quality.argmax(1)  # (B,)
    sel = torch.arange(B, device=lo.device) * n + best
    c1, c2 = sel, sel + B * n
    ch_lo, ch_hi = torch.cat([cl[c1], cl[c2]]), torch.cat([ch[c1], ch[c2]])
    ch_done = torch.cat([ok[c1], ok[c2]])
    return ch_lo, ch_hi, ch_done
