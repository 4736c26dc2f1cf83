"""Linear bound propagation (CROWN) over the layer graph.

``backward_lower`` propagates linear coefficients ``A`` from a start node back to
the network input, through each operator's own linear rule (affine ops) or
linear relaxation (ReLU), and concretises the result on the input box. It is
batched over domains ``B`` (input boxes) and rows ``K`` (objectives).

``intermediate_bounds`` walks the graph forward once: interval bounds for every
node, and at every pre-activation node (the input of a ReLU) a CROWN bound that
is intersected with the interval bound before the walk goes on, so later layers
start from the tighter of the two.
"""
from __future__ import annotations

import math

import torch

from verifier.ir.graph import Graph

Bounds = dict[str, tuple[torch.Tensor, torch.Tensor]]


def ancestors(graph: Graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        n = todo.pop()
        if n in seen or n == graph.input_name:
            continue
        seen.add(n)
        todo.extend(graph.by_name[n].inputs)
    return seen


def backward_lower(graph: Graph, start: str, A0: torch.Tensor, x_lo: torch.Tensor, x_hi: torch.Tensor,
                   pre: Bounds, alphas: dict[str, torch.Tensor] | None = None, return_linear: bool = False,
                   record: dict | None = None, extra: dict[str, torch.Tensor] | None = None,
                   out: dict | None = None, cuts: dict | None = None):
    """Lower bounds of ``A0 . node(start)`` over the input boxes.

    A0: ``(B, K, *shape(start))``; x_lo, x_hi: ``(B, n_inputs)``; pre: bounds of each
    nonlinear node's input, ``(B, *shape)``; alphas: optional lower ReLU slopes per
    nonlinear node, broadcastable to ``(B, K, *shape)``. Returns ``(B, K)``, and
    with ``return_linear`` also the input coefficients ``(B, K, n)`` and constant ``(B, K)``.
    ``record``, when given, receives the coefficients ``A`` on each nonlinear node's output
    (used by branching heuristics). ``extra`` adds coefficients on chosen nodes when
    the pass reaches them (the Lagrangian terms of split constraints in beta-CROWN).
    ``out``, when given, receives ``bias_abs`` ``(B, K)``: the sum of the magnitudes of every
    constant term added along the pass, which sizes the float rounding allowance.
    ``cuts``, when given, receives ``(A, bias)`` at each nonlinear node that is the whole frontier of
    the pass when it is reached (every path to the input goes through it): the lower bound is then
    ``bias`` plus the same pass started at that node with ``A0 = A`` (filtered smart branching
    re-runs only that part for children split at or below the node).
    """
    B, K = A0.shape[:2]
    As: dict[str, torch.Tensor] = {start: A0}
    bias = torch.zeros(B, K, dtype=A0.dtype, device=A0.device)
    track = out is not None
    bias_abs = torch.zeros(B, K, dtype=A0.dtype, device=A0.device) if track else None
    offsets = graph.offsets() if track else None
    live = ancestors(graph, start)
    idx = {n.name: k for k, n in enumerate(graph.nodes)}
    stop = idx.get(start, -1)
    for node in reversed(graph.nodes[: stop + 1]):
        if node.name not in live or node.name not in As:
            continue
        A = As.pop(node.name)
        if cuts is not None and not As and not node.op.affine:
            cuts[node.name] = (A, bias.clone())
        if extra is not None and node.name in extra:
            A = A + extra[node.name]
        if node.op.affine:
            in_shapes = [graph.shape_of(i) for i in node.inputs]
            A_ins, c = node.op.backward(A.reshape(B * K, *node.shape), in_shapes)
            bias = bias + c.reshape(B, K)
            if track and offsets.get(node.name) is not None:
                bias_abs = bias_abs + A.abs().reshape(B, K, -1) @ offsets[node.name].reshape(-1)
            for name, shp, Ai in zip(node.inputs, in_shapes, A_ins):
                Ai = Ai.reshape(B, K, *shp)
                As[name] = As[name] + Ai if name in As else Ai
        elif len(node.inputs) > 1:  # a nonlinear node of several inputs (a product): the op relaxes A itself
            if record is not None:
                record[node.name] = A
            in_shapes = [graph.shape_of(i) for i in node.inputs]
            alpha = alphas.get(node.name) if alphas else None
            A_ins, c, c_abs = node.op.relax_backward(A, [pre[i] for i in node.inputs], in_shapes, alpha)
            bias = bias + c
            if track:
                bias_abs = bias_abs + c_abs
            for name, Ai in zip(node.inputs, A_ins):
                As[name] = As[name] + Ai if name in As else Ai
        else:
            src = node.inputs[0]
            if record is not None:
                record[node.name] = A
            Ai, c, abs_minus, abs_plus = _relaxed_step(node, A, pre[src], alphas, B, K, track)
            bias = bias + c
            if track:  # sum of |A_j * constant_j|
                bias_abs = bias_abs - abs_minus
                if abs_plus is not None:
                    bias_abs = bias_abs + abs_plus
            As[src] = As[src] + Ai if src in As else Ai
    Ax = As.get(graph.input_name)
    if Ax is None:  # start does not depend on the input
        Ax = torch.zeros(B, K, graph.n_inputs, dtype=A0.dtype, device=A0.device)
    Ax = Ax.reshape(B, K, -1)
    lb = (Ax.clamp(min=0) * x_lo.unsqueeze(1)).sum(-1) + (Ax.clamp(max=0) * x_hi.unsqueeze(1)).sum(-1) + bias
    if track:
        out["bias_abs"] = bias_abs
    if return_linear:
        return lb, Ax, bias
    return lb


def _relaxed_step(node, A, bounds, alphas, B: int, K: int, track: bool):
    """One nonlinear node of the backward pass: its lower line where ``A >= 0``, its upper line where ``A < 0``.

    Returns the coefficients on the node's input, the constant term (B, K), and, with ``track``, the two parts of
    the constant terms' magnitude (subtracted, added; the second None without a lower constant).
    """
    lo, hi = bounds
    alpha = alphas.get(node.name) if alphas else None
    ls, lb_, us, ub_ = node.op.relax(lo.unsqueeze(1), hi.unsqueeze(1), alpha)
    A_pos = A.clamp(min=0)
    A_neg = A - A_pos
    Ai = torch.addcmul(A_pos * ls, A_neg, us)
    An = A_neg.reshape(B, K, -1)
    c_up = _row_dot(An, ub_, B)
    c = c_up
    Ap = None
    if lb_ is not None:
        Ap = A_pos.reshape(B, K, -1)
        c_low = _row_dot(Ap, lb_, B)
        c = c + c_low
    abs_minus = abs_plus = None
    if track:
        # A_neg <= 0: with constants >= 0 (ReLU's chord), the sum is -c_up itself
        abs_minus = c_up if node.op.upper_bias_nonneg else _row_dot(An, ub_.abs(), B)
        if lb_ is not None:
            abs_plus = _row_dot(Ap, lb_.abs(), B)
    return Ai, c, abs_minus, abs_plus


def _row_dot(A: torch.Tensor, v: torch.Tensor, B: int) -> torch.Tensor:
    """``(A * v).sum`` over the neuron axes as a batched matrix product: A (B, K, n), v broadcastable
    to (B, 1, *shape) -> (B, K)."""
    n = A.shape[-1]
    v = v.reshape(v.shape[0], n, 1)
    if v.shape[0] != B:
        v = v.expand(B, n, 1)
    return torch.bmm(A, v).squeeze(-1)


REL_TOL = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 2e-2, torch.bfloat16: 2e-2}


