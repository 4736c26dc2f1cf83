"""The solver-neutral layer of the backends: a ReLU network, its input box and an objective as a linear model.

- ``model``: ``LinearModel`` (what every solver adapter accepts) and ``safe_lp_bound``
  (a rigorous bound of its LP relaxation from any row multipliers);
- ``affine``: the exact sparse matrices of an affine operator;
- ``network``: ``encode_network`` (graph + pre-activation bounds + box -> ``NetworkEncoding``,
  big-M MILP or triangle LP) and the models built from an encoding.

Nothing here talks to a solver.
"""
from __future__ import annotations

from backends.encoding.model import LinearModel, safe_lp_bound
from backends.encoding.network import NetworkEncoding, encode_network

__all__ = ["LinearModel", "NetworkEncoding", "encode_network", "safe_lp_bound"]
