"""Solver backends: big-M MILP (complete), triangle LP relaxation, Wong-Kolter dual bound.

Importing this package registers the solver adapters (``highs``, ``gurobi``,
``cbc``), the backends (``milp``, ``lp``, ``dual``) and the verification methods
of the same names (``verify --method milp|lp|dual``).

Layout: ``base`` (interfaces, registries, core bounds), ``encoder`` (graph + spec
+ bounds -> solver-neutral ``LinearModel``), ``highs`` / ``gurobi`` / ``cbc``
(adapters), ``tighten`` (per-neuron LP/MILP bound tightening), ``milp``, ``lp``,
``dual`` (backends), ``runner`` (run a backend on a ``Problem``).
"""
from __future__ import annotations

from . import cbc, gurobi, highs  # noqa: F401  (register the solver adapters)
from . import dual, lp, milp  # noqa: F401  (register the backends)
from .base import (Backend, CoreBounds, SolveOutcome, SolverAdapter, SolveStatus, StopRule, available_backends,
                   available_solvers, compute_core_bounds, get_backend, get_solver, make_solver)
from .encoder import LinearModel, NetworkEncoding, encode_network, safe_lp_bound
from .runner import run_backend

__all__ = ["Backend", "CoreBounds", "SolveOutcome", "SolverAdapter", "SolveStatus", "StopRule", "LinearModel",
           "NetworkEncoding", "available_backends", "available_solvers", "compute_core_bounds", "encode_network",
           "get_backend", "get_solver", "make_solver", "run_backend", "safe_lp_bound"]


def _register_methods() -> None:
    from verifier.methods import register_method

    def make(name):
        def method(problem, options, deadline):
            return run_backend(name, problem, options, deadline)

        method.__name__ = f"{name}_method"
        return method

    register_method("milp", make("milp"), "complete MILP (big-M; --solver highs|gurobi|cbc)")
    register_method("lp", make("lp"), "triangle LP relaxation (incomplete)")
    register_method("dual", make("dual"), "Wong-Kolter dual network bound (incomplete, one backward pass)")


_register_methods()
