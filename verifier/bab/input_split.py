"""Branch and bound by splitting the input box (for networks with few inputs, e.g. ACAS Xu, and for networks with
other nonlinearities than ReLU, e.g. the Lyapunov controllers of lsnc: the only complete search those have).

Each round bounds a batch of sub-boxes at once with CROWN (intermediate CROWN
bounds per box). A sub-box is closed when every disjunct has a row whose lower
bound of ``C y - d`` is positive beyond rounding. On networks with other nonlinearities (Sigmoid, Sin, products,
MaxPool, ...) ``bound_boxes`` takes each row's better of CROWN and the interval bound, and falls back to the
interval pass where CROWN refuses (MaxPool has no linear relaxation); the exact check and alpha-CROWN (ReLU only)
are skipped there, and each open box is shrunk to where its open disjuncts may hold by its linear bounds
(``_clip_boxes``) before it is split. A box keeps the bounds of every input of every nonlinear node (both factors
of a product) for its children.

Branching (``BaBSettings.input_branching``):
- ``"smear"``: split the dimension with the largest ``|A_i| * width_i`` of the
  linear bound on the unproven rows (cheap);
- ``"best"``: bound both halves for every dimension and keep the split whose worse
  child has the best bound (the bound-improvement heuristic; 2n bounds per box,
  far fewer boxes).
The smear scores are capped by ``BaBSettings.input_max_aspect`` (see ``_branch_dim``).
A box whose bound is positive but within float32's rounding allowance is bounded again in
float64 (``_recheck_float64``) instead of being split for ever; one kept open only because a strict row's
(or an open input side's) bound is within rounding of zero gets the exact check (``_settle_exactly``,
``verifier.bounds.exact``: no rounding, so a strict row whose minimum is exactly zero is refuted). The
open boxes are kept in ``Boxes`` (newest taken first); a search stopped by its deadline hands them over
in its outcome, and a later search of the region can resume from them.
Every round the network is evaluated at each open box's centre and at the
vertex that minimises each row's linear lower bound: a point meeting a disjunct
is validated with onnxruntime and ends the search with ``sat``.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from verifier.attack import pgd_attack
from verifier.bab.common import Outcome, RegionOutcome, RegionTask, Rows, Stop, falsify
from verifier.bounds.crown import backward_lower, fully_refined_nodes, intermediate_bounds, pre_activation_nodes
from verifier.bounds.exact import settle_near_zero, supported
from verifier.bounds.linear import LinearObjective, Steps, concretize_lower
from verifier.bounds.objective import optimise_slopes
from verifier.bounds.proof import within_rounding
from verifier.ir.deadline import Deadline
from verifier.ir.errors import UnsupportedError
from verifier.ir.ops import MaxPool, ReLU
from verifier.settings.bab import BaBSettings
from verifier.settings.options import AttackSettings

log = logging.getLogger("verifier.bab")

EXACT_BOXES = 8  # boxes per round that get the exact check (each up to ~0.15 s on a 2-core CPU)


@dataclass
class Boxes:
    """Sub-boxes of one input region: their bounds ``lo``, ``hi`` (N, n), the groups already proven on each
    (``done``, (N, G)), and known bounds of the pre-activation nodes valid on each (``pre``, node -> (lo, hi);
    while a box is stored, those of the box it was split from; None: none known, at the root and under
    ``best``)."""

    lo: torch.Tensor
    hi: torch.Tensor
    done: torch.Tensor
    pre: dict | None = None

    def __len__(self) -> int:
        return self.lo.shape[0]

    def select(self, idx) -> Boxes:
        """The boxes ``idx`` (a mask, indices or a slice)."""
        pre = None if self.pre is None else {k: (v[0][idx], v[1][idx]) for k, v in self.pre.items()}
        return Boxes(self.lo[idx], self.hi[idx], self.done[idx], pre)

    def pop_newest(self, m: int) -> Boxes:
        """Remove and return the ``m`` boxes stored last."""
        k = len(self) - m
        out = self.select(slice(k, None))
        rest = self.select(slice(None, k))
        self.lo, self.hi, self.done, self.pre = rest.lo, rest.hi, rest.done, rest.pre
        return out

    def push(self, new: Boxes) -> None:
        """Store ``new`` after the others (``new.pre`` None: no box keeps its pre-activation bounds)."""
        pre = new.pre
        if pre is not None and self.pre is not None:
            pre = {k: (torch.cat([self.pre[k][0], v[0]]), torch.cat([self.pre[k][1], v[1]])) for k, v in pre.items()}
        self.lo, self.hi = torch.cat([self.lo, new.lo]), torch.cat([self.hi, new.hi])
        self.done, self.pre = torch.cat([self.done, new.done]), pre


def bound_boxes(graph, C, d, boxes: Boxes, alpha_iters: int = 0, alpha_ax: bool = True, deadline=None,
                chunk: int = 4096, stats: dict | None = None, out: dict | None = None):
    """Lower bounds (B, K) float64, rounding allowance (B, K), input coefficients (B, K, n) and
    the pre-activation bounds (dict node -> (lo, hi)) of ``boxes``, with ``alpha_iters`` alpha-CROWN steps
    (stopping at ``deadline``; ``alpha_ax``: the coefficients are the optimised bound's, else CROWN's).

    ``boxes.pre`` optionally gives known bounds of the pre-activation nodes (those of the box the
    boxes were split from, still valid on every sub-box): they are intersected in before CROWN,
    so neurons already stable there cost no CROWN row.

    Networks with other nonlinearities than ReLU (``_general``): no alpha steps (alpha-CROWN optimises ReLU
    slopes only); each row's bound is the better of CROWN's and the interval bound on the output's bounds; where
    CROWN refuses (MaxPool has no linear relaxation, a smooth op's lines are not defined on some bounds) the
    interval pass bounds the boxes (coefficients zero: the split heuristic then halves the relatively widest
    side), and boxes the interval pass refuses too stay open with a bound of -inf (``_bound_general``).
    ``stats``, when given, counts the boxes bounded by the interval pass (``ibp_boxes``) and refused
    (``refused_boxes``). ``out``, when given on such a network, receives ``linear``: the bounds (and allowances) of
    the linear functions ``Ax x + c`` themselves (before the interval bound is taken where better; the interval
    bound itself for boxes without coefficients), which ``_clip_boxes`` needs.
    """
    if len(boxes) > chunk:
        outs = [{} for _ in range(0, len(boxes), chunk)]
        parts = [bound_boxes(graph, C, d, boxes.select(slice(i, i + chunk)), alpha_iters, alpha_ax, deadline, chunk,
                             stats, o) for i, o in zip(range(0, len(boxes), chunk), outs)]
        lb, tol, Ax = (torch.cat(p) for p in zip(*[q[:3] for q in parts]))
        pre = {k: (torch.cat([q[3][k][0] for q in parts]), torch.cat([q[3][k][1] for q in parts])) for k in parts[0][3]}
        if out is not None and all("linear" in o for o in outs):
            out["linear"] = tuple(torch.cat([o["linear"][j] for o in outs]) for j in (0, 1))
        return lb, tol, Ax, pre
    if _general(graph):
        lb, tol, Ax, pre, linear = _bound_general(graph, C, d, boxes, stats, deadline)
        if out is not None:
            out["linear"] = linear
        return lb, tol, Ax, pre
    lo, hi = boxes.lo, boxes.hi
    B, K = lo.shape[0], C.shape[0]
    pre = intermediate_bounds(graph, lo, hi, "crown", fixed=boxes.pre)
    A0 = C.reshape(1, K, *graph.output_shape).expand(B, K, *graph.output_shape)
    info: dict = {}
    _, Ax, bias = backward_lower(graph, graph.output_name, A0, lo, hi, pre, return_linear=True, out=info)
    lb, tol = concretize_lower(Ax, bias, lo, hi, d, graph.dtype, info["bias_abs"])
    if alpha_iters > 0 and graph.nonlinear_nodes():
        obj = LinearObjective(graph, A0, d, lo, hi, pre)
        lb, tol, Ax_alpha = optimise_slopes(obj, lb, tol, Steps(alpha_iters, 0.5), Ax=Ax, deadline=deadline)
        if alpha_ax:  # else the split heuristic keeps CROWN's coefficients
            Ax = Ax_alpha
    return lb, tol, Ax, _kept(graph, pre)


def _general(graph) -> bool:
    """Whether the graph has nonlinear nodes other than ReLU (cached on the graph)."""
    cached = graph.__dict__.get("_input_split_general")
    if cached is None:
        cached = graph.__dict__["_input_split_general"] = any(not isinstance(n.op, ReLU)
                                                              for n in graph.nonlinear_nodes())
    return cached


def _kept_names(graph) -> list[str]:
    """The nodes whose bounds a box hands to its children: every input of every nonlinear node (a product's
    relaxation needs both factors' bounds) and the nodes CROWN bounds at every element (``fully_refined_nodes``),
    i.e. every node where ``intermediate_bounds`` intersects in known bounds. Cached on the graph."""
    cached = graph.__dict__.get("_input_split_kept")
    if cached is None:
        names = pre_activation_nodes(graph)
        cached = names + sorted(fully_refined_nodes(graph) - set(names))
        graph.__dict__["_input_split_kept"] = cached
    return cached


def box_elements(graph) -> int:
    """The numbers a stored box holds: its sides and the known bounds handed to its children (``_kept_names``)."""
    return 2 * graph.n_inputs + 2 * sum(math.prod(graph.shape_of(k)) for k in _kept_names(graph))


def _kept(graph, pre: dict) -> dict:
    return {k: pre[k] for k in _kept_names(graph) if k in pre}


def _no_linear_relaxation(graph) -> bool:
    """Whether some node has no linear relaxation at all (MaxPool): CROWN would refuse every box."""
    return any(isinstance(n.op, MaxPool) for n in graph.nonlinear_nodes())


def _bound_general(graph, C, d, boxes: Boxes, stats: dict | None, deadline=None):
    """``bound_boxes`` on a graph with other nonlinearities than ReLU: CROWN (the better of it and the interval
    bound per row), else the interval pass, else (both refused: some node's bounds leave its op undefined) the
    batch is halved until the boxes refused are alone; those get a bound of -inf (never proven, split on).
    Returns ``bound_boxes``' four values and the linear functions' own bounds (``bound_boxes``' ``out``)."""
    try:
        if not _no_linear_relaxation(graph):
            try:
                return _crown_general(graph, C, d, boxes, deadline)
            except UnsupportedError as e:
                log.debug("input split: CROWN refused %d boxes (%s); interval bounds", len(boxes), e)
        found = _interval_general(graph, C, d, boxes)
        if stats is not None:
            stats["ibp_boxes"] = stats.get("ibp_boxes", 0) + len(boxes)
        return found
    except UnsupportedError as e:
        if len(boxes) > 1:
            h = len(boxes) // 2
            parts = [_bound_general(graph, C, d, boxes.select(sl), stats, deadline)
                     for sl in (slice(None, h), slice(h, None))]
            lb, tol, Ax = (torch.cat(p) for p in zip(*[q[:3] for q in parts]))
            pre = {k: (torch.cat([q[3][k][0] for q in parts]), torch.cat([q[3][k][1] for q in parts]))
                   for k in parts[0][3]}
            linear = tuple(torch.cat([q[4][j] for q in parts]) for j in (0, 1))
            return lb, tol, Ax, pre, linear
        log.debug("input split: a box refused by every bound (%s)", e)
        if stats is not None:
            stats["refused_boxes"] = stats.get("refused_boxes", 0) + 1
        lb, tol, Ax, pre = _refused(graph, C, boxes)
        return lb, tol, Ax, pre, (lb, tol)


def _crown_general(graph, C, d, boxes: Boxes, deadline=None):
    lo, hi = boxes.lo, boxes.hi
    B, K = lo.shape[0], C.shape[0]
    pre = intermediate_bounds(graph, lo, hi, "crown", fixed=boxes.pre, deadline=deadline)
    A0 = C.reshape(1, K, *graph.output_shape).expand(B, K, *graph.output_shape)
    info: dict = {}
    _, Ax, bias = backward_lower(graph, graph.output_name, A0, lo, hi, pre, return_linear=True, out=info)
    lin_lb, lin_tol = concretize_lower(Ax, bias, lo, hi, d, graph.dtype, info["bias_abs"])
    lb_i, tol_i = _interval_rows(graph, C, d, pre, B)
    better = (lb_i - tol_i) > (lin_lb - lin_tol)  # both sound; CROWN's lines are loose on wide boxes
    lb, tol = torch.where(better, lb_i, lin_lb), torch.where(better, tol_i, lin_tol)
    return lb, tol, Ax, _kept(graph, pre), (lin_lb, lin_tol)


def _interval_general(graph, C, d, boxes: Boxes):
    B = len(boxes)
    pre = intermediate_bounds(graph, boxes.lo, boxes.hi, "ibp", fixed=boxes.pre)
    lb, tol = _interval_rows(graph, C, d, pre, B)
    Ax = torch.zeros(B, C.shape[0], graph.n_inputs, dtype=boxes.lo.dtype, device=boxes.lo.device)
    return lb, tol, Ax, _kept(graph, pre), (lb, tol)


def _interval_rows(graph, C, d, pre: dict, B: int):
    """Lower bounds (and allowances) of the rows ``C y - d`` on the output's interval bounds."""
    ylo, yhi = (t.reshape(B, -1) for t in pre[graph.output_name])
    K = C.shape[0]
    zero = torch.zeros(B, K, dtype=ylo.dtype, device=ylo.device)
    return concretize_lower(C.unsqueeze(0).expand(B, K, -1), zero, ylo, yhi, d, graph.dtype)


def _refused(graph, C, boxes: Boxes):
    """A box no bound accepts: -inf rows, zero coefficients, and the known bounds it came with (else none)."""
    B, K, dev, dt = len(boxes), C.shape[0], boxes.lo.device, boxes.lo.dtype
    lb = torch.full((B, K), -float("inf"), dtype=torch.float64, device=dev)
    tol = torch.zeros(B, K, dtype=torch.float64, device=dev)
    Ax = torch.zeros(B, K, graph.n_inputs, dtype=dt, device=dev)
    pre = {}
    for k in _kept_names(graph):
        if boxes.pre is not None and k in boxes.pre:
            pre[k] = boxes.pre[k]
        else:
            shape = (B, *graph.shape_of(k))
            pre[k] = (torch.full(shape, -float("inf"), dtype=dt, device=dev),
                      torch.full(shape, float("inf"), dtype=dt, device=dev))
    return lb, tol, Ax, pre


def _recheck_float64(problem, rows: Rows, boxes: Boxes, lb, grp_ok, alpha_iters: int, stats: dict):
    """Bound again in float64 the boxes that only float32's rounding allowance keeps open.

    A box whose every open group has a positive best row bound, not above the allowance
    (``rel_tol(float32)`` times the terms' magnitude), would otherwise be split until it cannot
    be split further: halving does not shrink the allowance. float64's allowance is ~1e7 times
    smaller. The float32 pre-activation bounds of ``boxes`` (rounding already allowed for) seed the pass.
    """
    near = ~grp_ok.all(1) & (grp_ok | (rows.group_best(lb) > 0)).all(1)
    if not bool(near.any()):
        return grp_ok
    g64 = problem.graph64()
    dt = torch.float64
    sub = boxes.select(near)
    b64 = Boxes(sub.lo.to(dt), sub.hi.to(dt), sub.done, {k: (v[0].to(dt), v[1].to(dt)) for k, v in sub.pre.items()})
    lb64, tol64, _, _ = bound_boxes(g64, rows.C.to(dt), rows.d.to(dt), b64, alpha_iters=alpha_iters)
    ok = grp_ok.clone()
    ok[near] = rows.group_ok(lb64, tol64, sub.done)
    stats["float64_rechecked"] = stats.get("float64_rechecked", 0) + int(near.sum())
    stats["float64_proved"] = stats.get("float64_proved", 0) + int(ok[near].all(1).sum())
    return ok


def _settle_exactly(task: RegionTask, rows: Rows, boxes: Boxes, lb, tol, grp_ok, deadline: Deadline, stats: dict):
    """The exact check on boxes kept open only by strict rows (or open input sides) whose float bound is within
    rounding of zero: every open group of the box has such a row. At most ``EXACT_BOXES`` boxes per call; the
    others (and those it does not settle) are split as usual. A box side on the region's boundary is the region's
    own float64 side there (the search's boxes hold the region rounded to the graph's dtype), so the checked boxes
    cover the region's real points."""
    problem = task.problem
    if not bool(rows.has_strict.any()) or not supported(problem.graph, max(len(g) for g in rows.groups)):
        return grp_ok
    near = rows.group_any(within_rounding(lb, tol)) & rows.has_strict  # (B, G)
    cand = ~grp_ok.all(1) & (grp_ok | near).all(1)
    if not bool(cand.any()):
        return grp_ok
    ok = grp_ok.clone()
    dt = boxes.lo.dtype
    edge_lo = torch.tensor(task.lo, dtype=dt).double().numpy()  # the region's sides as the search holds them
    edge_hi = torch.tensor(task.hi, dtype=dt).double().numpy()
    for b in torch.nonzero(cand).flatten()[:EXACT_BOXES].tolist():
        if deadline.expired():
            break
        lo, hi = boxes.lo[b].double().cpu().numpy(), boxes.hi[b].double().cpu().numpy()
        lo = np.where(lo <= edge_lo, np.minimum(lo, task.lo), lo)
        hi = np.where(hi >= edge_hi, np.maximum(hi, task.hi), hi)
        stats["exact_checked"] = stats.get("exact_checked", 0) + 1
        for g, grp in enumerate(rows.groups):
            if bool(ok[b, g]):
                continue
            if not settle_near_zero(problem.graph, rows.disjuncts[g], lb[b, grp], tol[b, grp], lo, hi):
                break  # the box stays open
            ok[b, g] = True
        if bool(ok[b].all()):
            stats["exact_proved"] = stats.get("exact_proved", 0) + 1
    return ok


def _halves(lo, hi, dim):
    ar = torch.arange(lo.shape[0], device=lo.device)
    mid = (lo[ar, dim] + hi[ar, dim]) / 2
    lo2, hi1 = lo.clone(), hi.clone()
    hi1[ar, dim] = mid
    lo2[ar, dim] = mid
    return (lo, hi1), (lo2, hi)


def input_split_region(task: RegionTask, deadline: Deadline, stats: dict, resume: Boxes | None = None) -> RegionOutcome:
    """Search one input region by splitting it into sub-boxes (see the module).

    ``resume``: the boxes an earlier search of the region left open when its time ran out (its
    ``RegionOutcome.open_boxes``; the boxes of its earlier rounds are proven): the search starts from them
    instead of the whole region. Splitting by ``best`` neither hands its boxes over nor resumes (its stored
    boxes mean something else).
    """
    problem, settings = task.problem, task.settings
    graph = problem.graph
    dev, dt = graph.device, graph.dtype
    rows = Rows(problem.spec, task.idx, dev, dt)
    best_mode = settings.input_branching == "best"
    lo = torch.tensor(task.lo, dtype=dt, device=dev).reshape(1, -1)
    hi = torch.tensor(task.hi, dtype=dt, device=dev).reshape(1, -1)
    root_width = (hi - lo).clamp(min=1e-30)
    boxes = Boxes(lo, hi, torch.zeros(1, len(rows.groups), dtype=torch.bool, device=dev))  # groups proven: none
    if resume is not None and not best_mode:
        boxes = resume
        log.info("input split: resuming from %d open boxes", len(boxes))
    last_log = time.monotonic()
    first = True
    it = 0
    round_s = stats.get("input_round_s", 0.0)  # the last round's seconds (also of an earlier search of the run):
    # a round that would end after the run's end is not started (its time estimated from the last one's, in
    # proportion to its boxes where it has more: while the open boxes are fewer than a batch, each round doubles)
    while len(boxes) > 0:
        per = settings.batch // (2 * graph.n_inputs) if (best_mode and not first) else settings.batch
        take = max(1, min(per, len(boxes)))
        estimate = round_s * max(1.0, take / stats.get("input_round_boxes", take))
        if deadline.step_would_overrun(estimate):
            stats["open_domains"] = stats.get("open_domains", 0) + len(boxes)
            return RegionOutcome(Outcome.OPEN, stopped=Stop.DEADLINE, open_domains=len(boxes),
                                 open_boxes=None if best_mode else boxes)
        # newest boxes first (depth first), which keeps the number of stored boxes small
        batch = boxes.pop_newest(take)
        stats["input_round_boxes"] = take
        t_round = time.monotonic()
        with torch.no_grad():
            if best_mode and not first:
                batch = _best_split(problem, rows, batch, stats)
            first = False
            ended, lb = _round(task, rows, batch, root_width, boxes, deadline, stats)
        round_s = stats["input_round_s"] = time.monotonic() - t_round
        if ended is not None:
            return ended
        if lb is None:  # every box of the batch closed
            continue
        it += 1
        if settings.attack_every and it % settings.attack_every == 0:
            # a PGD round over the whole region now and then (new seed each time): falsifies
            # properties whose violations are too small to hit at box centres and vertices
            cex = pgd_attack(graph, problem.spec, AttackSettings(seed=1000 + it), deadline.sub(2.0), problem.reference,
                             rounds=3, box=(task.lo, task.hi))
            if cex is not None:
                return RegionOutcome(Outcome.FALSIFIED, cex)
        stats["max_domains"] = max(stats.get("max_domains", 0), len(boxes))
        if len(boxes) > settings.max_domains:
            stats["memory_cap_hit"] = True
            stats["open_domains"] = stats.get("open_domains", 0) + len(boxes)
            log.warning("input split: %d boxes exceed the cap of %d; giving up on this region", len(boxes),
                        settings.max_domains)
            return RegionOutcome(Outcome.OPEN, stopped=Stop.MEMORY, open_domains=len(boxes))
        if time.monotonic() - last_log > settings.log_every:
            last_log = time.monotonic()
            _log_progress(boxes, root_width, rows.group_best(lb), stats, deadline)
    return RegionOutcome(Outcome.PROVEN)


def _round(task: RegionTask, rows: Rows, batch: Boxes, root_width, boxes: Boxes, deadline: Deadline, stats: dict):
    """Bound ``batch``, try its open boxes' centres and bound-minimising vertices as counterexamples, and store
    their children in ``boxes`` (under ``best``, the open boxes themselves: their children are chosen, and
    bounded, in the next round). Returns (a ``RegionOutcome`` that ends the search, or None; the open boxes'
    row bounds, None when every box closed)."""
    problem, settings = task.problem, task.settings
    graph = problem.graph
    lin: dict = {}
    lb, tol, Ax, pre = bound_boxes(graph, rows.C, rows.d, batch, alpha_iters=settings.input_alpha_iters,
                                   alpha_ax=settings.input_alpha_ax, deadline=deadline, stats=stats, out=lin)
    stats["bound_calls"] = stats.get("bound_calls", 0) + 1
    stats["domains"] = stats.get("domains", 0) + len(batch)
    grp_ok = rows.group_ok(lb, tol, batch.done)
    if graph.dtype != torch.float64:
        grp_ok = _recheck_float64(problem, rows, Boxes(batch.lo, batch.hi, batch.done, pre), lb, grp_ok,
                                  settings.input_alpha_iters, stats)
    grp_ok = _settle_exactly(task, rows, batch, lb, tol, grp_ok, deadline, stats)
    open_ = ~grp_ok.all(1)
    if not bool(open_.any()):
        return None, None
    lo, hi, Ax, lb, grp_ok = batch.lo[open_], batch.hi[open_], Ax[open_], lb[open_], grp_ok[open_]
    pre = {k: (v[0][open_], v[1][open_]) for k, v in pre.items()}
    cex = falsify(problem, rows, lo, hi, Ax, grp_ok)
    if cex is not None:
        return RegionOutcome(Outcome.FALSIFIED, cex), None
    if "linear" in lin:  # networks with other nonlinearities: shrink each box to where its open disjuncts may hold
        keep, lo, hi, grp_ok = _clip_boxes(rows, lo, hi, Ax, lin["linear"][0][open_], lin["linear"][1][open_], grp_ok)
        stats["clip_closed"] = stats.get("clip_closed", 0) + int((~keep).sum())
        if not bool(keep.any()):
            return None, None
        Ax, lb = Ax[keep], lb[keep]
        pre = {k: (v[0][keep], v[1][keep]) for k, v in pre.items()}
    width = hi - lo
    if bool((width.max(1).values <= 1e-9 * (1 + hi.abs().max(1).values)).any()):
        stats["unsplittable"] = True
        return RegionOutcome(Outcome.OPEN, stopped=Stop.UNSPLITTABLE, open_domains=len(boxes) + lo.shape[0]), None
    if settings.input_branching == "best":  # children are chosen (and bounded) in the next round
        boxes.push(Boxes(lo, hi, grp_ok))
    else:
        dim = _branch_dim(settings, rows, lb, Ax, width, root_width, grp_ok)
        (l1, h1), (l2, h2) = _halves(lo, hi, dim)
        boxes.push(Boxes(torch.cat([l1, l2]), torch.cat([h1, h2]), torch.cat([grp_ok, grp_ok]),
                         {k: (torch.cat([v[0], v[0]]), torch.cat([v[1], v[1]])) for k, v in pre.items()}))
    return None, lb


def _clip_boxes(rows: Rows, lo, hi, Ax, lin_lb, lin_tol, grp_ok):
    """Shrink each box to the smallest box holding every point where one of its open disjuncts may hold (what
    alpha-beta-CROWN's input split calls clipping the domains).

    On box ``b`` the row ``r`` is at least ``l(x) - tol`` with ``l(x) = lin_lb + sum_i |a_i| dist_i(x)``, where
    ``a = Ax[b, r]`` and ``dist_i`` is the distance of ``x_i`` from the side where ``a_i x_i`` is least. A point where
    the row is at most 0 thus has ``dist_i <= (tol - lin_lb) / |a_i|`` for every ``i``: a box per row; per disjunct
    (all its rows at most 0) their intersection, empty where the disjunct cannot hold on the box (then it is done
    there); per box the hull of its open disjuncts' boxes. The sides are rounded outward to the boxes' dtype.

    Returns (the boxes kept: some open disjunct may hold there, (B,) bool; their new ``lo``, ``hi``; ``grp_ok``)."""
    dt = lo.dtype
    lo64, hi64, a = lo.double(), hi.double(), Ax.double()
    slack = (lin_tol - lin_lb).clamp(min=0).unsqueeze(-1)  # (B, K, 1)
    mag = a.abs()
    reach = torch.where(mag > 0, slack / mag.clamp(min=1e-300), torch.full_like(mag, float("inf")))
    reach = reach * (1 + 1e-9) + 1e-9 * (hi64 - lo64).unsqueeze(1)  # a little outward for the float64 sums
    lo_r = torch.where(a < 0, torch.maximum(lo64.unsqueeze(1), hi64.unsqueeze(1) - reach), lo64.unsqueeze(1))
    hi_r = torch.where(a > 0, torch.minimum(hi64.unsqueeze(1), lo64.unsqueeze(1) + reach), hi64.unsqueeze(1))
    B, G, n = lo.shape[0], len(rows.groups), lo.shape[1]
    idx = rows.row_group.reshape(1, -1, 1).expand(B, -1, n)
    lo_g = lo64.unsqueeze(1).expand(B, G, n).clone().scatter_reduce_(1, idx, lo_r, "amax")
    hi_g = hi64.unsqueeze(1).expand(B, G, n).clone().scatter_reduce_(1, idx, hi_r, "amin")
    grp_ok = grp_ok | (lo_g > hi_g).any(-1)
    keep = ~grp_ok.all(1)
    open_g = (~grp_ok).unsqueeze(-1)
    new_lo = torch.where(open_g, lo_g, torch.full_like(lo_g, float("inf"))).amin(1)[keep]
    new_hi = torch.where(open_g, hi_g, torch.full_like(hi_g, -float("inf"))).amax(1)[keep]
    lo32, hi32 = new_lo.to(dt), new_hi.to(dt)  # rounded outward: never inside the float64 sides
    lo32 = torch.where(lo32.double() > new_lo, torch.nextafter(lo32, torch.full_like(lo32, -float("inf"))), lo32)
    hi32 = torch.where(hi32.double() < new_hi, torch.nextafter(hi32, torch.full_like(hi32, float("inf"))), hi32)
    lo_k, hi_k = lo[keep], hi[keep]
    return keep, torch.maximum(lo32, lo_k), torch.minimum(hi32, hi_k), grp_ok[keep]


def _log_progress(boxes: Boxes, root_width, group_best, stats: dict, deadline: Deadline):
    frac = torch.where(root_width > 1e-30, (boxes.hi - boxes.lo) / root_width, torch.ones_like(root_width))
    left = float(frac.prod(1).sum()) if len(boxes) else 0.0
    log.info("input split: %d open boxes (%.3g%% of the region), %d bounded, worst bound %.4g, %.1fs left",
             len(boxes), 100 * left, stats["domains"], float(group_best.min()), deadline.left())


def _branch_dim(settings: BaBSettings, rows: Rows, lb, Ax, width, root_width, grp_ok):
    """The dimension to split each box along (``settings.input_branching``), (B,).

    The smear scores estimate how much a split improves the linear bound; a dimension the bound
    barely depends on scores near zero even when the network is far from linear along it, and
    then the score can keep halving one other dimension for ever. ``input_max_aspect`` stops that:
    a box whose chosen side is that many times narrower (relative to the region) than its widest
    side is split along the widest side instead.
    A box without coefficients (bounded by the interval pass: ``bound_boxes``) is split along its relatively
    widest side.
    """
    rel = width / root_width
    if settings.input_branching == "widest":
        return rel.argmax(1)
    if settings.input_branching == "smear-all":
        rows_open = rows.rows_open(grp_ok).to(Ax.dtype)  # (B, K)
        score = ((Ax.abs() * rows_open.unsqueeze(-1)).sum(1) * width)
        dim = torch.where(width > 0, score, torch.full_like(score, -1.0)).argmax(1)
    else:
        dim = _smear_dim(rows, lb, Ax, width, grp_ok)
    if settings.input_max_aspect:
        widest = rel.max(1)
        thin = rel.gather(1, dim.unsqueeze(1)).squeeze(1) * settings.input_max_aspect < widest.values
        dim = torch.where(thin, widest.indices, dim)
    # a box bounded by intervals (or refused) has no coefficients: its relatively widest side
    flat = Ax.abs().flatten(1).amax(1) == 0
    return torch.where(flat, rel.argmax(1), dim)


def _smear_dim(rows: Rows, lb, Ax, width, grp_ok):
    dev = lb.device
    best_row = torch.stack([torch.tensor(r, device=dev)[lb[:, r].argmax(1)] for r in rows.groups], 1)  # (B, G)
    coef = torch.gather(Ax, 1, best_row.unsqueeze(-1).expand(-1, -1, Ax.shape[2])).abs()  # (B, G, n)
    coef = coef * (~grp_ok).unsqueeze(-1)
    score = (coef * width.unsqueeze(1)).sum(1)
    score = torch.where(width > 0, score + 1e-12 * width, torch.full_like(score, -1.0))
    return score.argmax(1)


def _best_split(problem, rows: Rows, boxes: Boxes, stats: dict) -> Boxes:
    """For each box, bound both halves along every dimension; return the children of the best split (still to
    be bounded by the caller)."""
    graph = problem.graph
    lo, hi, done = boxes.lo, boxes.hi, boxes.done
    B, n = lo.shape
    dims = torch.arange(n, device=lo.device)
    L = lo.unsqueeze(1).expand(B, n, n).reshape(-1, n)
    H = hi.unsqueeze(1).expand(B, n, n).reshape(-1, n)
    dim = dims.repeat(B)
    (l1, h1), (l2, h2) = _halves(L, H, dim)
    cl, ch = torch.cat([l1, l2]), torch.cat([h1, h2])  # (2*B*n, n)
    dd = done.repeat_interleave(n, 0).repeat(2, 1)
    lb, tol, _, _ = bound_boxes(graph, rows.C, rows.d, Boxes(cl, ch, dd))
    stats["domains"] = stats.get("domains", 0) + cl.shape[0]
    ok = rows.group_ok(lb, tol, dd)
    gb = rows.group_best(lb).masked_fill(ok, float("inf"))  # proven groups do not count
    quality = gb.min(1).values.clamp(max=1e30).reshape(2, B, n)  # worst open group of each child
    quality = torch.minimum(quality[0], quality[1])  # the worse child of each split (B, n)
    width = hi - lo
    quality = torch.where(width > 0, quality, torch.full_like(quality, -float("inf")))
    best = quality.argmax(1)  # (B,)
    sel = torch.arange(B, device=lo.device) * n + best
    c1, c2 = sel, sel + B * n
    return Boxes(torch.cat([cl[c1], cl[c2]]), torch.cat([ch[c1], ch[c2]]), torch.cat([ok[c1], ok[c2]]))
