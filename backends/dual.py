"""The Wong and Kolter (2018) dual network: a bound on ``C y - d`` from one backward pass.

For a ReLU network and pre-activation bounds ``l <= x <= u``, the dual of the
triangle LP (Wong and Kolter, "Provable defenses against adversarial examples
via the convex outer adversarial polytope", ICML 2018, Theorem 1) is evaluated by
running the network backward:

    nu_K = -c,    nu_hat_i = W_i^T nu_{i+1}  (each affine op's own linear rule),
    nu_i = D_i nu_hat_i,  D = 1 (active), 0 (inactive), u/(u-l) (unstable),

    J(nu) = -sum_i nu_{i+1}^T b_i  -  max_{x in box} nu_hat_1^T x  +  sum_i sum_{j unstable} l_ij [nu_ij]_+

Every ``nu`` built this way is dual feasible, so ``J`` is a lower bound of
``c^T y`` over the box (the LP optimum is at least ``J``; it equals CROWN with the
lower ReLU slope fixed to ``u/(u-l)``). The certificate keeps ``nu`` at every
node; ``DualCertificate.check`` re-derives each relation from the graph and
recomputes ``J`` independently.

Pre-activation bounds come from the core (CROWN) by default, or, as in the paper,
from the dual network itself, layer by layer (``wk_intermediate_bounds``).
Runs on the graph's device (CPU or CUDA) in its dtype; the last step is in float64.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from backends.backend import Backend, register_backend
from backends.box import box_tensors
from backends.core_bounds import CoreBounds
from verifier.bounds.crown import ancestors, pre_activation_nodes, rel_tol
from verifier.bounds.proof import refutes
from verifier.ir.errors import UnsupportedError
from verifier.ir.graph import Graph
from verifier.ir.ops import ReLU
from verifier.ir.result import Result, Verdict
from verifier.ir.spec import Spec


def relu_slopes(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W&K's D (1 active, 0 inactive, u/(u-l) unstable) and the unstable mask."""
    active = lo >= 0
    inactive = hi <= 0
    unstable = ~(active | inactive)
    denom = torch.where(unstable, hi - lo, torch.ones_like(lo))
    D = torch.where(unstable, hi / denom, active.to(lo.dtype))
    return D, unstable


@dataclass
class DualCertificate:
    """The dual variables of one backward pass and the bound they certify.

    nu: W&K ``nu`` (for ReLU inputs) / ``nu_hat`` (elsewhere) at every node the
    pass reached, ``(B, K, *shape)``; the output holds ``-C``. ``bounds``: the
    pre-activation bounds used. ``value``: ``J`` per box and row, ``(B, K)`` float64
    (a lower bound of ``C y - d``).
    """

    nu: dict
    bounds: dict
    bias_term: torch.Tensor
    relu_term: torch.Tensor
    input_term: torch.Tensor
    value: torch.Tensor
    tol: torch.Tensor
    start: str = ""
    meta: dict = field(default_factory=dict)

    def check(self, graph: Graph, C: torch.Tensor, d: torch.Tensor, x_lo: torch.Tensor, x_hi: torch.Tensor,
              rtol: float = 1e-9) -> tuple[bool, torch.Tensor, float]:
        """Re-derive the dual constraints and ``J`` from the stored ``nu``.

        Checks ``nu`` at the start node equals ``-C``; at every node, ``nu`` equals
        the sum over its consumers of ``W^T nu`` (affine) or ``D nu`` (ReLU, with D
        from the stored bounds); recomputes the three terms of ``J`` in float64.
        Returns (ok, recomputed J, largest relative residual).
        """
        return _check(self, graph, C, d, x_lo, x_hi, rtol)


