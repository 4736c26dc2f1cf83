"""The solver adapter interface: what a backend asks of an LP/MILP solver, and what it gets back.

A *solver adapter* (``highs``, ``gurobi``, ``cbc``) solves one ``LinearModel``
(``backends.encoding``) and reports a ``SolveOutcome``; backends never talk to a
solver library directly. Two ways to use one:

- ``solve(model, time_limit, stop)``: a model per solve (``StopRule`` ends a decision
  problem early); ``solve_objectives(model, costs)``: one LP, several cost vectors;
- ``open(model, gap=, abs_gap=)``: a ``ModelSession``, the model kept in the solver
  while its objective changes: ``bound(cost, offset, time_limit, stop_at)`` solves
  and returns the solver's proven dual bound. Adapters that keep no model open
  raise ``SolverUnavailable``.
"""
from __future__ import annotations

import enum
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np


class SolveStatus(str, enum.Enum):
    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    TIME_LIMIT = "time_limit"
    STOPPED = "stopped"  # stopped early by the caller's rule (bound above target, or accepted solution)
    ERROR = "error"


@dataclass
class StopRule:
    """Early termination for decision problems.

    bound_above: stop once the solver's proven lower (dual) bound exceeds this value.
    on_solution: called with ``(v, objective)`` for each new incumbent; returning True stops the solve.
    """

    bound_above: float | None = None
    on_solution: Callable[[np.ndarray, float], bool] | None = None


@dataclass
class SolveOutcome:
    status: SolveStatus
    objective: float | None = None  # objective of the returned point (incumbent / LP optimum)
    bound: float | None = None  # proven lower bound (MIP dual bound; LP: safe bound when duals exist)
    x: np.ndarray | None = None  # full variable vector
    row_dual: np.ndarray | None = None
    time_s: float = 0.0
    solver: str = ""
    message: str = ""
    nodes: int = 0


class SolverUnavailable(Exception):
    """The solver cannot run this model (not installed, no licence, size-limited licence)."""


class ModelSession(ABC):
    """One model kept in the solver; each ``bound`` replaces its objective and solves it again.

    ``close`` frees the solver's model (also on leaving a ``with`` block). A session
    is used by one thread at a time; several sessions may solve side by side.
    """

    @abstractmethod
    def bound(self, cost: np.ndarray, offset: float = 0.0, time_limit: float = math.inf,
              stop_at: float | None = None) -> float | None:
        """Minimise ``cost . v + offset`` over the model; the solver's proven lower (dual) bound, or None.

        ``cost`` has one entry per variable. With ``stop_at`` the solve ends once the
        dual bound reaches that value. Raises ``SolverUnavailable`` where the licence
        does not cover the model.
        """

    @abstractmethod
    def close(self) -> None:
        """Free the solver's model; the session is not used after."""

    def __enter__(self) -> "ModelSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SolverAdapter(ABC):
    name: str = ""

    def __init__(self, threads: int | None = None, verbose: bool = False):
        self.threads = threads
        self.verbose = verbose

    @abstractmethod
    def solve(self, model, time_limit: float = math.inf, stop: StopRule | None = None) -> SolveOutcome:
        ...

    def solve_objectives(self, model, costs: list[tuple[np.ndarray, float]], time_limit: float = math.inf) -> list:
        """Solve the LP ``model`` for several cost vectors (warm-started where the solver allows)."""
        out = []
        t_end = time.monotonic() + time_limit
        for c, off in costs:
            left = t_end - time.monotonic()
            if left <= 0:
                out.append(SolveOutcome(SolveStatus.TIME_LIMIT, solver=self.name))
                continue
            out.append(self.solve(model.with_cost(c, off), left))
        return out

    def open(self, model, gap: float | None = None, abs_gap: float | None = None) -> ModelSession:
        """A ``ModelSession`` on ``model`` (MIP relative / absolute optimality gaps: the adapter's unless given)."""
        raise SolverUnavailable(f"the {self.name} adapter keeps no model open between solves")

    def missing(self) -> str:
        """Why the solver cannot run here at all (its library is not installed), or '' when it can."""
        return ""

    def tolerance(self) -> float:
        """The primal/integer feasibility tolerance the solver works with (decides the MILP unsat margin)."""
        return 1e-6
