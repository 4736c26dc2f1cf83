"""The continuous piecewise-linear element-wise ops of a graph rewritten as ReLU nodes.

``f(x) = a x + b + sum_k c_k relu(x - t_k)`` (``PiecewiseLinear.relu_form``: LeakyRelu, Abs, Clip, Max / Min with
a constant) becomes ``Scale(a, b)`` of ``x`` plus, per kink, ``c_k`` times ``ReLU(Scale(shift -t_k)(x))``
(``AddNodes``). The function is the same (up to float rounding of the sums), and the graph is one the
ReLU-only parts take: ReLU branch and bound, alpha-CROWN, the exact rational bounds. ``Sign`` (a step) has no
such form and stays.
"""
from __future__ import annotations

import torch

from verifier.ir.graph import Graph, Node
from verifier.ir.ops import AddNodes, ReLU, Scale
from verifier.ir.ops.piecewise import PiecewiseLinear


def _tensor(v, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype) if torch.is_tensor(v) else torch.tensor(float(v), dtype=like.dtype)


def lower_piecewise(graph: Graph) -> Graph:
    """``graph`` with every ``PiecewiseLinear`` node replaced by ReLU / Scale / AddNodes nodes (the same graph
    when there is none); the replacement's last node keeps the original's name."""
    if not any(isinstance(n.op, PiecewiseLinear) for n in graph.nodes):
        return graph
    ref = torch.zeros((), dtype=graph.dtype)
    nodes: list[Node] = []
    for n in graph.nodes:
        if not isinstance(n.op, PiecewiseLinear):
            nodes.append(n)
            continue
        a, b, kinks = n.op.relu_form()
        x, label, shape = n.inputs[0], n.onnx_node, n.shape
        base = f"{n.name}__lin"
        nodes.append(Node(base, Scale(_tensor(a, ref), _tensor(b, ref)), (x,), shape, label))
        acc = base
        for k, (t, c) in enumerate(kinks):
            shifted = f"{n.name}__kink{k}"
            nodes.append(Node(shifted, Scale(None, -_tensor(t, ref)), (x,), shape, label))
            nodes.append(Node(shifted + "_relu", ReLU(), (shifted,), shape, label))
            name = n.name if k == len(kinks) - 1 else f"{n.name}__sum{k}"
            nodes.append(Node(name, AddNodes(1.0, float(c)), (acc, shifted + "_relu"), shape, label))
            acc = name
    g = Graph(graph.input_name, graph.input_shape, nodes, graph.output_name, graph.source, graph.dtype, graph.device)
    return g.to(graph.device, graph.dtype)