def dual_backward(graph: Graph, start: str, nu0: torch.Tensor, x_lo: torch.Tensor, x_hi: torch.Tensor, pre: dict,
                  keep: bool = True):
    """One backward pass of the dual network from node ``start`` with ``nu_start = nu0`` ``(B, K, *shape)``.

    Returns (bias_term, relu_term, input_term) each (B, K) and the dict of ``nu``
    (all nodes when ``keep``; otherwise only the input). ``J = sum of the three terms``
    lower-bounds ``-nu0 . node(start)``.
    """
    B, K = nu0.shape[:2]
    nus: dict = {start: nu0}
    kept: dict = {}
    bias = torch.zeros(B, K, dtype=nu0.dtype, device=nu0.device)
    relu_term = torch.zeros_like(bias)
    live = ancestors(graph, start)
    idx = {n.name: k for k, n in enumerate(graph.nodes)}
    for node in reversed(graph.nodes[: idx.get(start, -1) + 1]):
        if node.name not in live or node.name not in nus:
            continue
        nu = nus.pop(node.name)
        if keep:
            kept[node.name] = nu
        if node.op.affine:
            in_shapes = [graph.shape_of(i) for i in node.inputs]
            ins, c = node.op.backward(nu.reshape(B * K, *node.shape), in_shapes)
            bias = bias - c.reshape(B, K)  # -nu^T b
            for name, shp, a in zip(node.inputs, in_shapes, ins):
                a = a.reshape(B, K, *shp)
                nus[name] = nus[name] + a if name in nus else a
        elif isinstance(node.op, ReLU):
            src = node.inputs[0]
            lo, hi = pre[src]
            D, unstable = relu_slopes(lo.unsqueeze(1), hi.unsqueeze(1))
            nu_pre = D * nu
            relu_term = relu_term + (torch.where(unstable, lo.unsqueeze(1), torch.zeros_like(D))
                                     * nu_pre.clamp(min=0)).reshape(B, K, -1).sum(-1)
            nus[src] = nus[src] + nu_pre if src in nus else nu_pre
        else:
            raise UnsupportedError(f"the dual network supports ReLU only, not node {node.onnx_node or repr(node.name)}")
    nu_in = nus.get(graph.input_name)
    if nu_in is None:
        nu_in = torch.zeros(B, K, graph.n_inputs, dtype=nu0.dtype, device=nu0.device)
    kept[graph.input_name] = nu_in
    nu_in = nu_in.reshape(B, K, -1)
    lo, hi = x_lo.unsqueeze(1).to(nu_in.dtype), x_hi.unsqueeze(1).to(nu_in.dtype)
    input_term = -torch.maximum(nu_in * lo, nu_in * hi).sum(-1)  # -max_x nu_hat_1^T x
    return bias, relu_term, input_term, kept


def dual_network_bound(graph: Graph, C: torch.Tensor, d: torch.Tensor, x_lo: torch.Tensor, x_hi: torch.Tensor,
                       pre: dict, keep: bool = True) -> DualCertificate:
    """W&K lower bounds of ``C y - d`` over input boxes ``(B, n_inputs)`` given pre-activation bounds ``pre``."""
    dev, dt = graph.device, graph.dtype
    C, d = C.to(dev, dt), d.to(dev, dt)
    x_lo, x_hi = x_lo.to(dev, dt), x_hi.to(dev, dt)
    B, K = x_lo.shape[0], C.shape[0]
    nu0 = (-C).reshape(1, K, *graph.output_shape).expand(B, K, *graph.output_shape)
    with torch.no_grad():
        bias, relu_term, input_term, nus = dual_backward(graph, graph.output_name, nu0, x_lo, x_hi, pre, keep)
    value, tol = _final64(nus[graph.input_name].reshape(B, K, -1), bias, relu_term, x_lo, x_hi, d, dt)
    return DualCertificate(nus if keep else {graph.input_name: nus[graph.input_name]}, pre, bias, relu_term,
                           input_term, value, tol, graph.output_name)


def _final64(nu_in, bias, relu_term, x_lo, x_hi, d, dt):
    nu_in = nu_in.double()
    lo, hi = x_lo.double().unsqueeze(1), x_hi.double().unsqueeze(1)
    input_term = -torch.maximum(nu_in * lo, nu_in * hi).sum(-1)
    value = input_term + bias.double() + relu_term.double() - d.double()
    mag = (nu_in.abs() * torch.maximum(lo.abs(), hi.abs())).sum(-1) + bias.double().abs() + \
        relu_term.double().abs() + d.double().abs()
    return value, rel_tol(dt) * mag + 1e-300