def rel_tol(dtype) -> float:
    """Relative rounding allowance of a bound computed in ``dtype``.

    float32 has a unit roundoff of 6e-8; 2e-5 allows ~300 roundings' worth of error on the
    magnitude of the terms, far above what the sums here accumulate in practice (the
    tests check a network built to make float32 cancel badly).
    """
    return REL_TOL.get(dtype, 2e-5)


def rounding_allowance(Ax, bias_abs, x_lo, x_hi, rel: float | None = None):
    """``rel * (sum_i |A_i| max(|lo_i|, |hi_i|) + sum |constant terms|)`` per row, in Ax's dtype."""
    mag = (Ax.abs() * torch.maximum(x_lo.abs(), x_hi.abs()).unsqueeze(1)).sum(-1) + bias_abs
    return (rel_tol(Ax.dtype) if rel is None else rel) * mag


WIDEN = {torch.float64: 1e-14, torch.float32: 1e-6}


def widen(lo, hi):
    """Interval bounds pushed outward by ~16 units of roundoff of their own magnitude.

    Applied after every affine node of the interval pass, so that rounding in one layer's
    sums cannot leave a later neuron's true value outside its bounds.
    """
    t = WIDEN.get(lo.dtype, 1e-3) * (lo.abs() + hi.abs() + torch.finfo(lo.dtype).tiny)
    return lo - t, hi + t


def after_nonlinear(graph: Graph, name: str) -> bool:
    """Whether some nonlinear node lies between the input and node ``name``."""
    before = ancestors(graph, name)
    return any(n.name in before for n in graph.nonlinear_nodes())


def pre_activation_nodes(graph: Graph) -> list[str]:
    """Names of the nodes that feed a nonlinear operator (every input of one of several inputs, such as a product),
    in topological order."""
    names: list[str] = []
    for n in graph.nonlinear_nodes():
        for i in n.inputs:
            if i not in names:
                names.append(i)
    return names


