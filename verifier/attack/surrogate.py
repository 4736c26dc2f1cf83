"""The attack's forward pass: the graph's exact values, with surrogate gradients where the true ones vanish.

Projected gradient descent on the exact forward never moves through an op whose gradient is zero almost
everywhere, nor through a saturated Softmax. ``attack_forward`` runs every node's exact ``forward``; for the ops
of ``SURROGATES`` it replaces the gradient (``d value / d x``, element-wise) by a surrogate slope:

- ``Sign``: the straight-through estimator of binarised networks, slope 1 where ``|x| < STE_WINDOW``, else 0;
  hardtanh's window (1) is the one used in training, but the pre-activations of a trained binarised network lie
  far outside it (traffic_signs_recognition_2023: median |x| of the first Sign 432, 0.1% inside), so the window
  is unbounded (the identity's slope): on its first 10 sat instances (30 s each) PGD found all 10 so, 7 with
  hardtanh's window, 5 without surrogates (the screening sample's luck);
- ``Floor``: the identity's slope (straight-through);
- Softmax (``CappedExp`` and ``FlooredReciprocal``, see ``frontends.onnx.handlers_bilinear``): the exponential's
  slope also beyond its cap, and ``-1 / x`` for the reciprocal (the slope of ``-log x``): the gradient of the
  log-probabilities, which does not underflow to 0 where a probability is (nearly) 0 or 1.

The values, hence the losses and the candidates, are those of ``Graph.forward`` bit for bit (the surrogate term
``(x - x) * slope`` is exactly 0); only the search direction differs, and every candidate is still validated with
onnxruntime before it is returned.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from verifier.ir.graph import Graph
from verifier.ir.ops.bilinear import CappedExp, FlooredReciprocal
from verifier.ir.ops.piecewise import Floor, Sign

STE_WINDOW = math.inf  # Sign's surrogate slope is 1 where |x| < STE_WINDOW, 0 elsewhere (1.0: hardtanh's)


def straight_through(value: torch.Tensor, x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """``value`` exactly, with the element-wise gradient ``slope`` with respect to ``x`` (finite ``x`` and
    ``slope``: ``x - x`` is exactly 0)."""
    return value.detach() + (x - x.detach()) * slope.detach()


def _sign_slope(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    return (x.abs() < STE_WINDOW).to(x.dtype)


# op class -> the surrogate slope from the op's input and exact value (element-wise, the input's shape)
SURROGATES: dict[type, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    Sign: _sign_slope,
    Floor: lambda x, value: torch.ones_like(x),
    CappedExp: lambda x, value: value,  # exp(min(x, cap)): the slope exp(x) continued past the cap as exp(cap)
    FlooredReciprocal: lambda x, value: -value,  # 1 / x with the slope of -log x
}


def has_surrogates(graph: Graph) -> bool:
    """Whether some op of ``graph`` has a surrogate gradient (otherwise ``attack_forward`` is ``graph.forward``)."""
    return any(type(n.op) in SURROGATES for n in graph.nodes)


def node_forward(op, x: torch.Tensor) -> torch.Tensor:
    """One element-wise op of ``SURROGATES``: its exact value with the surrogate gradient."""
    value = op.forward(x)
    if not x.requires_grad:
        return value
    return straight_through(value, x, SURROGATES[type(op)](x.detach(), value.detach()))


def attack_forward(graph: Graph, x: torch.Tensor) -> torch.Tensor:
    """``graph.forward(x)`` (input ``(B, n_inputs)``, output ``(B, n_outputs)``) with the surrogate gradients of
    ``SURROGATES``."""
    if not has_surrogates(graph):
        return graph.forward(x)
    x = x.reshape(x.shape[0], *graph.input_shape)
    if graph.output_name == graph.input_name:
        return x.reshape(x.shape[0], -1)
    last_use: dict[str, int] = {}
    for k, n in enumerate(graph.nodes):
        for i in n.inputs:
            last_use[i] = k
    vals = {graph.input_name: x}
    for k, n in enumerate(graph.nodes):
        ins = [vals[i] for i in n.inputs]
        vals[n.name] = node_forward(n.op, ins[0]) if type(n.op) in SURROGATES else n.op.forward(*ins)
        for i in n.inputs:  # free what no later node needs
            if last_use.get(i) == k and i != graph.output_name:
                vals.pop(i, None)
    return vals[graph.output_name].reshape(x.shape[0], -1)