def wk_intermediate_bounds(graph: Graph, x_lo: torch.Tensor, x_hi: torch.Tensor) -> dict:
    """Pre-activation bounds computed by the dual network itself, layer by layer (as in the paper), with IBP
    intersected."""
    B = x_lo.shape[0]
    b = {graph.input_name: (x_lo.reshape(B, *graph.input_shape), x_hi.reshape(B, *graph.input_shape))}
    targets = set(pre_activation_nodes(graph))
    with torch.no_grad():
        for node in graph.nodes:
            lo, hi = node.op.ibp(*[b[i] for i in node.inputs])
            if node.name in targets:
                n = lo[0].numel()
                unstable = ((lo < 0) & (hi > 0)).reshape(B, -1).any(0)
                rows = torch.nonzero(unstable).flatten()
                if rows.numel():
                    m = rows.numel()
                    eye = torch.zeros(m, n, dtype=lo.dtype, device=lo.device)
                    eye[torch.arange(m, device=lo.device), rows] = 1.0
                    # nu0 = -c: rows +e_j give lower bounds of x_j, rows -e_j of -x_j
                    nu0 = -torch.cat([eye, -eye], 0).reshape(1, 2 * m, *node.shape).expand(B, 2 * m, *node.shape)
                    bias, rt, it, _ = dual_backward(graph, node.name, nu0, x_lo, x_hi, b, keep=False)
                    J = bias + rt + it
                    lo2, hi2 = lo.reshape(B, -1).clone(), hi.reshape(B, -1).clone()
                    lo2[:, rows] = torch.maximum(lo2[:, rows], J[:, :m])
                    hi2[:, rows] = torch.minimum(hi2[:, rows], -J[:, m:])
                    lo, hi = lo2.reshape(lo.shape), hi2.reshape(hi.shape)
            b[node.name] = (lo, hi)
    return b


def _check(cert: DualCertificate, graph: Graph, C, d, x_lo, x_hi, rtol):
    nus = {k: v.double() for k, v in cert.nu.items()}
    start = cert.start or graph.output_name
    B, K = nus[start].shape[:2]
    dev = nus[start].device
    C = C.to(dev, torch.float64)
    x_lo, x_hi = x_lo.to(dev, torch.float64), x_hi.to(dev, torch.float64)
    worst = 0.0

    def resid(a, b):
        scale = float(b.abs().max()) if b.numel() else 0.0
        return float((a - b).abs().max()) / (1.0 + scale) if a.numel() else 0.0

    worst = max(worst, resid(nus[start], (-C).reshape(1, K, *graph.output_shape).expand_as(nus[start])))
    expect: dict = {}
    bias = torch.zeros(B, K, dtype=torch.float64, device=dev)
    relu_term = torch.zeros_like(bias)
    live = ancestors(graph, start)
    for node in reversed(graph.nodes):
        if node.name not in live or node.name not in nus:
            continue
        nu = nus[node.name]
        if node.name != start:
            worst = max(worst, resid(nu, expect.pop(node.name, torch.zeros_like(nu))))
        if node.op.affine:
            op = node.op.to(dev, torch.float64)
            in_shapes = [graph.shape_of(i) for i in node.inputs]
            ins, c = op.backward(nu.reshape(B * K, *node.shape), in_shapes)
            bias = bias - c.reshape(B, K)
            for name, shp, a in zip(node.inputs, in_shapes, ins):
                a = a.reshape(B, K, *shp)
                expect[name] = expect[name] + a if name in expect else a
        else:
            src = node.inputs[0]
            lo, hi = (t.to(dev, torch.float64) for t in cert.bounds[src])
            D, unstable = relu_slopes(lo.unsqueeze(1), hi.unsqueeze(1))
            nu_pre = D * nu
            relu_term = relu_term + (torch.where(unstable, lo.unsqueeze(1), torch.zeros_like(D))
                                     * nu_pre.clamp(min=0)).reshape(B, K, -1).sum(-1)
            expect[src] = expect[src] + nu_pre if src in expect else nu_pre
    nu_in = nus[graph.input_name].reshape(B, K, -1)
    worst = max(worst, resid(nu_in, expect.get(graph.input_name, torch.zeros_like(nu_in)).reshape(B, K, -1)))
    value, _ = _final64(nu_in, bias, relu_term, x_lo, x_hi, d.to(dev), torch.float64)
    worst = max(worst, resid(value, cert.value.to(dev)))
    return worst <= rtol, value, worst


