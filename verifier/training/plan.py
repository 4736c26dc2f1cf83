"""A trained model as a list of ONNX-like steps, and the verifier's layer graph built from them.

The same steps give the ONNX export (``verifier.training.export``) and the bound graph of certified training
(:func:`bound_graph`): a ``verifier.ir.Graph`` made of this project's operators, holding the model's live
weights, so that ``graph.ibp`` and ``verifier.bounds.crown.backward_lower`` are differentiable in them and
compute exactly the graph the verifier loads from the exported file.

GroupSort / MaxMin become compare-and-swap layers (odd-even transposition sort: ``g`` rounds for groups of
``g``, each round swapping alternate neighbour pairs). A round is piecewise linear through the identities
``max(a, b) = b + relu(a - b)`` and ``min(a, b) = a - relu(a - b)``: ``y = P x + Q relu(D x)`` with 0/±1
matrices, written as Gemm(P), Gemm(D), Relu, Gemm(Q) and Add.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from verifier.certificates.onnx_writer import Step, module_steps
from verifier.ir.graph import Graph, Node
from verifier.ir.ops import AddNodes, Conv, Linear, ReLU, Reshape
from verifier.training.models import BoundedConv2d, BoundedLinear, GroupSort


def compare_swap_matrices(n: int, group: int, parity: int):
    """(P, D, Q) of one odd-even round on ``n`` features in groups of ``group`` (pairs (i, i+1) with
    ``i % 2 == parity`` inside each group): ``y = P x + Q relu(D x)`` puts the max of each pair first; None when
    the round has no pair."""
    pairs = [(g0 + i, g0 + i + 1) for g0 in range(0, n, group) for i in range(parity, group - 1, 2)]
    if not pairs:
        return None
    P = np.eye(n, dtype=np.float32)
    D = np.zeros((len(pairs), n), dtype=np.float32)
    Q = np.zeros((n, len(pairs)), dtype=np.float32)
    for k, (a, b) in enumerate(pairs):
        P[a, a] = P[b, b] = 0.0
        P[a, b] = P[b, a] = 1.0  # out_a = x_b + relu(x_a - x_b) = max; out_b = x_a - relu(x_a - x_b) = min
        D[k, a], D[k, b] = 1.0, -1.0
        Q[a, k], Q[b, k] = 1.0, -1.0
    return P, D, Q


def groupsort_steps(n: int, group: int, cur: str, prefix: str) -> tuple[list[Step], str]:
    """The compare-and-swap steps of GroupSort(``group``) on ``n`` features read from ``cur``; returns the steps
    and the name of the sorted tensor."""
    steps: list[Step] = []
    rounds = group if group > 2 else 1
    for r in range(rounds):
        mats = compare_swap_matrices(n, group, r % 2)
        if mats is None:
            continue
        P, D, Q = (torch.from_numpy(m) for m in mats)
        p, d, a, q, out = (f"{prefix}_r{r}_{s}" for s in ("pass", "diff", "relu", "back", "sum"))
        steps += [Step("linear", (cur,), p, P), Step("linear", (cur,), d, D), Step("relu", (d,), a),
                  Step("linear", (a,), q, Q), Step("add", (p, q), out)]
        cur = out
    return steps, cur


def model_steps(model: nn.Module, input_shape) -> list[Step]:
    """Steps of an ``nn.Sequential`` of this package's layers (and plain Linear / Conv2d / ReLU / Flatten), with
    the effective (normalised / orthogonalised) weights as live tensors. The last step writes the output."""
    mods = list(model) if isinstance(model, nn.Sequential) else [model]
    steps: list[Step] = []
    cur = "input"
    feat = int(np.prod(input_shape)) if len(input_shape) == 1 else None  # features of a vector value
    for k, m in enumerate(mods):
        out = f"t{k}"
        if isinstance(m, BoundedLinear):
            w = m.effective_weight()
            steps.append(Step("linear", (cur,), out, w, m.bias))
            feat = int(w.shape[0])
        elif isinstance(m, BoundedConv2d):
            ph, pw = m.padding
            steps.append(Step("conv", (cur,), out, m.effective_weight(), m.bias,
                              dict(strides=list(m.stride), pads=[ph, pw, ph, pw], dilations=[1, 1], group=1)))
            feat = None
        elif isinstance(m, GroupSort):
            if feat is None:
                raise ValueError("GroupSort / MaxMin act on vectors only")
            gs, _ = groupsort_steps(feat, m.group, cur, out)
            steps += gs
        else:
            steps += module_steps(m, cur, out)
            if isinstance(m, (nn.Linear, nn.Flatten, nn.Conv2d)):
                feat = int(m.out_features) if isinstance(m, nn.Linear) else None
        cur = steps[-1].out
    return steps


def _op(step: Step, shapes: dict):
    if step.kind == "linear":
        return Linear(step.weight.T, step.bias)
    if step.kind == "conv":
        a = step.attrs
        return Conv(step.weight, step.bias, a["strides"], a["pads"], a["dilations"], a["group"])
    if step.kind == "relu":
        return ReLU()
    if step.kind == "flatten":
        s = shapes[step.inputs[0]]
        return Reshape((s[0], int(np.prod(s[1:]))))
    if step.kind == "add":
        return AddNodes(1.0, 1.0)
    raise ValueError(f"unknown step kind {step.kind!r}")


def steps_graph(steps: list[Step], input_shape, source: str = "<training>") -> Graph:
    """The verifier's layer graph of ``steps``: ONNX shapes with the batch axis as 1, as the ONNX loader has them."""
    in_shape = (1, *input_shape)
    shapes = {"input": in_shape}
    nodes = []
    for s in steps:
        op = _op(s, shapes)
        with torch.no_grad():
            zeros = [torch.zeros((1, *shapes[i])) for i in s.inputs]
            shape = tuple(op.forward(*zeros).shape[1:])
        shapes[s.out] = shape
        nodes.append(Node(s.out, op, tuple(s.inputs), shape, s.out))
    return Graph("input", in_shape, nodes, steps[-1].out, source)


def bound_graph(model: nn.Module, input_shape, differentiable: bool = True) -> Graph:
    """The layer graph of ``model``: with its live weights (``differentiable``: bounds have gradients; build it
    inside the training step, after the weights changed) or with detached copies (for evaluation and the
    certificates)."""
    if differentiable:
        return steps_graph(model_steps(model, input_shape), input_shape)
    with torch.no_grad():
        return steps_graph(model_steps(model, input_shape), input_shape)