# CROWN bounds of every element of a node cost about (its elements) x (the elements of the nodes before it) products;
# beyond this many a node is refined through a smaller one it is an affine function of (``fully_refined_nodes``):
# Softmax's 17 x 17 x 17 differences in a vit_2023 attention block would take 4e9 and 13 GB
MAX_FULL_REFINE = 3e8


# the CROWN rows of one node (2 per bounded element, times the boxes) cost about that many times the elements of the
# nodes before it; past this the node keeps its interval bounds: a traffic_signs_recognition net (Sign after
# 16x28x28 and 32x27x27 convolutions) took minutes in one call where the run had 30 s
MAX_ROWS_COST = 2e9
ROWS_CHUNK_COST = 5e7  # with a deadline, rows are bounded in chunks of about this cost, the deadline checked between


def _ancestor_elements(graph: Graph, name: str) -> int:
    """The elements of every node before ``name`` (cached on the graph)."""
    cache = graph.__dict__.setdefault("_ancestor_elements", {})
    if name not in cache:
        cache[name] = sum(math.prod(graph.shape_of(a)) for a in ancestors(graph, name))
    return cache[name]


def _full_refine_cost(graph: Graph, name: str) -> float:
    size = math.prod(graph.shape_of(name))
    return float(size) * sum(math.prod(graph.shape_of(a)) for a in ancestors(graph, name))


def fully_refined_nodes(graph: Graph) -> set[str]:
    """The nodes whose every element CROWN bounds (not only those across 0, as for ReLU): the inputs of operators
    whose relaxation depends on their inputs' bounds everywhere (``op.refine_inputs``: products, reciprocals,
    exponentials), or, where that would cost more than ``MAX_FULL_REFINE``, the nearest node before the input along
    a chain of one-input nodes whose refinement is affordable (the interval pass carries its bounds on: Softmax's
    input before its differences and their clamp); none where there is no such node. Cached on the graph."""
    return _refine_plan(graph)[0]


def _refine_plan(graph: Graph) -> tuple[set[str], set[str]]:
    """``(fully_refined_nodes, skipped)``: ``skipped`` holds the inputs of ``refine_inputs`` operators (and of no other
    nonlinear operator) that are too costly to refine themselves: CROWN does not bound them (not even the elements
    across 0, which is what ReLU's inputs get)."""
    cached = graph.__dict__.get("_refine_plan")
    if cached is not None:
        return cached
    out: set[str] = set()
    costly: set[str] = set()
    other: set[str] = set()
    for n in graph.nonlinear_nodes():
        if not getattr(n.op, "refine_inputs", False):
            other.update(n.inputs)
            continue
        for cur in n.inputs:
            if _full_refine_cost(graph, cur) > MAX_FULL_REFINE:
                costly.add(cur)
            while cur != graph.input_name and _full_refine_cost(graph, cur) > MAX_FULL_REFINE:
                node = graph.by_name[cur]
                if len(node.inputs) != 1:
                    cur = graph.input_name
                    break
                cur = node.inputs[0]
            if cur != graph.input_name:
                out.add(cur)
    plan = (out, costly - other - out)
    graph.__dict__["_refine_plan"] = plan
    return plan


def slopes_of_rows(slopes, rows: torch.Tensor) -> dict | None:
    """The lower ReLU slopes of the CROWN rows ``rows`` (lower bounds, then upper) taken from ``slopes`` =
    (sorted rows R, {ReLU node -> (B0, 2|R|, *shape)}) (``ObjectiveBounds.inter_slopes``); None where some
    row is not in R."""
    R, al = slopes
    if R.numel() == 0:
        return None
    R = R.to(rows.device)
    pos = torch.searchsorted(R, rows).clamp(max=R.numel() - 1)
    if not bool((R[pos] == rows).all()):
        return None
    idx = torch.cat([pos, pos + R.numel()])
    return {n: a[:, idx] for n, a in al.items()}


