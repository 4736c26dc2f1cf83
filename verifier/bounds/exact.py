"""Exact lower bounds of the spec's rows for small affine + ReLU networks, in rational arithmetic.

Why: a float bound is trusted only beyond its rounding allowance (``verifier.bounds.objective``), so a
row whose true minimum is exactly zero is never refuted in floats, and for a strict row
(``C_i y < d_i``) zero is exactly what refutes it: ``Y = X`` on ``X in [1, 2]`` never meets ``Y < 1``, yet
CROWN's float bound of ``Y - 1`` is ``0`` with an allowance ``tol > 0``, and splitting the box does not
shrink the allowance. Here the same kind of bound is computed with ``fractions.Fraction``: no rounding,
so ``lb >= 0`` is a proof for a strict row, ``lb > 0`` for any row.

What is computed, for one input box and rows ``C y - d``:

- interval bounds of every node, in exact arithmetic; at each ReLU input, while the work budget lasts,
  a CROWN bound (a backward pass of linear relaxations) intersected in;
- the rows by one backward pass that starts from ``C`` at the output, so the spec's rows are folded
  into the last affine layer exactly (``C W`` and ``C b - d``): two outputs made by the same weights
  give the zero row exactly, and ``Y_0 < Y_1`` is refuted;
- ReLU relaxations as in CROWN (stable neurons exact; unstable ones the chord above and ``alpha z``
  below, ``alpha = 1`` where ``u >= -l`` else ``0``);
- a row is refuted when its lower bound ``lb`` is positive, or ``lb >= 0`` and the row is strict, or
  ``lb >= 0`` and the linear bound's minimum lies only on open sides of the input set (``x_j > lo_j``
  with a positive coefficient, ``x_j < hi_j`` with a negative one): the bound is then never attained
  on the set, so every point of the set has ``C_i y - d_i > lb >= 0``.

Pre-activation bounds are rounded outward to float64 (lower down, upper up; sound, and it keeps
the rationals' sizes from growing with depth); nothing else is rounded.

Semantics of a proof from here: the network in real arithmetic with its weights as stored (each
float32 or float64 weight is an exact dyadic rational), on the input set and rows with the float64
values the spec reader produced (the nearest double of each decimal; counterexamples are validated
against the same values). That is what every ``unsat`` of this verifier claims (README, "Soundness":
no input of the box reaches the unsafe outputs; the float bounds' allowances exist to make float
computations sound for the same real network). onnxruntime evaluates the network in float32, which
may differ from real arithmetic by rounding: on the boundary of a strict row a float32 input may meet
``C_i y < d_i`` only because of rounding (a float32 sum can round a value at ``d_i`` to one below it). Such a point
is a genuine counterexample of the float model: validation accepts it if a search finds it first, and
the answer is then ``sat``; a proof here says that no real input reaches the unsafe set. Callers pass
boxes that cover the set's real points (input splitting maps its rounded region sides back to the
region's float64 ones).

Supported: graphs of Linear, Scale, AddNodes, Reshape, Transpose and ReLU (not Conv, pooling or
smooth activations), with finite weights and a finite box, whose work fits ``MAX_WORK``
multiplications of rationals (interval pass, the rows' pass; intermediate CROWN passes are added
while the budget lasts). Anything else: None (the caller keeps the float answer).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from verifier.bounds.proof import within_rounding
from verifier.ir.graph import Graph
from verifier.ir.ops import AddNodes, Linear, ReLU, Reshape, Scale, Transpose

MAX_WORK = 20_000  # multiplications of rationals per check (a few microseconds each on dyadic values)

_ZERO = Fraction(0)
_ONE = Fraction(1)


class _NotExact(Exception):
    """The graph or box cannot be handled exactly (an operator, a shape, a non-finite value)."""


# what the exact passes may raise on an input they cannot handle (a shape numpy cannot broadcast, a value out of
# float64's range): the check then does not apply, and the float answer stands
_DECLINED = (_NotExact, ValueError, TypeError, OverflowError, ZeroDivisionError)


def _frac(a) -> np.ndarray:
    """A float array as an object array of exact Fractions; _NotExact for NaN or infinity."""
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise _NotExact("non-finite value")
    out = np.empty(a.shape, dtype=object)
    out.reshape(-1)[:] = [Fraction(v) for v in a.reshape(-1).tolist()]
    return out


def _zeros(shape) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    out.reshape(-1)[:] = [_ZERO] * int(np.prod(shape, dtype=np.int64))
    return out


def _tensor(t) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _mask(a) -> np.ndarray:
    return np.asarray(a, dtype=bool)


@dataclass
class _Node:
    """One node in exact form: ``kind`` (linear, scale, add, reshape, transpose, relu), its inputs and shapes,
    its constants as Fractions, and ``cost``: multiplications per row of a backward pass through it."""

    name: str
    kind: str
    inputs: tuple
    in_shapes: tuple
    shape: tuple
    params: dict
    cost: int


@dataclass
class _Plan:
    """What a graph would cost in exact form, from its shapes alone: per node its kind, shapes and backward cost
    per row; ``cost_to`` (node -> multiplications per row of a backward pass from it to the input) and
    ``ibp_cost`` (the interval pass)."""

    nodes: list  # (graph node, kind, in_shapes, shape, cost)
    cost_to: dict
    ibp_cost: int


@dataclass
class ExactNet:
    input_name: str
    input_shape: tuple
    output_name: str
    output_shape: tuple
    nodes: list
    cost_to: dict  # node -> multiplications per row of a backward pass from it to the input
    ibp_cost: int  # multiplications of the interval pass


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_NETS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _plan(graph: Graph) -> _Plan | None:
    """The graph's exact-form plan (cached), or None where an operator or a shape is not supported."""
    if graph not in _PLANS:
        try:
            _PLANS[graph] = _make_plan(graph)
        except _DECLINED:
            _PLANS[graph] = None
    return _PLANS[graph]


