"""Branch and bound by splitting unstable ReLUs (for image-sized inputs).

A domain is a set of split decisions ``z_j >= 0`` / ``z_j <= 0`` on pre-activation
neurons, stored as per-node clamp tensors. The root is bounded by alpha-CROWN with
every layer's slopes optimised; disjuncts proven there are dropped, and the search
bounds the remaining rows only. A batch of domains is bounded at once: the clamps are
intersected into the interval bounds of their node, CROWN refines each domain's layers after
its new split (nets of at most 2048 neurons; the earlier layers would give the parent's
bounds again) with the root's optimised intermediate slopes, and the objective gets alpha/beta-CROWN
steps (64 where the layers are re-bounded, 8 elsewhere; fewer once every row is proven) (beta:
multipliers of the split constraints) warm-started from the parent's optimised slopes and
multipliers (kept per domain in float16 while the memory budget allows, the root's slopes after
that), on the rows of the disjuncts still open in the domain only. A child keeps its parent's
bound where that is better (the parent's bound holds on the child). A domain whose bounds
become empty (lower > upper for some neuron) holds no input and is closed; one with no
unstable neuron left is decided by an exact LP, and, with
``BaBSettings.relu_milp_max_unstable``, one with few unstable neurons by a small MILP
(both in ``exact_domains``).

Branching (``branching``; the scores are in ``branching.py``): where intermediate bounds are not
re-derived, a first-order estimate of the worse child's bound gain per unstable neuron, from the
gradient of the domain's own bound (its slopes and multipliers) with respect to each pre-activation
coefficient; the top one is split. Where they are re-derived, the BaBSR-like score
``|A_j| * (-l_j u_j / (u_j - l_j))`` (the objective's coefficient on the neuron times the area of its
relaxation) picks ``relu_fsb`` candidates (searches with 4 and then 12 in turn:
``relu_split_portfolio``), and a one-pass bound of both children of each with the parent's slopes
and multipliers (filtered smart branching; each child's pass starts at its split's ReLU from the
parent's coefficients there) picks the neuron. Every open domain's bound-minimising
input is evaluated as a counterexample, and seeds the periodic PGD (within ``attack_share`` of the
search time). Where the searches run in turn, the root's intermediate bounds are refined by MILP
between the first and the second (``refine.py``). Domains are taken worst bound first from a
``DomainStore`` (slots: a batch copies its own domains only); the stored domains are capped (``BaBSettings.max_domains`` and a memory budget)
and the search reports ``open`` rather than grow past it. Deadline: the alpha/beta steps stop
at it, a bounding it cut short ends the search, the branching estimate is skipped when it
cannot finish, and a batch whose other work cannot finish in time is not started.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import torch

from verifier.attack import pgd_attack
from verifier.bab.branching import babsr_scores, gradient_scores
from verifier.bab.common import Outcome, Rows, falsify
from verifier.bab.domain_store import DomainStore
from verifier.bab.exact_domains import solve_domain_milp, solve_linear_domain
from verifier.bab.refine import refine_root
from verifier.bounds.crown import ancestors, backward_lower, intermediate_bounds, pre_activation_nodes
from verifier.bounds.linear import concretize_lower, start_alphas
from verifier.bounds.objective import objective_bounds, optimise_slopes
from verifier.ir.deadline import Deadline
from verifier.ir.problem import Problem
from verifier.ir.result import Counterexample
from verifier.settings import BoundSettings
from verifier.settings.bab import BaBSettings
from verifier.settings.options import AttackSettings

log = logging.getLogger("verifier.bab")

MEMORY_BUDGET_BYTES = 4 * 2**30
FSB_CHUNK = 4096  # (child, row) items per backward pass of filtered smart branching
WARM_DTYPE = torch.float16  # stored warm starts (any slope in [0, 1] and multiplier >= 0 is sound)


def _bound_domains(graph, rows: Rows, x_lo, x_hi, PRE: dict, SGN: dict, alpha_iters: int, recompute: bool,
                   deadline: Deadline | None = None, init_alphas: dict | None = None, crown_only=None,
                   init_betas: dict | None = None, row_open=None, timing: dict | None = None,
                   slopes: dict | None = None, coefficients: bool = True):
    """Bound a batch of domains.

    PRE holds each domain's known bounds of every pre-activation node (the parent's bounds with
    the split clamps applied); with ``recompute`` CROWN re-derives every layer from them (tighter,
    costlier; ``crown_only`` (node -> (B,) mask) limits it to the domains whose new split comes before
    the node, since CROWN on the others would give the parent's bounds again), otherwise they are used
    as they are and only the objective is re-bounded.
    ``init_alphas`` and ``init_betas`` warm-start the slopes and split multipliers (the parents'
    optimised ones, node -> broadcastable to (B, K, *shape)). ``row_open`` (B, K) marks the rows still to
    prove: only those are optimised (one CROWN pass bounds every row); after a few splits most domains
    have one or two open rows of the nine of a classification spec. ``timing``, when given, receives
    the seconds of the alpha/beta steps (``"alpha"``: the part that stops at the deadline).
    Returns lb (B, K), tol, pre bounds, per-ReLU objective coefficients of the CROWN pass (with
    ``coefficients``, else empty: only the BaBSR score reads them), infeasible (B,), the
    best slopes and multipliers found per row (node -> (B, K, *shape); the starting ones where no
    step improved; empty without alpha steps), and the input coefficients of each row's best
    linear bound (B, K, n).
    """
    B = next(iter(PRE.values()))[0].shape[0]
    lo, hi = x_lo.expand(B, -1), x_hi.expand(B, -1)
    if recompute:
        pre = intermediate_bounds(graph, lo, hi, "crown", fixed=PRE, crown_only=crown_only, slopes=slopes)
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
                                 record=record if coefficients else None, out=info)
    lb, tol = concretize_lower(Ax, bias, lo, hi, rows.d, graph.dtype, info["bias_abs"])
    alphas: dict = {}
    betas: dict = {}
    t_alpha = time.monotonic()
    if alpha_iters > 0:
        for node in graph.nonlinear_nodes():
            alphas[node.name] = start_alphas(node, pre, B, K, init_alphas)
        for p, s in SGN.items():
            b0 = init_betas[p] if init_betas is not None and p in init_betas else \
                torch.zeros(1, 1, *s.shape[1:], dtype=lo.dtype, device=lo.device)
            betas[p] = b0.to(lo.dtype).expand(B, K, *s.shape[1:]).clone()
        if row_open is None or bool(row_open.all()):
            # alpha and beta-CROWN multipliers of the split constraints (see optimise_slopes)
            lb, tol, Ax = optimise_slopes(graph, A0, rows.d, lo, hi, pre, lb, tol, alpha_iters, lr=0.3, decay=0.95,
                                          signs=SGN, deadline=deadline, init_alphas=init_alphas, best_alphas=alphas,
                                          Ax=Ax, init_betas=init_betas, best_betas=betas, stop=_all_proven)
        elif bool(row_open.any()):
            _optimise_open_rows(graph, rows, x_lo, x_hi, pre, SGN, row_open, lb, tol, Ax, alphas, betas, alpha_iters,
                                deadline)
    if timing is not None:
        timing["alpha"] = time.monotonic() - t_alpha
    return lb, tol, pre, record, infeasible, alphas, betas, Ax


def _all_proven(lb, tol) -> bool:
    """Every row of the batch is proven: its alpha/beta steps can stop."""
    return bool((lb > tol).all())


def _optimise_open_rows(graph, rows: Rows, x_lo, x_hi, pre, SGN, row_open, lb, tol, Ax, alphas, betas,
                        alpha_iters, deadline):
    """alpha/beta steps on the open (domain, row) pairs only, each as a one-row item; the results are
    written into ``lb``, ``tol``, ``Ax``, ``alphas`` and ``betas`` (B, K, ...) in place."""
    bi, ki = torch.nonzero(row_open, as_tuple=True)
    N = bi.numel()
    A0 = rows.C[ki].reshape(N, 1, *graph.output_shape)
    d = rows.d[ki].reshape(N, 1)
    pre_i = {p: (pre[p][0][bi], pre[p][1][bi]) for p in SGN}  # the ReLU inputs' bounds are all it needs
    sgn_i = {p: s[bi] for p, s in SGN.items()}
    al_i = {k: v[bi, ki].unsqueeze(1) for k, v in alphas.items()}
    be_i = {k: v[bi, ki].unsqueeze(1) for k, v in betas.items()}
    best_a = {k: v.clone() for k, v in al_i.items()}
    best_b = {k: v.clone() for k, v in be_i.items()}
    lb_i, tol_i, Ax_i = optimise_slopes(graph, A0, d, x_lo.expand(N, -1), x_hi.expand(N, -1), pre_i,
                                        lb[bi, ki].unsqueeze(1), tol[bi, ki].unsqueeze(1), alpha_iters, lr=0.3,
                                        decay=0.95, signs=sgn_i, deadline=deadline, init_alphas=al_i,
                                        best_alphas=best_a, Ax=Ax[bi, ki].unsqueeze(1), init_betas=be_i,
                                        best_betas=best_b, stop=_all_proven)
    lb[bi, ki], tol[bi, ki], Ax[bi, ki] = lb_i[:, 0], tol_i[:, 0], Ax_i[:, 0]
    for k, v in best_a.items():
        alphas[k][bi, ki] = v[:, 0]
    for k, v in best_b.items():
        betas[k][bi, ki] = v[:, 0]


def _split_bounds(graph, pre, layout, dom, flat, active, sgn=None, bounds: bool = True):
    """Copies of the domains ``dom`` (M,) of ``pre`` with neuron ``flat`` (M,) (index into the concatenated
    pre-activation nodes of ``layout``) clamped to ``z >= 0`` where ``active`` else ``z <= 0``.

    Returns (pre, sgn, layer): the copies' bounds (empty without ``bounds``), with ``sgn`` (the domains'
    split signs) the copies' signs with the new split recorded (else empty), and the position in
    ``layout`` of each copy's split node.
    """
    M = dom.numel()
    out, out_sgn, offset = {}, {}, 0
    layer = torch.zeros(M, dtype=torch.long, device=dom.device)
    for k, (p, size) in enumerate(layout):
        shape = graph.shape_of(p)
        r = torch.nonzero((flat >= offset) & (flat < offset + size)).flatten()
        j, a = flat[r] - offset, active[r]
        if bounds:
            lo_p, hi_p = (t.reshape(t.shape[0], -1)[dom].clone() for t in pre[p])
            lo_p[r[a], j[a]] = 0.0
            hi_p[r[~a], j[~a]] = 0.0
            out[p] = (lo_p.reshape(M, *shape), hi_p.reshape(M, *shape))
        layer[r] = k
        if sgn is not None:
            s_p = sgn[p].reshape(sgn[p].shape[0], -1)[dom].clone()
            s_p[r, j] = torch.where(a, 1, -1).to(s_p.dtype)
            out_sgn[p] = s_p.reshape(M, *shape)
        offset += size
    return out, out_sgn, layer


def _fsb_choose(graph, rows: Rows, x_lo, x_hi, pre, alphas, scores, layout, k: int, grp_ok, betas=None,
                sgn=None):
    """Filtered smart branching: of each domain's ``k`` best-scored neurons, the one whose worse child
    has the best bound, estimated by one backward pass per child with the domain's bounds, slopes and
    split multipliers (``betas`` with the split signs ``sgn``), on the rows of its open groups only.

    Only the choice of the neuron depends on it; every child is bounded afterwards as usual.
    """
    B = scores.shape[0]
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1)
    dev = scores.device
    dom = torch.arange(B, device=dev).repeat_interleave(2 * k)
    flat = top.indices.repeat_interleave(2, dim=1).reshape(-1)
    active = torch.tensor([True, False], device=dev).repeat(B * k)
    lb = _fsb_child_bounds(graph, rows, x_lo, x_hi, pre, alphas, layout, dom, flat, active, grp_ok, betas, sgn)
    gb = rows.group_best(lb).masked_fill(grp_ok[dom], float("inf"))
    worst = gb.min(1).values.reshape(B, k, 2).min(-1).values  # the worse child of each candidate
    worst = torch.where(top.values >= 0, worst, torch.full_like(worst, -float("inf")))
    return top.indices[torch.arange(B, device=dev), worst.argmax(1)]


def _fsb_child_bounds(graph, rows: Rows, x_lo, x_hi, pre, alphas, layout, dom, flat, active, grp_ok, betas=None,
                      sgn=None, partial: bool = True):
    """One-pass lower bounds (M, K) of the children (parent ``dom``, neuron ``flat``, side ``active``) on the
    rows of their parents' open groups (+inf elsewhere), with the parents' slopes and multipliers.

    A child differs from its parent only at its split neuron, so above the split's ReLU its pass is the
    parent's: with ``partial``, one pass per parent records the coefficients and constant at each ReLU that
    cuts the graph, and each child's pass starts there (``backward_lower(cuts=...)``); the same bounds as
    full passes, for a fraction of the work on splits in the early layers.
    """
    pre_c, _, child_layer = _split_bounds(graph, pre, layout, dom, flat, active)
    M, K = dom.numel(), rows.C.shape[0]
    dev = dom.device
    row_open = rows.rows_open(grp_ok)  # (B, K)
    lb = torch.full((M, K), float("inf"), dtype=torch.float64, device=dev)

    # one item per (parent, row of an open group), and one per (child, row of its parent's open groups)
    pi, pk = torch.nonzero(row_open, as_tuple=True)
    pidx = torch.full(row_open.shape, -1, dtype=torch.long, device=dev)
    pidx[pi, pk] = torch.arange(pi.numel(), device=dev)
    mi, ki = torch.nonzero(row_open[dom], as_tuple=True)
    par_of = pidx[dom[mi], ki]
    extra_par = None  # the split multipliers' terms per parent item (a child's new split has none yet)
    if betas and sgn is not None:
        extra_par = {p: -(v[pi, pk] * sgn[p][pi].to(v.dtype)).unsqueeze(1) for p, v in betas.items()}

    def items(b, kk, par, names):  # slopes and split-multiplier terms of items (parent items ``par``; None: the
        # parent items themselves), on the nodes ``names`` only
        al = {n: a[b, kk].unsqueeze(1) for n, a in alphas.items() if n in names} if alphas else None
        extra = {p: v if par is None else v[par] for p, v in extra_par.items() if p in names} if extra_par else None
        return al, extra

    everything = {n.name for n in graph.nodes} | {graph.input_name}
    start = {}  # layer of the split -> (ReLU node, A, bias) where its children's passes start
    layer = child_layer[mi]
    if partial and pi.numel():
        relu_of = {n.inputs[0]: n.name for n in graph.nonlinear_nodes()}
        cuts: dict = {}
        N = pi.numel()
        al, extra = items(pi, pk, None, everything)
        backward_lower(graph, graph.output_name, rows.C[pk].reshape(N, 1, *graph.output_shape),
                       x_lo.expand(N, -1), x_hi.expand(N, -1), {p: (v[0][pi], v[1][pi]) for p, v in pre.items()},
                       al, extra=extra, cuts=cuts)
        for li, (p, _) in enumerate(layout):
            node = relu_of.get(p)
            if node in cuts:
                start[li] = (node, *cuts[node])
    rest = ~torch.isin(layer, torch.tensor(list(start), dtype=torch.long, device=dev))
    groups = [(li, torch.nonzero(layer == li).flatten()) for li in start] + [(None, torch.nonzero(rest).flatten())]
    for li, sel in groups:
        node = graph.output_name if li is None else start[li][0]
        names = everything if li is None else ancestors(graph, node) | {graph.input_name}
        for c0 in range(0, sel.numel(), FSB_CHUNK):  # chunks: the passes' tensors stay cache-sized
            s = sel[c0:c0 + FSB_CHUNK]
            m, kk, par = mi[s], ki[s], par_of[s]
            N = m.numel()
            al, extra = items(dom[m], kk, par, names)
            pre_i = {p: (v[0][m], v[1][m]) for p, v in pre_c.items() if p in names}
            if li is None:
                A0, base = rows.C[kk].reshape(N, 1, *graph.output_shape), 0.0
            else:
                _, A_cut, b_cut = start[li]
                A0, base = A_cut[par], b_cut[par][:, 0].double()
            lb_i = backward_lower(graph, node, A0, x_lo.expand(N, -1), x_hi.expand(N, -1), pre_i, al, extra=extra)
            lb[m, kk] = lb_i[:, 0].double() + base - rows.d[kk].double()
    return lb


def _priority(rows: Rows, lb, ok):
    """(B,) a domain's place in the queue: its worst open group's best row bound (smaller: bounded sooner)."""
    return rows.group_best(lb).masked_fill(ok, float("inf")).min(1).values


def relu_neurons(graph) -> int:
    """How many neurons feed a ReLU (the size of a domain's bounds)."""
    return sum(torch.Size(graph.shape_of(p)).numel() for p in pre_activation_nodes(graph))


def recomputes(graph, settings: BaBSettings) -> bool:
    """Whether each domain's intermediate bounds are re-derived by CROWN (by default: nets of at most 2048 ReLUs)."""
    if settings.relu_recompute is not None:
        return settings.relu_recompute
    return relu_neurons(graph) <= 2048


def alpha_iters(graph, settings: BaBSettings) -> int:
    """alpha/beta steps per domain (``BaBSettings.relu_alpha_iters``; by default 64 where intermediate bounds
    are re-derived, 8 elsewhere)."""
    if settings.relu_alpha_iters is not None:
        return settings.relu_alpha_iters
    return 64 if recomputes(graph, settings) else 8


def branching(graph, settings: BaBSettings) -> str:
    """The branching score (``BaBSettings.relu_branching``; by default "babsr" where intermediate bounds are
    re-derived per domain, "gradient" elsewhere)."""
    if settings.relu_branching is not None:
        return settings.relu_branching
    return "babsr" if recomputes(graph, settings) else "gradient"


def relu_split_portfolio(problem: Problem, lo_np, hi_np, idx, settings: BaBSettings, deadline: Deadline,
                         stats: dict) -> tuple[str, Counterexample | None]:
    """ReLU splitting; where intermediate bounds are re-derived and ``relu_fsb`` is not set, one search per
    width of ``relu_fsb_portfolio`` in turn, each with its share of the time left (the last: the rest), each
    from the root: the best branching width there is erratic from instance to instance. Between the first
    and the second search the root's intermediate bounds are refined by MILP (``relu_refine_share`` of the
    time left, ``bab/refine.py``) and the later searches start from them."""
    if settings.relu_fsb is not None or not settings.relu_fsb_portfolio or not recomputes(problem.graph, settings):
        return relu_split_region(problem, lo_np, hi_np, idx, settings, deadline, stats)
    outcome, cex = Outcome.OPEN, None
    runs = settings.relu_fsb_portfolio
    root_pre = None
    for k, (width, share) in enumerate(runs):
        last = k == len(runs) - 1
        budget = deadline if last else deadline.share(share)
        outcome, cex = relu_split_region(problem, lo_np, hi_np, idx, replace(settings, relu_fsb=width), budget,
                                         stats, root_pre=root_pre)
        stats["portfolio_runs"] = k + 1
        if outcome != Outcome.OPEN or last or deadline.expired() or stats.get("memory_cap_hit") or \
                not stats.get("out_of_time"):
            break
        log.info("relu split: branching width %d left %d domains open; restarting with width %d", width,
                 stats.get("open_domains", 0), runs[k + 1][0])
        stats.pop("out_of_time", None)  # the share ran out, not the whole budget
        stats.pop("open_domains", None)
        if k == 0 and settings.relu_refine_share > 0:
            root_pre = refine_root(problem, lo_np, hi_np, idx, settings,
                                   deadline.share(settings.relu_refine_share), stats)
    return outcome, cex


@dataclass
class _Search:
    """One ReLU-splitting search: its constants and its store of open domains."""
    problem: Problem
    settings: BaBSettings
    deadline: Deadline
    stats: dict
    rows: Rows  # the rows of the disjuncts still open at the root
    x_lo: torch.Tensor
    x_hi: torch.Tensor
    pnodes: list
    recompute: bool
    root_pre: dict
    root_alphas: dict | None
    root_slopes: dict | None
    store: DomainStore
    warm: bool
    warm_cap: int
    cap: int

    def give_up(self, extra_open: int = 0, here: float | None = None) -> tuple[str, None]:
        """OPEN, with the open domains (stored, and ``extra_open`` taken ones whose worst bound is ``here``)."""
        self.stats["open_domains"] = self.stats.get("open_domains", 0) + len(self.store) + extra_open
        worst = self.store.worst() if len(self.store) else float("inf")
        self.stats["worst_open_bound"] = worst if here is None else min(here, worst)
        return Outcome.OPEN, None


def _start(problem: Problem, lo_np, hi_np, idx, settings: BaBSettings, deadline: Deadline, stats: dict,
           root_pre: dict | None = None):
    """Bound the root (CROWN, then alpha-CROWN; from ``root_pre``, sound bounds of every node, when given);
    PROVEN there, else the search with the root as its one domain."""
    graph, spec = problem.graph, problem.spec
    dev, dt = graph.device, graph.dtype
    rows = Rows(spec, idx, dev, dt)
    x_lo = torch.tensor(lo_np, dtype=dt, device=dev).reshape(1, -1)
    x_hi = torch.tensor(hi_np, dtype=dt, device=dev).reshape(1, -1)
    pnodes = pre_activation_nodes(graph)
    t = time.monotonic()
    method = "alpha-crown" if settings.root_alpha else "crown"
    ob = objective_bounds(graph, rows.C, rows.d, x_lo, x_hi, BoundSettings(method), groups=rows.groups,
                          deadline=deadline, pre=root_pre)
    stats["root_bound"] = float(rows.group_best(ob.lower).min())
    stats["root_time"] = time.monotonic() - t
    grp_ok = rows.group_ok(ob.lower, ob.tol, torch.zeros(1, len(rows.groups), dtype=torch.bool, device=dev))
    if bool(grp_ok.all()):
        return Outcome.PROVEN
    neurons = relu_neurons(graph)
    recompute = recomputes(graph, settings)
    stats["recompute_intermediate"] = recompute
    # stored per domain: the split signs, and where bounds are re-derived the bounds (elsewhere a domain's bounds
    # are the root's with its splits clamped in, rebuilt from the signs when it is taken)
    per_domain = neurons * ((2 * (8 if dt == torch.float64 else 4) if recompute else 0) + 1) + 64
    cap = int(min(settings.max_domains, MEMORY_BUDGET_BYTES // per_domain))
    stats["domain_cap"] = cap
    root_pre = ob.pre
    # the root's optimised intermediate slopes: the CROWN re-derivation of a domain's bounds starts from them
    root_slopes = ob.inter_slopes if settings.relu_root_slopes else None
    # disjuncts proven at the root stay proven on every domain: the search bounds the others' rows only
    open_g = [g for g in range(len(rows.groups)) if not bool(grp_ok[0, g])]
    keep_rows = [r for g in open_g for r in rows.groups[g]]
    rows = Rows(spec, [rows.idx[g] for g in open_g], dev, dt)
    kr = torch.tensor(keep_rows, device=dev)
    root_alphas = {k: v[:, kr] for k, v in ob.alphas.items()} if ob.alphas else None
    stats["search_rows"] = len(keep_rows)
    # warm starts (a slope and a multiplier per open row and neuron) are stored while they fit
    # beside the bounds; past that many domains the children restart from the root's slopes
    warm_bytes = 2 * neurons * len(keep_rows) * WARM_DTYPE.itemsize
    warm_cap = int(min(cap, MEMORY_BUDGET_BYTES // (per_domain + warm_bytes)))
    if settings.relu_warm_domains is not None:
        warm_cap = min(warm_cap, settings.relu_warm_domains)
    # per domain: bounds ("lo:"/"hi:" node), split signs ("sgn:"), its groups done, the parent's bound per
    # row (valid on every child, so a child is never bounded worse), the layer (index in pnodes) of the
    # split that made it (layers up to it need no new CROWN), and while the memory budget allows its best
    # slopes and split multipliers per row ("alpha:"/"beta:"), the warm start of its children's
    # optimisation (restarting every child from the root's slopes loses the parent's optimum)
    root = {}
    for p in pnodes:
        if recompute:
            root[f"lo:{p}"], root[f"hi:{p}"] = root_pre[p][0], root_pre[p][1]
        root[f"sgn:{p}"] = torch.zeros((1, *graph.shape_of(p)), dtype=torch.int8, device=dev)
    root["done"] = torch.zeros(1, len(open_g), dtype=torch.bool, device=dev)
    root["plb"], root["ptol"] = ob.lower[:, kr], ob.tol[:, kr]
    root["spl"] = torch.full((1,), len(pnodes), dtype=torch.long, device=dev)
    warm = alpha_iters(graph, settings) > 0 and warm_cap > 0
    if warm:
        for node in graph.nonlinear_nodes():
            root[f"alpha:{node.name}"] = start_alphas(node, root_pre, 1, len(keep_rows), root_alphas).to(WARM_DTYPE)
        for p in pnodes:
            root[f"beta:{p}"] = torch.zeros((1, len(keep_rows), *graph.shape_of(p)), dtype=WARM_DTYPE, device=dev)
    # priority: the worst open row bound (smaller = worse = first)
    store = DomainStore(root, torch.full((1,), -float("inf"), dtype=torch.float64, device=dev),
                        limit=warm_cap if warm else cap)
    return _Search(problem, settings, deadline, stats, rows, x_lo, x_hi, pnodes, recompute, root_pre, root_alphas,
                   root_slopes, store, warm, warm_cap, cap)


def _domain_inputs(s: _Search, d: dict):
    """The taken domains' split signs, bounds, and warm starts (slopes, split multipliers)."""
    graph, dt = s.problem.graph, s.problem.graph.dtype
    sgn = {p: d[f"sgn:{p}"] for p in s.pnodes}
    if s.recompute:
        pre_in = {p: (d[f"lo:{p}"], d[f"hi:{p}"]) for p in s.pnodes}
    else:  # the root's bounds with the domain's splits: z >= 0 (sign 1), z <= 0 (sign -1)
        zero = torch.zeros((), dtype=dt, device=graph.device)
        pre_in = {p: (torch.where(sgn[p] > 0, zero, s.root_pre[p][0]), torch.where(sgn[p] < 0, zero, s.root_pre[p][1]))
                  for p in s.pnodes}
    if s.warm:
        al_in = {node.name: d[f"alpha:{node.name}"].to(dt) for node in graph.nonlinear_nodes()}
        be_in = {p: d[f"beta:{p}"].to(dt) for p in s.pnodes}
    else:
        al_in, be_in = s.root_alphas, None
    return sgn, pre_in, al_in, be_in


def _decide_exactly(s: _Search, scores, keep, ok, pre, sgn):
    """Domains decided without splitting: with ``relu_milp_max_unstable``, those with few unstable ReLUs by a
    small MILP; those with none by an exact LP. Updates ``keep`` (still to split) and ``ok`` in place.
    Returns (FALSIFIED, cex), or (None, unresolved: some LP could not decide its domain)."""
    problem, rows, stats = s.problem, s.rows, s.stats
    one = lambda b: {p: (pre[p][0][b:b + 1], pre[p][1][b:b + 1]) for p in s.pnodes}  # noqa: E731
    if s.settings.relu_milp_max_unstable > 0:
        n_unst = (scores >= 0).sum(1)
        for b in torch.nonzero(keep & (n_unst <= s.settings.relu_milp_max_unstable)).flatten().tolist():
            stats["milp_domains"] = stats.get("milp_domains", 0) + 1
            verdict, cex = solve_domain_milp(problem, rows, s.x_lo, s.x_hi, one(b), ok[b], s.deadline)
            if verdict == Outcome.FALSIFIED:
                return Outcome.FALSIFIED, cex
            if verdict == Outcome.PROVEN:
                keep[b] = False  # closed; not split, not sent to the LP
                ok[b] = True
    unresolved = False
    # no unstable neuron left: the network is linear on the domain, so one LP over the box and the split
    # constraints decides it exactly (proven, or a counterexample); domains the MILP closed are skipped
    for b in torch.nonzero(~keep & ~ok.all(1)).flatten().tolist():
        stats["lp_domains"] = stats.get("lp_domains", 0) + 1
        verdict, cex = solve_linear_domain(problem, rows, s.x_lo, s.x_hi, one(b),
                                           {p: sgn[p][b:b + 1] for p in s.pnodes}, ok[b])
        if verdict == Outcome.FALSIFIED:
            return Outcome.FALSIFIED, cex
        if verdict == Outcome.OPEN:
            unresolved = True
            stats["unresolved_domains"] = stats.get("unresolved_domains", 0) + 1
    return None, unresolved


def _add_children(s: _Search, best_idx, layout, pre, sgn, lb, tol, ok, alphas, betas):
    """Store both children of each domain (split on ``best_idx``): active (lower bound 0) and inactive copies."""
    dev = lb.device
    n = best_idx.numel()
    both = torch.arange(n, device=dev).repeat(2)
    active = torch.arange(2 * n, device=dev) < n
    ch_pre, ch_sgn, k_layer = _split_bounds(s.problem.graph, pre, layout, both, best_idx.repeat(2), active, sgn,
                                            bounds=s.recompute)  # else rebuilt from the signs when taken
    children = {"done": torch.cat([ok, ok]), "plb": torch.cat([lb, lb]), "ptol": torch.cat([tol, tol]),
                "spl": torch.tensor([s.pnodes.index(p) for p, _ in layout], device=dev)[k_layer]}
    for p in s.pnodes:
        if s.recompute:
            children[f"lo:{p}"], children[f"hi:{p}"] = ch_pre[p]
        children[f"sgn:{p}"] = ch_sgn[p]
    if s.warm:  # a slope of each ReLU node and a multiplier of each split neuron, per row
        for k, v in alphas.items():
            children[f"alpha:{k}"] = torch.cat([v, v])
        for k, v in betas.items():
            children[f"beta:{k}"] = torch.cat([v, v])
    pri = _priority(s.rows, lb, ok)
    s.store.add(children, torch.cat([pri, pri]))
    s.stats["max_domains"] = max(s.stats.get("max_domains", 0), len(s.store))
    if s.warm and len(s.store) > s.warm_cap:
        s.warm = False
        s.store.drop([k for k in s.store.data if k.startswith(("alpha:", "beta:"))])
        s.store.limit = s.cap
        s.stats["warm_start_dropped_at"] = len(s.store)
        log.info("relu split: %d domains; no longer storing each domain's slopes (memory)", len(s.store))


def _search_attack(s: _Search, Ax, it: int):
    """PGD started from the worst domains' bound-minimising vertices (and random points)."""
    starts = torch.where(Ax[:8] > 0, s.x_lo.unsqueeze(1), s.x_hi.unsqueeze(1)).reshape(-1, s.x_lo.shape[1])
    return pgd_attack(s.problem.graph, s.problem.spec, AttackSettings(restarts=32, steps=50, seed=it),
                      s.deadline.sub(2.0), s.problem.reference, rounds=3,
                      starts=starts.double().cpu().numpy())


def relu_split_region(problem: Problem, lo_np, hi_np, idx, settings: BaBSettings, deadline: Deadline,
                      stats: dict, root_pre: dict | None = None) -> tuple[str, Counterexample | None]:
    """ReLU splitting on one input box (see the module's docstring), from the root bounds ``root_pre`` when
    given (sound bounds of every node, e.g. refined by MILP); statistics go into ``stats``."""
    s = _start(problem, lo_np, hi_np, idx, settings, deadline, stats, root_pre)
    if not isinstance(s, _Search):
        return s, None
    graph, rows, store, pnodes = problem.graph, s.rows, s.store, s.pnodes
    score_kind = stats["branching"] = branching(graph, settings)
    fsb = settings.relu_fsb if settings.relu_fsb is not None else (1 if score_kind == "gradient" else 12)
    n_alpha = alpha_iters(graph, settings)
    batch = settings.relu_batch if s.recompute else 4 * settings.relu_batch
    last_log = time.monotonic()
    it = 0
    t_start, t_attack = time.monotonic(), 0.0
    first = True
    unresolved = False
    # seconds the previous iteration took, less its alpha/beta steps (which stop at the deadline): an
    # iteration whose other work cannot finish in time is not started
    last_batch = 0.0
    timing: dict = {}
    last_fsb = 0.0  # seconds the previous branching estimate took
    t_batch = None
    while len(store) > 0:
        if t_batch is not None:
            last_batch = time.monotonic() - t_batch - timing.get("alpha", 0.0)
        if deadline.expired() or deadline.left() < last_batch:
            stats["out_of_time"] = True
            return s.give_up()
        t_batch = time.monotonic()
        it += 1
        take = min(batch, len(store))
        d, _ = store.take(take)
        sgn, pre_in, al_in, be_in = _domain_inputs(s, d)
        done, plb, ptol, spl = d["done"], d["plb"], d["ptol"], d["spl"]
        with torch.no_grad():
            lb, tol, pre, record, infeasible, alphas, betas, Ax = _bound_domains(
                graph, rows, s.x_lo, s.x_hi, pre_in, sgn, n_alpha, s.recompute and not first,
                deadline, al_in, {p: spl < k for k, p in enumerate(pnodes)}, be_in, rows.rows_open(done),
                timing, s.root_slopes, coefficients=score_kind == "babsr")
            inherit = (plb - ptol) > (lb - tol)
            lb, tol = torch.where(inherit, plb, lb), torch.where(inherit, ptol, tol)
        first = False
        stats["bound_calls"] = stats.get("bound_calls", 0) + 1
        stats["domains"] = stats.get("domains", 0) + take
        ok = rows.group_ok(lb, tol, done) | infeasible.unsqueeze(1)
        open_ = ~ok.all(1)
        if not bool(open_.any()):
            continue
        if deadline.expired():  # the bounding stopped at the deadline: its open domains stay open
            stats["out_of_time"] = True
            return s.give_up(int(open_.sum()), float(_priority(rows, lb[open_], ok[open_]).min()))
        o = torch.nonzero(open_).flatten()
        lb, tol, ok = lb[o], tol[o], ok[o]
        pre = {p: (pre[p][0][o], pre[p][1][o]) for p in pnodes}
        record = {k: v[o] for k, v in record.items()}
        alphas = {k: v[o] for k, v in alphas.items()}
        betas = {k: v[o] for k, v in betas.items()}
        Ax = Ax[o]
        with torch.no_grad():  # the input that minimises each open row's linear bound, and the box centre
            cex = falsify(problem, rows, s.x_lo.expand(o.numel(), -1), s.x_hi.expand(o.numel(), -1), Ax, ok)
        if cex is not None:
            return Outcome.FALSIFIED, cex
        sgn = {p: sgn[p][o] for p in pnodes}
        with torch.no_grad():
            if score_kind == "babsr":
                scores, layout = babsr_scores(graph, pre, record, lb, rows, ok)
            else:
                scores, layout = gradient_scores(graph, rows, s.x_lo, s.x_hi, pre, alphas, betas, sgn, lb, ok)
        best = scores.max(1)
        keep = best.values >= 0
        if settings.relu_milp_max_unstable > 0 or not bool(keep.all()):
            verdict, out = _decide_exactly(s, scores, keep, ok, pre, sgn)
            if verdict == Outcome.FALSIFIED:
                return Outcome.FALSIFIED, out
            unresolved |= out
            if not bool(keep.any()):
                continue
            if not bool(keep.all()):
                lb, tol, ok = lb[keep], tol[keep], ok[keep]
                alphas = {k: v[keep] for k, v in alphas.items()}
                betas = {k: v[keep] for k, v in betas.items()}
                pre = {p: (pre[p][0][keep], pre[p][1][keep]) for p in pnodes}
                sgn = {p: sgn[p][keep] for p in pnodes}
        best_idx = best.indices[keep]
        if fsb > 1 and deadline.left() > 1.5 * last_fsb:  # else the top score alone
            t_fsb = time.monotonic()
            with torch.no_grad():
                best_idx = _fsb_choose(graph, rows, s.x_lo, s.x_hi, pre, alphas, scores[keep], layout, fsb, ok, betas,
                                       sgn)
            stats["fsb_calls"] = stats.get("fsb_calls", 0) + 1
            last_fsb = time.monotonic() - t_fsb
        _add_children(s, best_idx, layout, pre, sgn, lb, tol, ok, alphas, betas)
        if len(store) > s.cap:
            stats["memory_cap_hit"] = True
            log.warning("branch and bound: %d domains exceed the cap of %d; giving up on this region", len(store),
                        s.cap)
            return s.give_up()
        if settings.attack_every and it % settings.attack_every == 0 and \
                t_attack <= settings.attack_share * (time.monotonic() - t_start):
            # PGD within its share of the search time (every bound-minimising input is tried as a
            # counterexample anyway)
            t_a = time.monotonic()
            cex = _search_attack(s, Ax, it)
            t_attack += time.monotonic() - t_a
            stats["search_attacks"] = stats.get("search_attacks", 0) + 1
            if cex is not None:
                return Outcome.FALSIFIED, cex
        if time.monotonic() - last_log > settings.log_every:
            last_log = time.monotonic()
            log.info("relu split: %d domains, %d bounded, worst bound %.4g, %.1fs left",
                     len(store), stats["domains"], store.worst() if len(store) else float("nan"),
                     deadline.left())
    return (Outcome.OPEN if unresolved else Outcome.PROVEN), None
