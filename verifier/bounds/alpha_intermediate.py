"""alpha-CROWN with the intermediate layers' slopes optimised too (as in alpha-CROWN proper).

Plain slope optimisation (``objective.optimise_slopes``) tunes the ReLU lower slopes of the
objective's backward pass only; the pre-activation bounds it relies on stay CROWN's. Here every
pre-activation node's CROWN bound has its own slopes as well: one alpha per (bounded node, row,
earlier ReLU neuron), and the intermediate bounds are recomputed from them at every step, so the
gradient of the objective's bound flows through the relaxations of every layer into them.

Soundness: every alpha in [0, 1] gives sound intermediate bounds, so every iterate's bounds are
sound. The walk intersects each iterate's bounds with the starting ones, the objective keeps its
best bound per row, and the intermediate bounds returned are the elementwise tightest seen.
"""
from __future__ import annotations

import time

import torch

from verifier.bounds.crown import (
    WIDEN,
    Bounds,
    ancestors,
    backward_lower,
    intermediate_bounds,
    pre_activation_nodes,
    rounding_allowance,
    widen,
)
from verifier.bounds.linear import LinearObjective, Steps, concretize_lower, keep_best, start_alphas
from verifier.bounds.optim import Adam
from verifier.ir.errors import UnsupportedError
from verifier.ir.graph import Graph
from verifier.ir.ops import ReLU


def crown_rows(graph: Graph, name: str, rows: torch.Tensor, x_lo, x_hi, pre: Bounds, alphas=None):
    """CROWN lower and upper bounds ``(B, m)`` of the flat elements ``rows`` of node ``name``, widened for rounding."""
    B = x_lo.shape[0]
    shape = graph.shape_of(name)
    n = torch.Size(shape).numel()
    m = rows.numel()
    eye = torch.zeros(m, n, dtype=x_lo.dtype, device=x_lo.device)
    eye[torch.arange(m, device=x_lo.device), rows] = 1.0
    A0 = torch.cat([eye, -eye], 0).reshape(1, 2 * m, *shape).expand(B, 2 * m, *shape)
    info: dict = {}
    lb, Ax, _ = backward_lower(graph, name, A0, x_lo, x_hi, pre, alphas=alphas, return_linear=True, out=info)
    lb = lb - rounding_allowance(Ax, info["bias_abs"], x_lo, x_hi, WIDEN.get(Ax.dtype, 1e-3))
    return lb[:, :m], -lb[:, m:]


# slopes (one per bounded row and earlier ReLU neuron) beyond this many elements: the optimisation
# (whose autograd graph holds tensors of the same size per layer) would use gigabytes
MAX_SLOPES = 30_000_000


def intermediate_slope_count(graph: Graph, start: Bounds) -> int:
    """How many slopes ``IntermediateSlopes`` would allocate for the bounds ``start``."""
    total, seen = 0, 0
    for p in pre_activation_nodes(graph):
        lo, hi = start[p]
        B = lo.shape[0]
        m = int(((lo < 0) & (hi > 0)).reshape(B, -1).any(0).sum())
        total += B * 2 * m * seen
        seen += sum(torch.Size(graph.shape_of(n.inputs[0])).numel() for n in graph.nonlinear_nodes()
                    if n.inputs[0] == p)
    return total


class IntermediateSlopes:
    """The slopes of every pre-activation node's CROWN rows, and the walk that uses them."""

    def __init__(self, graph: Graph, x_lo, x_hi, start: Bounds):
        self.graph, self.x_lo, self.x_hi = graph, x_lo, x_hi
        self.start = {p: (start[p][0].detach(), start[p][1].detach()) for p in pre_activation_nodes(graph)}
        B = x_lo.shape[0]
        relus = [n for n in graph.nonlinear_nodes()]
        for n in relus:
            if not isinstance(n.op, ReLU):
                raise UnsupportedError(f"alpha-CROWN supports ReLU only, not node {n.onnx_node}")
        self.rows: dict[str, torch.Tensor] = {}
        self.alphas: dict[str, dict[str, torch.Tensor]] = {}
        for p, (lo, hi) in self.start.items():
            unstable = ((lo < 0) & (hi > 0)).reshape(B, -1).any(0)
            rows = torch.nonzero(unstable).flatten()
            before = ancestors(graph, p)
            earlier = [n for n in relus if n.name in before]
            if rows.numel() == 0 or not earlier:
                continue
            m2 = 2 * rows.numel()
            self.rows[p] = rows
            al = {}
            for n in earlier:
                l0, h0 = self.start[n.inputs[0]]
                a = ReLU.default_alpha(l0, h0).unsqueeze(1).expand(B, m2, *l0.shape[1:]).clone()
                al[n.name] = a.requires_grad_(True)
            self.alphas[p] = al

    def parameters(self) -> list[torch.Tensor]:
        return [a for al in self.alphas.values() for a in al.values()]

    def walk(self) -> Bounds:
        """Bounds of every node from the current slopes (differentiable in them)."""
        g, B = self.graph, self.x_lo.shape[0]
        b: Bounds = {g.input_name: (self.x_lo.reshape(B, *g.input_shape), self.x_hi.reshape(B, *g.input_shape))}
        for node in g.nodes:
            lo, hi = node.op.ibp(*[b[i] for i in node.inputs])
            if node.op.affine:
                lo, hi = widen(lo, hi)
            if node.name in self.start:
                slo, shi = self.start[node.name]
                lo, hi = torch.maximum(lo, slo), torch.minimum(hi, shi)
                rows = self.rows.get(node.name)
                if rows is not None:
                    l_r, u_r = crown_rows(g, node.name, rows, self.x_lo, self.x_hi, b, self.alphas[node.name])
                    lo, hi = lo.reshape(B, -1).clone(), hi.reshape(B, -1).clone()
                    lo[:, rows] = torch.maximum(lo[:, rows], l_r)
                    hi[:, rows] = torch.minimum(hi[:, rows], u_r)
                    lo, hi = lo.reshape(B, *node.shape), hi.reshape(B, *node.shape)
            b[node.name] = (lo, hi)
        return b

    def clamp_(self):
        with torch.no_grad():
            for a in self.parameters():
                a.clamp_(0.0, 1.0)


