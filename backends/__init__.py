"""Solver backends: big-M MILP (complete), triangle LP relaxation, Wong-Kolter dual bound.

Importing this package registers the solver adapters (``highs``, ``gurobi``,
``cbc``) and the backends (``milp``, ``lp``, ``dual``); ``verifier.methods.solvers``
makes them the verification methods of the same names (``verify --method milp|lp|dual``).

Layout: ``base`` (interfaces, registries, core bounds), ``encoder`` (graph + spec
+ bounds -> solver-neutral ``LinearModel``), ``highs`` / ``gurobi`` / ``cbc``
(adapters), ``tighten`` (per-neuron LP/MILP bound tightening), ``milp``, ``lp``,
``dual`` (backends), ``runner`` (run a backend on a ``Problem``).
"""
from __future__ import annotations

from backends import cbc, dual, gurobi, highs, lp, milp  # noqa: F401  (register the adapters and the backends)
from backends.base import (
                   Backend,
                   CoreBounds,
                   SolveOutcome,
                   SolverAdapter,
                   SolveStatus,
                   StopRule,
                   available_backends,
                   available_solvers,
                   compute_core_bounds,
                   get_backend,
                   get_solver,
                   make_solver,
)
from backends.encoder import LinearModel, NetworkEncoding, encode_network, safe_lp_bound
from backends.runner import run_backend

__all__ = ["Backend", "CoreBounds", "SolveOutcome", "SolverAdapter", "SolveStatus", "StopRule", "LinearModel",
           "NetworkEncoding", "available_backends", "available_solvers", "compute_core_bounds", "encode_network",
           "get_backend", "get_solver", "make_solver", "run_backend", "safe_lp_bound"]