def crown_node_bounds(graph: Graph, name: str, x_lo, x_hi, pre: Bounds, lo_ibp, hi_ibp, slopes=None,
                      all_rows: bool = False, deadline=None):
    """CROWN lower and upper bounds of every element of node ``name`` (only the elements unstable under
    ``lo_ibp``/``hi_ibp``, unless ``all_rows``).

    ``slopes``: lower ReLU slopes for these rows as ``slopes_of_rows`` takes them (else CROWN's adaptive
    ones); every slope in [0, 1] is sound."""
    B = x_lo.shape[0]
    shape = graph.shape_of(name)
    n = lo_ibp[0].numel()
    if all_rows:
        unstable = torch.ones(n, dtype=torch.bool, device=x_lo.device)
    else:
        unstable = ((lo_ibp < 0) & (hi_ibp > 0)).reshape(B, -1).any(0)
    rows = torch.nonzero(unstable).flatten()
    if rows.numel() == 0:
        return lo_ibp, hi_ibp
    m = rows.numel()
    per_row = 2 * B * _ancestor_elements(graph, name)
    if m * per_row > MAX_ROWS_COST:  # interval bounds (sound) rather than hours
        return lo_ibp, hi_ibp
    lo, hi = lo_ibp.reshape(B, -1).clone(), hi_ibp.reshape(B, -1).clone()
    # rows in chunks, the deadline checked between them: rows not reached keep their interval bounds (sound)
    chunk = max(1, int(ROWS_CHUNK_COST // per_row)) if deadline is not None else m
    for start in range(0, m, chunk):
        if start and deadline.expired():
            break
        part = rows[start:start + chunk]
        k = part.numel()
        eye = torch.zeros(k, n, dtype=x_lo.dtype, device=x_lo.device)
        eye[torch.arange(k, device=x_lo.device), part] = 1.0
        A0 = torch.cat([eye, -eye], 0).reshape(1, 2 * k, *shape).expand(B, 2 * k, *shape)
        info: dict = {}
        alphas = slopes_of_rows(slopes, part) if slopes is not None else None
        lb, Ax, _ = backward_lower(graph, name, A0, x_lo, x_hi, pre, alphas, return_linear=True, out=info)
        # outward allowance for float rounding (see rounding_allowance)
        lb = lb - rounding_allowance(Ax, info["bias_abs"], x_lo, x_hi, WIDEN.get(Ax.dtype, 1e-3))
        lo[:, part] = torch.maximum(lo[:, part], lb[:, :k])
        hi[:, part] = torch.minimum(hi[:, part], -lb[:, k:])
    return lo.reshape(B, *shape), hi.reshape(B, *shape)


def intermediate_bounds(graph: Graph, x_lo: torch.Tensor, x_hi: torch.Tensor, method: str = "crown",
                        fixed: Bounds | None = None, crown_only: set | dict | None = None,
                        slopes: dict | None = None, deadline=None) -> Bounds:
    """Bounds of every node; pre-activation nodes refined by CROWN when ``method != 'ibp'``.

    ``fixed`` may give known bounds of some pre-activation nodes (intersected in;
    used by branch and bound to impose ReLU splits). ``crown_only``, when given, limits the
    CROWN refinement to those nodes (the others keep interval bounds intersected with ``fixed``);
    as a dict it maps each node to refine to a ``(B,)`` mask of the boxes to refine it on (branch
    and bound: the domains whose new split comes before the node). ``slopes`` (node -> what
    ``slopes_of_rows`` takes; ``ObjectiveBounds.inter_slopes`` of a larger box) gives the CROWN rows'
    lower ReLU slopes where it covers them. ``deadline`` (optional): once it has expired the nodes left keep their
    interval bounds (sound, looser), and a node's CROWN rows are bounded in chunks with the deadline checked
    between them.
    """
    B = x_lo.shape[0]
    b: Bounds = {graph.input_name: (x_lo.reshape(B, *graph.input_shape), x_hi.reshape(B, *graph.input_shape))}
    full, skipped = _refine_plan(graph)
    targets = set(pre_activation_nodes(graph)) | full
    for node in graph.nodes:
        lo, hi = node.op.ibp(*[b[i] for i in node.inputs])
        if node.op.affine:  # matrix products round: push the interval outward
            lo, hi = widen(lo, hi)
        if node.name in targets:
            every = node.name in full
            if fixed and node.name in fixed:
                lo, hi = torch.maximum(lo, fixed[node.name][0]), torch.minimum(hi, fixed[node.name][1])
            # an affine function of the input alone is bounded exactly by the interval pass when it is one affine
            # layer; the factors of a product are bounded by CROWN either way (a chain of affine layers, as before
            # an attention block, loosens the interval bounds, and the product's planes depend on them)
            if method != "ibp" and (crown_only is None or node.name in crown_only) and node.name not in skipped and \
                    (every or after_nonlinear(graph, node.name)) and not (deadline is not None and deadline.expired()):
                mask = crown_only.get(node.name) if isinstance(crown_only, dict) else None
                sl = slopes.get(node.name) if slopes else None
                if mask is None or bool(mask.all()):
                    lo, hi = crown_node_bounds(graph, node.name, x_lo, x_hi, b, lo, hi, sl, every, deadline)
                elif bool(mask.any()):
                    i = torch.nonzero(mask).flatten()
                    sub = {k: (v[0][i], v[1][i]) if v[0].shape[0] == B else v for k, v in b.items() if k in targets}
                    lo_i, hi_i = crown_node_bounds(graph, node.name, x_lo[i], x_hi[i], sub, lo[i], hi[i], sl, every,
                                                   deadline)
                    lo, hi = lo.clone(), hi.clone()
                    lo[i], hi[i] = lo_i, hi_i
        b[node.name] = (lo, hi)
    return b
