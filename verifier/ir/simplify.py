"""Graph simplification: fold chains of affine operators into fewer nodes.

Each bound pass visits every node, so ``MatMul`` followed by ``Add`` (two nodes)
becomes one ``Linear`` with a bias, and consecutive element-wise ``Scale`` nodes
become one. Only nodes whose output has a single consumer (and is not the
graph output) are folded; the folded node keeps the later node's name.
"""
from __future__ import annotations

import numpy as np

from verifier.ir.graph import Graph, Node
from verifier.ir.ops import Linear, Scale


def _fold_pair(first: Node, second: Node) -> Node | None:
    a, b = first.op, second.op
    if isinstance(a, Linear) and isinstance(b, Scale) and b.scale is None and b.shift is not None:
        shift = b.shift
        if shift.dim() > 1 and any(s != 1 for s in shift.shape[:-1]):
            return None  # bias varies along other axes than the last: keep it separate
        bias = shift.reshape(-1) if a.bias is None else a.bias + shift
        try:  # numpy's, not torch's: torch.broadcast_shapes imports sympy and torch.fx (~0.9 s of start-up)
            if np.broadcast_shapes(tuple(bias.shape), tuple(second.shape)) != tuple(second.shape):
                return None
        except ValueError:
            return None
        return Node(second.name, Linear(a.weight, bias), first.inputs, second.shape, second.onnx_node)
    if isinstance(a, Scale) and isinstance(b, Scale):
        s1 = a.scale if a.scale is not None else None
        t1 = a.shift
        s2, t2 = b.scale, b.shift
        scale = s1 if s2 is None else (s2 if s1 is None else s1 * s2)
        shift = t1 * s2 if (t1 is not None and s2 is not None) else t1
        if t2 is not None:
            shift = t2 if shift is None else shift + t2
        return Node(second.name, Scale(scale, shift), first.inputs, second.shape, second.onnx_node)
    return None


def simplify(graph: Graph) -> Graph:
    nodes = list(graph.nodes)
    changed = True
    while changed:
        changed = False
        consumers: dict[str, list[int]] = {}
        for k, n in enumerate(nodes):
            for i in n.inputs:
                consumers.setdefault(i, []).append(k)
        for k, n in enumerate(nodes):
            users = consumers.get(n.name, [])
            if len(users) != 1 or n.name == graph.output_name:
                continue
            j = users[0]
            if len(nodes[j].inputs) != 1:
                continue
            fused = _fold_pair(n, nodes[j])
            if fused is not None:
                nodes[j] = fused
                del nodes[k]
                changed = True
                break
    return Graph(graph.input_name, graph.input_shape, nodes, graph.output_name, graph.source, graph.dtype,
                 graph.device)