def _broadcast(*shapes):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return None


def _make_plan(graph: Graph) -> _Plan:
    nodes, ibp = [], 0
    for n in graph.nodes:
        op = n.op
        in_shapes = tuple(tuple(graph.shape_of(i)) for i in n.inputs)
        shape = tuple(n.shape)
        size = int(np.prod(shape, dtype=np.int64))
        if isinstance(op, Linear):
            k, m = (tuple(op.weight.shape) + (0, 0))[:2]
            if op.weight.dim() != 2 or in_shapes[0][-1:] != (k,) or shape != in_shapes[0][:-1] + (m,):
                raise _NotExact("Linear shapes")
            kind, cost = "linear", (size // max(1, m)) * k * m + size
            ibp += 2 * cost
        elif isinstance(op, Scale):
            for t in (op.scale, op.shift):
                if t is not None and (t.dim() > len(shape) or _broadcast(in_shapes[0], tuple(t.shape)) != shape):
                    raise _NotExact("Scale shapes")
            if in_shapes[0] != shape:
                raise _NotExact("Scale broadcasts its input")
            kind, cost = "scale", 2 * size
            ibp += 2 * size
        elif isinstance(op, AddNodes):
            if any(len(s) != len(shape) for s in in_shapes) or _broadcast(*in_shapes) != shape:
                raise _NotExact("Add shapes")
            kind, cost = "add", 2 * size
            ibp += 4 * size
        elif isinstance(op, Reshape):
            if int(np.prod(in_shapes[0], dtype=np.int64)) != size:
                raise _NotExact("Reshape sizes")
            kind, cost = "reshape", 0
        elif isinstance(op, Transpose):
            kind, cost = "transpose", 0
        elif isinstance(op, ReLU):
            kind, cost = "relu", 3 * size
        else:
            raise _NotExact(f"operator {op.kind}")
        nodes.append((n, kind, in_shapes, shape, cost))
    costs = {n.name: cost for n, _, _, _, cost in nodes}
    inputs = {n.name: n.inputs for n, _, _, _, _ in nodes}
    cost_to = {}
    for n, _, _, _, _ in nodes:
        seen, todo, total = set(), [n.name], 0
        while todo:
            k = todo.pop()
            if k in seen or k == graph.input_name:
                continue
            seen.add(k)
            total += costs[k]
            todo.extend(inputs[k])
        cost_to[n.name] = total
    return _Plan(nodes, cost_to, ibp)


def exact_net(graph: Graph) -> ExactNet | None:
    """The graph in exact form (cached per graph), or None where an operator, a shape or a value (NaN, infinity)
    is not supported."""
    if graph not in _NETS:
        plan = _plan(graph)
        try:
            _NETS[graph] = None if plan is None else _convert(graph, plan)
        except _DECLINED:
            _NETS[graph] = None
    return _NETS[graph]


def _convert(graph: Graph, plan: _Plan) -> ExactNet:
    nodes = []
    for n, kind, in_shapes, shape, cost in plan.nodes:
        op = n.op
        if kind == "linear":
            W = _tensor(op.weight)
            Wq = _frac(W)
            params = {"WT": Wq.T.copy(), "Wp": np.where(W > 0, Wq, _ZERO), "Wn": np.where(W < 0, Wq, _ZERO),
                      "b": None if op.bias is None else _frac(np.broadcast_to(_tensor(op.bias), shape))}
        elif kind == "scale":
            params = {key: None if t is None else _frac(_tensor(t)) for key, t in (("s", op.scale), ("t", op.shift))}
        elif kind == "add":
            params = {"s0": Fraction(float(op.s0)), "s1": Fraction(float(op.s1))}
        elif kind == "transpose":
            params = {"perm": op.perm, "inv": op.inv}
        else:
            params = {}
        nodes.append(_Node(n.name, kind, n.inputs, in_shapes, shape, params, cost))
    return ExactNet(graph.input_name, tuple(graph.input_shape), graph.output_name, tuple(graph.output_shape), nodes,
                    plan.cost_to, plan.ibp_cost)


def work_needed(graph: Graph, n_rows: int) -> int | None:
    """Multiplications of the interval pass and of ``n_rows`` rows' backward pass (from the shapes alone); None where
    an operator or a shape is not supported."""
    plan = _plan(graph)
    if plan is None:
        return None
    return plan.ibp_cost + n_rows * (plan.cost_to.get(graph.output_name, 0) + 2 * graph.n_inputs)


def supported(graph: Graph, n_rows: int, max_work: int = MAX_WORK) -> bool:
    """Whether ``exact_refuted_rows`` would run for ``n_rows`` rows on this graph (cheap)."""
    w = work_needed(graph, n_rows)
    return w is not None and w <= max_work


# ---------------------------------------------------------------------------------------------------- passes
def _down(v: Fraction) -> Fraction:
    """The largest float64 not above ``v``, as a Fraction."""
    f = float(v)
    if Fraction(f) > v:
        f = math.nextafter(f, -math.inf)
    if not math.isfinite(f):
        raise _NotExact("bound out of float64 range")
    return Fraction(f)


def _up(v: Fraction) -> Fraction:
    f = float(v)
    if Fraction(f) < v:
        f = math.nextafter(f, math.inf)
    if not math.isfinite(f):
        raise _NotExact("bound out of float64 range")
    return Fraction(f)


def _unbroadcast(a: np.ndarray, shape) -> np.ndarray:
    """Coefficients ``(R, *out)`` on an input of ``shape`` that was broadcast to ``out``: the broadcast axes summed."""
    dims = tuple(i + 1 for i, s in enumerate(shape) if s == 1 and a.shape[i + 1] != 1)
    if dims:
        a = a.sum(axis=dims, keepdims=True)
    return a


def _ibp_node(node: _Node, bounds: dict):
    p = node.params
    if node.kind == "linear":
        lo, hi = bounds[node.inputs[0]]
        out_lo = lo @ p["Wp"] + hi @ p["Wn"]
        out_hi = hi @ p["Wp"] + lo @ p["Wn"]
        if p["b"] is not None:
            out_lo, out_hi = out_lo + p["b"], out_hi + p["b"]
        return out_lo, out_hi
    if node.kind == "scale":
        lo, hi = bounds[node.inputs[0]]
        if p["s"] is not None:
            a, b = lo * p["s"], hi * p["s"]
            pos = _mask(p["s"] >= 0)
            lo, hi = np.where(pos, a, b), np.where(pos, b, a)
        if p["t"] is not None:
            lo, hi = lo + p["t"], hi + p["t"]
        return lo, hi
    if node.kind == "add":
        parts = []
        for s, name in ((p["s0"], node.inputs[0]), (p["s1"], node.inputs[1])):
            lo, hi = bounds[name]
            parts.append((s * lo, s * hi) if s >= 0 else (s * hi, s * lo))
        return parts[0][0] + parts[1][0], parts[0][1] + parts[1][1]
    if node.kind == "reshape":
        lo, hi = bounds[node.inputs[0]]
        return lo.reshape(node.shape), hi.reshape(node.shape)
    if node.kind == "transpose":
        lo, hi = bounds[node.inputs[0]]
        return lo.transpose(p["perm"]), hi.transpose(p["perm"])
    lo, hi = bounds[node.inputs[0]]  # relu
    return np.where(_mask(lo > 0), lo, _ZERO), np.where(_mask(hi > 0), hi, _ZERO)


def _relu_back(A: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """CROWN's lower relaxation of ``A . relu(z)`` on ``lo <= z <= hi``: the coefficients on ``z`` and the constant."""
    R = A.shape[0]
    act, ina = _mask(lo >= 0), _mask(hi <= 0)
    uns = ~(act | ina)
    den = np.where(uns, hi - lo, _ONE)
    up = np.where(uns, hi / den, np.where(act, _ONE, _ZERO))
    up_b = np.where(uns, -(lo * hi) / den, _ZERO)
    low = np.where(uns, np.where(_mask(hi >= -lo), _ONE, _ZERO), np.where(act, _ONE, _ZERO))
    pos = _mask(A >= 0)
    A_in = np.where(pos, A * low, A * up)
    c = np.where(pos, _ZERO, A * up_b).reshape(R, -1).sum(1)
    return A_in, c


def _backward(net: ExactNet, start: str, A0: np.ndarray, bounds: dict):
    """``A0 . node(start) >= Ax . x + c`` on the box (CROWN relaxations at the ReLUs): returns (Ax (R, n), c (R,))."""
    R = A0.shape[0]
    As = {start: A0}
    c = np.array([_ZERO] * R, dtype=object)
    for node in reversed(net.nodes):
        if node.name not in As:
            continue
        A = As.pop(node.name)
        p = node.params
        if node.kind == "linear":
            ins = [A @ p["WT"]]
            if p["b"] is not None:
                c = c + (A * p["b"]).reshape(R, -1).sum(1)
        elif node.kind == "scale":
            a = A * p["s"] if p["s"] is not None else A
            ins = [np.broadcast_to(a, (R, *node.in_shapes[0])).copy()]
            if p["t"] is not None:
                c = c + (A * p["t"]).reshape(R, -1).sum(1)
        elif node.kind == "add":
            ins = [_unbroadcast(p["s0"] * A, node.in_shapes[0]), _unbroadcast(p["s1"] * A, node.in_shapes[1])]
        elif node.kind == "reshape":
            ins = [A.reshape(R, *node.in_shapes[0])]
        elif node.kind == "transpose":
            ins = [A.transpose(0, *[q + 1 for q in p["inv"]])]
        else:
            lo, hi = bounds[node.inputs[0]]
            a_in, cc = _relu_back(A, lo, hi)
            ins = [a_in]
            c = c + cc
        for name, a in zip(node.inputs, ins):
            As[name] = As[name] + a if name in As else a
    n = int(np.prod(net.input_shape, dtype=np.int64))
    Ax = As.get(net.input_name)
    Ax = _zeros((R, n)) if Ax is None else Ax.reshape(R, n)
    return Ax, c


def _concretize(Ax: np.ndarray, c: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """min over the closed box of ``Ax . x + c`` per row."""
    return np.where(_mask(Ax >= 0), Ax * lo, Ax * hi).sum(1) + c


def _node_bounds(net: ExactNet, lo: np.ndarray, hi: np.ndarray, budget: int) -> dict:
    """Exact interval bounds of every node, CROWN-refined at the ReLU inputs while ``budget`` lasts."""
    bounds = {net.input_name: (lo.reshape(net.input_shape), hi.reshape(net.input_shape))}
    pre = {n.inputs[0] for n in net.nodes if n.kind == "relu"}
    for node in net.nodes:
        l, u = _ibp_node(node, bounds)
        if node.name in pre:
            l, u = l.copy(), u.copy()
            fl, fu = l.reshape(-1), u.reshape(-1)
            idx = np.flatnonzero(_mask(fl < 0) & _mask(fu > 0))
            rows = 2 * idx.size
            if rows and rows * (net.cost_to[node.name] + 2 * lo.size) <= budget:
                budget -= rows * (net.cost_to[node.name] + 2 * lo.size)
                A0 = _zeros((rows, fl.size))
                for r, j in enumerate(idx.tolist()):
                    A0[r, j] = _ONE
                    A0[idx.size + r, j] = -_ONE
                Ax, c = _backward(net, node.name, A0.reshape(rows, *node.shape), bounds)
                lb = _concretize(Ax, c, lo, hi)
                for r, j in enumerate(idx.tolist()):
                    fl[j] = max(fl[j], lb[r])
                    fu[j] = min(fu[j], -lb[idx.size + r])
            fl[:] = [_down(v) for v in fl]
            fu[:] = [_up(v) for v in fu]
        bounds[node.name] = (l, u)
    return bounds


@dataclass(frozen=True)
class ExactRows:
    """The exact lower bound of each row of ``C y - d`` on the box (Fractions), and which rows it refutes."""

    lower: tuple
    refuted: np.ndarray  # (K,) bool


def exact_row_bounds(graph: Graph, C, d, lo, hi, strict=None, lo_open=None, hi_open=None,
                     max_work: int = MAX_WORK) -> ExactRows | None:
    """Exact lower bounds of ``C y - d`` over the box ``lo <= x <= hi`` (open sides per ``lo_open`` / ``hi_open``)
    and the rows they refute (``strict`` rows by ``lb >= 0``; see the module). None where the graph, the box or
    the work is beyond this module (``supported``)."""
    C = np.asarray(C, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    K = C.shape[0]
    need = work_needed(graph, K)
    if need is None or need > max_work:
        return None
    net = exact_net(graph)
    if net is None:
        return None
    lo64, hi64 = np.asarray(lo, dtype=np.float64).reshape(-1), np.asarray(hi, dtype=np.float64).reshape(-1)
    if lo64.size != int(np.prod(net.input_shape, dtype=np.int64)) or C.shape[1:] != (
            int(np.prod(net.output_shape, dtype=np.int64)),):
        return None
    strict = np.zeros(K, dtype=bool) if strict is None else np.asarray(strict, dtype=bool).reshape(-1)
    lo_open = np.zeros(lo64.size, dtype=bool) if lo_open is None else np.asarray(lo_open, dtype=bool).reshape(-1)
    hi_open = np.zeros(lo64.size, dtype=bool) if hi_open is None else np.asarray(hi_open, dtype=bool).reshape(-1)
    try:
        lo_q, hi_q = _frac(lo64), _frac(hi64)
        Cq, dq = _frac(C), _frac(d)
        if np.any(lo64 > hi64) or np.any((lo64 == hi64) & (lo_open | hi_open)):  # no input: nothing to reach
            return ExactRows(tuple([Fraction(0)] * K), np.ones(K, dtype=bool))
        if net.output_name == net.input_name:
            Ax, c = Cq, np.array([_ZERO] * K, dtype=object)
        else:
            bounds = _node_bounds(net, lo_q, hi_q, max_work - need)
            Ax, c = _backward(net, net.output_name, Cq.reshape(K, *net.output_shape), bounds)
        lb = _concretize(Ax, c, lo_q, hi_q) - dq
    except _DECLINED:
        return None
    pos, neg = _mask(Ax > 0), _mask(Ax < 0)
    unattained = (pos & lo_open).any(1) | (neg & hi_open).any(1)  # the minimum sits on an open side only
    ge0 = _mask(lb >= 0)
    refuted = _mask(lb > 0) | (ge0 & (strict | unattained))
    return ExactRows(tuple(lb.tolist()), refuted)


def exact_refuted_rows(graph: Graph, C, d, lo, hi, strict=None, lo_open=None, hi_open=None,
                       max_work: int = MAX_WORK) -> np.ndarray | None:
    """(K,) bool: the rows of ``C y - d`` (strict per ``strict``) that no input of the box reaches, proven in exact
    arithmetic; None where the check does not apply."""
    out = exact_row_bounds(graph, C, d, lo, hi, strict, lo_open, hi_open, max_work)
    return None if out is None else out.refuted


def exact_refutes_disjunct(graph: Graph, dj, lo=None, hi=None, max_work: int = MAX_WORK) -> bool | None:
    """Whether the exact check refutes disjunct ``dj`` (one refuted row suffices) on its box, or on the sub-box
    ``lo``..``hi`` of it (then the disjunct's open input sides count where the sub-box keeps them); None where the
    check does not apply."""
    if dj.C.shape[0] == 0:
        return False
    if lo is None:
        lo, hi, lo_open, hi_open = dj.lo, dj.hi, dj.lo_open, dj.hi_open
    else:
        lo, hi = np.asarray(lo, dtype=np.float64).reshape(-1), np.asarray(hi, dtype=np.float64).reshape(-1)
        lo_open = None if dj.lo_open is None else dj.lo_open & (lo == dj.lo)
        hi_open = None if dj.hi_open is None else dj.hi_open & (hi == dj.hi)
    out = exact_refuted_rows(graph, dj.C, dj.d, lo, hi, dj.strict, lo_open, hi_open, max_work)
    return None if out is None else bool(out.any())


def settle_near_zero(graph: Graph, dj, lower, tol, lo=None, hi=None, max_work: int = MAX_WORK) -> bool:
    """The exact check where float bounds cannot decide: True when disjunct ``dj`` has a strict row or an open
    input side, some row's float lower bound (``lower``, allowance ``tol``, one per row of ``dj``) is within
    rounding of zero or above it, and the exact check refutes the disjunct on its box (or on the sub-box
    ``lo``..``hi``). False otherwise: the float answer stands."""
    if not dj.has_strict or dj.C.shape[0] == 0:
        return False
    lower = lower.detach().cpu().double().numpy() if hasattr(lower, "detach") else np.asarray(lower, dtype=float)
    tol = tol.detach().cpu().double().numpy() if hasattr(tol, "detach") else np.asarray(tol, dtype=float)
    if not bool(np.any(within_rounding(lower, tol))):
        return False
    return bool(exact_refutes_disjunct(graph, dj, lo, hi, max_work))