@dataclass(eq=False)
class DualBackend(Backend):
    name = "dual"
    complete = False
    description = "Wong-Kolter dual network bound (one backward pass)"

    intermediate: str = "core"  # pre-activation bounds: "core" (the core's CROWN bounds) or "dual" (W&K's own)
    keep_certificate: bool = False  # the DualCertificate of each region in the result's stats
    check: bool = True  # re-derive each certificate and fail loudly if it does not hold

    def __post_init__(self):
        if self.intermediate not in ("core", "dual"):
            raise ValueError("intermediate must be 'core' (the core's CROWN bounds) or 'dual' (W&K layer by layer)")

    def run(self, graph, spec: Spec, core: CoreBounds, deadline=None, reference=None) -> Result:
        t_start = time.perf_counter()
        per = []
        certs = []
        values = {}
        proven = {}
        worst = 0.0
        dt, dev = graph.dtype, graph.device
        for region in core.regions:
            xl, xh = box_tensors(graph, region.lo, region.hi)
            if self.intermediate == "dual":
                pre = wk_intermediate_bounds(graph, xl, xh)
            else:
                pre = {k: (lo.to(dev, dt), hi.to(dev, dt)) for k, (lo, hi) in region.pre.items()}
            rows = [spec.disjuncts[j] for j in region.disjuncts]
            C = torch.tensor(np.concatenate([dj.C for dj in rows], 0))
            d = torch.tensor(np.concatenate([dj.d for dj in rows], 0))
            if C.shape[0] == 0:
                for j in region.disjuncts:
                    values[j], proven[j] = -np.inf, False
                continue
            cert = dual_network_bound(graph, C, d, xl, xh, pre, keep=self.check or self.keep_certificate)
            if self.check:
                ok, _, res = cert.check(graph, C, d, xl, xh)
                worst = max(worst, res)
                if not ok:
                    raise RuntimeError(f"dual certificate failed its own check (residual {res:.3g})")
            if self.keep_certificate:
                certs.append(cert)
            J = cert.value[0].cpu().numpy()
            strict = np.concatenate([dj.strict_rows() for dj in rows])
            ok_rows = refutes(J, cert.tol[0].cpu().numpy(), strict)
            k = 0
            for j, dj in zip(region.disjuncts, rows):
                m = dj.C.shape[0]
                values[j] = float(np.max(J[k:k + m])) if m else -np.inf
                proven[j] = bool(ok_rows[k:k + m].any())
                per.append({"index": j, "bound": values[j], "proven": proven[j]})
                k += m
        n = len(spec.disjuncts)
        bound = min(values[j] for j in range(n)) if n else None
        if all(proven[j] for j in range(n)):  # (a spec with no disjunct has nothing unsafe)
            verdict, msg = Verdict.UNSAT, "every disjunct proven by the dual network bound"
        else:
            verdict, msg = Verdict.UNKNOWN, "the dual bound does not prove every disjunct"
        stats = {"disjuncts": sorted(per, key=lambda r: r["index"]), "intermediate": self.intermediate,
                 "certificate_checked": self.check, "certificate_residual": worst}
        if self.keep_certificate:
            stats["certificates"] = certs
        return Result(verdict, self.name, bound, None, time.perf_counter() - t_start, {}, stats, msg)


register_backend("dual", DualBackend)
