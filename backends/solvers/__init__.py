"""The solver layer of the backends: the adapter interface, the adapters (HiGHS, Gurobi, CBC) and their registry.

- ``base``: ``SolverAdapter`` (``solve``, ``solve_objectives``, ``open`` -> ``ModelSession``),
  ``SolveOutcome``, ``SolveStatus``, ``StopRule``, ``SolverUnavailable``;
- ``registry``: the adapters by name, ``make_solver`` (falls back to HiGHS where a solver
  cannot run a model);
- ``highs``, ``gurobi``, ``cbc``: the adapters (importing this package registers them).
"""
from __future__ import annotations

from backends.solvers import cbc, gurobi, highs  # noqa: F401  (register the adapters)
from backends.solvers.base import ModelSession, SolveOutcome, SolverAdapter, SolverUnavailable, SolveStatus, StopRule
from backends.solvers.registry import FallbackSolver, available_solvers, get_solver, make_solver, register_solver

__all__ = ["FallbackSolver", "ModelSession", "SolveOutcome", "SolverAdapter", "SolverUnavailable", "SolveStatus",
           "StopRule", "available_solvers", "get_solver", "make_solver", "register_solver"]
