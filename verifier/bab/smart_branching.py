"""Splitting ReLU-split domains: the bounds and signs of copies with one more split (``split_domains``), and
filtered smart branching (``fsb_choose``): of a domain's best-scored neurons, the one whose worse child has the
best one-pass bound (``fsb_child_bounds``).

Only the choice of the neuron depends on the one-pass bounds; every child is bounded afterwards as usual.
"""
from __future__ import annotations

import torch

from verifier.bab.domains import Domains, Region, Splits
from verifier.bounds.crown import ancestors, backward_lower

FSB_CHUNK = 4096  # (child, row) items per backward pass of filtered smart branching


def split_domains(graph, layout, pre: dict, splits: Splits, sgn: dict | None = None, bounds: bool = True):
    """Copies of the domains ``splits.parent`` (M,) of ``pre`` with their split applied.

    Returns (pre, sgn, layer): the copies' bounds (empty without ``bounds``), with ``sgn`` (the domains'
    split signs) the copies' signs with the new split recorded (else empty), and the position in
    ``layout`` of each copy's split node.
    """
    dom, flat, active = splits.parent, splits.flat, splits.active
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


def fsb_choose(region: Region, domains: Domains, scores, layout, k: int):
    """Filtered smart branching: of each domain's ``k`` best-scored neurons, the one whose worse child has the
    best bound, estimated by one backward pass per child with the domain's bounds, slopes and split
    multipliers, on the rows of its open groups (``domains.ok``) only."""
    B = scores.shape[0]
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1)
    dev = scores.device
    splits = Splits.candidates(top.indices)
    lb = fsb_child_bounds(region, domains, layout, splits)
    gb = region.rows.group_best(lb).masked_fill(domains.ok[splits.parent], float("inf"))
    worst = gb.min(1).values.reshape(B, k, 2).min(-1).values  # the worse child of each candidate
    worst = torch.where(top.values >= 0, worst, torch.full_like(worst, -float("inf")))
    return top.indices[torch.arange(B, device=dev), worst.argmax(1)]


def fsb_child_bounds(region: Region, domains: Domains, layout, splits: Splits, partial: bool = True):
    """One-pass lower bounds (M, K) of the children ``splits`` on the rows of their parents' open groups (+inf
    elsewhere), with the parents' slopes and multipliers.

    A child differs from its parent only at its split neuron, so above the split's ReLU its pass is the
    parent's: with ``partial``, one pass per parent records the coefficients and constant at each ReLU that
    cuts the graph, and each child's pass starts there (``backward_lower(cuts=...)``); the same bounds as
    full passes, for a fraction of the work on splits in the early layers.
    """
    graph, rows = region.graph, region.rows
    pre, alphas, betas, sgn = domains.pre, domains.alphas, domains.betas, domains.sgn
    dom = splits.parent
    pre_c, _, child_layer = split_domains(graph, layout, pre, splits)
    M, K = dom.numel(), rows.C.shape[0]
    dev = dom.device
    row_open = rows.rows_open(domains.ok)  # (B, K)
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
    start = _cut_passes(region, pre, layout, pi, pk, items(pi, pk, None, everything)) if partial else {}
    layer = child_layer[mi]
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
            lb_i = backward_lower(graph, node, A0, region.x_lo.expand(N, -1), region.x_hi.expand(N, -1), pre_i, al,
                                  extra=extra)
            lb[m, kk] = lb_i[:, 0].double() + base - rows.d[kk].double()
    return lb


def _cut_passes(region: Region, pre, layout, pi, pk, slopes_and_terms) -> dict:
    """One pass per parent item (domain ``pi``, row ``pk``) recording the coefficients and constant at each ReLU
    that cuts the graph: layer of the split (position in ``layout``) -> (ReLU node, A, bias), where the passes of
    the children split in that layer start."""
    graph = region.graph
    start: dict = {}
    if not pi.numel():
        return start
    relu_of = {n.inputs[0]: n.name for n in graph.nonlinear_nodes()}
    cuts: dict = {}
    N = pi.numel()
    al, extra = slopes_and_terms
    pre_i = {p: (v[0][pi], v[1][pi]) for p, v in pre.items()}
    backward_lower(graph, graph.output_name, region.rows.C[pk].reshape(N, 1, *graph.output_shape),
                   region.x_lo.expand(N, -1), region.x_hi.expand(N, -1), pre_i, al, extra=extra, cuts=cuts)
    for li, (p, _) in enumerate(layout):
        node = relu_of.get(p)
        if node in cuts:
            start[li] = (node, *cuts[node])
    return start