def optimise_all_slopes(obj: LinearObjective, lb, tol, steps: Steps, deadline=None, stop=None,
                        best_alphas: dict | None = None, inter_slopes: dict | None = None):
    """Joint projected Adam on the objective's and every intermediate node's ReLU slopes.

    Starts from ``obj.pre`` (sound bounds of every node) and the objective bound ``lb``/``tol`` on it.
    Returns (lb, tol, pre): the best bound per row, and the tightest intermediate bounds seen
    (``pre`` refreshed by one interval walk from them). ``best_alphas``, when given, receives the
    objective's slopes of each row's best bound; ``inter_slopes`` the intermediate slopes of the last
    step (``ObjectiveBounds.inter_slopes``: sound with any bounds, and a better start than CROWN's
    slopes where the same neurons are bounded again on a sub-domain).
    """
    graph, A0, d, x_lo, x_hi, pre = obj.graph, obj.A0, obj.d, obj.x_lo, obj.x_hi, obj.pre
    iters, lr, decay = steps.iters, steps.lr, steps.decay
    B, K = A0.shape[:2]
    inter = IntermediateSlopes(graph, x_lo, x_hi, pre)
    out_alphas = {}
    for node in graph.nonlinear_nodes():
        out_alphas[node.name] = start_alphas(node, inter.start, B, K).requires_grad_(True)
    opt = Adam(inter.parameters() + list(out_alphas.values()), lr=lr, decay=decay)
    best_pre = dict(inter.start)
    step_s = 0.0  # the last step's seconds: one that would end after the run's end is not started
    for _ in range(iters):
        if deadline is not None and deadline.step_would_overrun(step_s):
            break
        t_step = time.monotonic()
        with torch.enable_grad():
            b = inter.walk()
            info: dict = {}
            cur, Ax, bias = backward_lower(graph, graph.output_name, A0, x_lo, x_hi, b, out_alphas,
                                           return_linear=True, out=info)
            opt.zero_grad()
            # the rows still open drive the shared intermediate slopes
            w = ((lb - tol) <= 0).to(cur.dtype)
            if not bool(w.any()):
                w = torch.ones_like(w)
            (-(cur * w).sum()).backward()
        with torch.no_grad():
            lb2, tol2 = concretize_lower(Ax.detach(), bias.detach(), x_lo, x_hi, d, x_lo.dtype,
                                         info["bias_abs"].detach())
            better = (lb2 - tol2) > (lb - tol)
            lb, tol = torch.where(better, lb2, lb), torch.where(better, tol2, tol)
            keep_best(best_alphas, out_alphas, better)
            for p in best_pre:
                bl, bh = best_pre[p]
                best_pre[p] = (torch.maximum(bl, b[p][0].detach()), torch.minimum(bh, b[p][1].detach()))
            if stop is not None and stop(lb, tol):
                break
            opt.step()
            inter.clamp_()
            for a in out_alphas.values():
                a.clamp_(0.0, 1.0)
        step_s = time.monotonic() - t_step
    if inter_slopes is not None:
        for p, rows in inter.rows.items():
            inter_slopes[p] = (rows, {n: a.detach() for n, a in inter.alphas[p].items()})
    with torch.no_grad():
        new_pre = intermediate_bounds(graph, x_lo, x_hi, "ibp", fixed=best_pre)
    return lb, tol, new_pre
