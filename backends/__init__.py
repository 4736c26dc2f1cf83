"""Solver backends: big-M MILP (complete), triangle LP relaxation, Wong-Kolter dual bound.

Importing this package registers the solver adapters (``highs``, ``gurobi``, ``cbc``) and the
backends (``milp``, ``lp``, ``dual``); ``verifier.methods.solvers`` makes them the verification
methods of the same names (``verify --method milp|lp|dual``).

Layout, bottom to top (a module imports only those above it in this list):

- ``registry``: named factories (the solver and backend registries); ``box``: an input box
  and a bounds dict in the forms the bound passes and the solvers take;
- ``encoding/``: the solver-neutral model (``LinearModel``, ``safe_lp_bound``) and the
  network's linear encoding (``encode_network`` -> ``NetworkEncoding``);
- ``solvers/``: the adapter interface (``SolverAdapter``, ``SolveOutcome``, ``StopRule``,
  ``ModelSession``), the HiGHS, Gurobi and CBC adapters, ``make_solver``;
- ``tighten``: per-neuron LP/MILP bound tightening;
- ``core_bounds`` (the CROWN bounds every backend starts from), ``backend`` (the ``Backend``
  interface and registry);
- ``milp`` (with ``milp_result``), ``lp``, ``dual``: the backends;
- ``runner``: ``run_backend``, a backend run on a ``Problem``.

``base`` and ``encoder`` are the old module paths of a few names, kept for their importers.
"""
from __future__ import annotations

from backends import dual, lp, milp, solvers  # noqa: F401  (register the adapters and the backends)
from backends.backend import Backend, available_backends, get_backend
from backends.core_bounds import CoreBounds, compute_core_bounds
from backends.encoding import LinearModel, NetworkEncoding, encode_network, safe_lp_bound
from backends.runner import run_backend
from backends.solvers.base import ModelSession, SolveOutcome, SolverAdapter, SolverUnavailable, SolveStatus, StopRule
from backends.solvers.registry import available_solvers, get_solver, make_solver

__all__ = ["Backend", "CoreBounds", "ModelSession", "SolveOutcome", "SolverAdapter", "SolverUnavailable",
           "SolveStatus", "StopRule", "LinearModel", "NetworkEncoding", "available_backends", "available_solvers",
           "compute_core_bounds", "encode_network", "get_backend", "get_solver", "make_solver", "run_backend",
           "safe_lp_bound"]
