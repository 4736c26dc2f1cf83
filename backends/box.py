"""An input box and pre-activation bounds in the forms the bound passes and the solvers take them.

``box_tensors`` (a box as the ``(1, n_inputs)`` tensors of the CROWN passes), ``node_bounds``
and ``count_unstable`` (a bounds dict ``name -> (lo, hi)`` read per node), ``all_finite`` (no NaN or
infinity in a bounds dict: what may be encoded for a solver), ``apply_bound`` (a solver's bound on one
neuron written into a node's bounds).
"""
from __future__ import annotations

import numpy as np
import torch

from verifier.ir.graph import Graph


def box_tensors(graph: Graph, lo, hi) -> tuple[torch.Tensor, torch.Tensor]:
    """The box ``[lo, hi]`` as two ``(1, n_inputs)`` tensors in the graph's dtype, on its device."""
    dt, dev = graph.dtype, graph.device
    xl = torch.as_tensor(np.array(lo, dtype=np.float64), dtype=dt, device=dev).reshape(1, -1)
    xh = torch.as_tensor(np.array(hi, dtype=np.float64), dtype=dt, device=dev).reshape(1, -1)
    return xl, xh


def count_unstable(pre, names) -> int:
    """Neurons of the nodes ``names`` whose bounds in ``pre`` cross zero."""
    n = 0
    for name in names:
        lo, hi = pre[name]
        n += int(((lo < 0) & (hi > 0)).sum())
    return n


def all_finite(pre) -> bool:
    """Every bound of the dict ``name -> (lo, hi)`` is finite (no NaN, no infinity)."""
    return all(bool(torch.isfinite(lo).all()) and bool(torch.isfinite(hi).all()) for lo, hi in pre.values())


def node_bounds(pre, name):
    """(lo, hi, unstable): a node's bounds as flat float64 copies and the indices of its unstable neurons."""
    lo = pre[name][0].detach().cpu().double().numpy().reshape(-1).copy()
    hi = pre[name][1].detach().cpu().double().numpy().reshape(-1).copy()
    return lo, hi, np.nonzero((lo < 0) & (hi > 0))[0]


def apply_bound(lo: np.ndarray, hi: np.ndarray, j: int, sense: int, b: float) -> None:
    """``b``, a lower bound of ``sense * x_j``, tightens ``lo[j]`` (sense +1) or ``hi[j]`` (sense -1) in place."""
    if sense > 0:
        lo[j] = max(lo[j], b)
    else:
        hi[j] = min(hi[j], -b)
