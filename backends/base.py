"""The backend interface, the backend and solver registries, and the core bounds every backend starts from.

A *backend* (``lp``, ``milp``, ``dual``) takes a graph, a spec and the core's
bounds (``CoreBounds``: per input region the CROWN pre-activation bounds and the
CROWN lower bounds of each disjunct's rows) and returns a ``Result`` with a
bound, a verdict and, for ``sat``, a validated counterexample.

A *solver adapter* (``highs``, ``gurobi``, ``cbc``) solves one ``LinearModel``
(see ``backends.encoder``) and reports a ``SolveOutcome``; backends never talk to
a solver library directly.

Bound convention (``Result.bound`` and every per-disjunct value here): a lower
bound on ``v* = min over disjuncts j, min over x in box_j of max_i (C_j y - d_j)_i``.
The property holds (``unsat``) iff ``v* > 0``.
"""
from __future__ import annotations

import enum
import math
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from verifier.bounds import intermediate_bounds, objective_bounds
from verifier.ir.graph import Graph
from verifier.ir.result import Result
from verifier.ir.spec import Spec
from verifier.settings import BoundSettings

# ---------------------------------------------------------------------------------------------- core bounds


@dataclass
class RegionBounds:
    """One input box of the spec with the disjuncts on it and the core's bounds there."""

    lo: np.ndarray  # (n_inputs,)
    hi: np.ndarray
    disjuncts: list[int]
    pre: dict  # node name -> (lo, hi) tensors (1, *shape), float64
    row_lower: dict[int, np.ndarray]  # disjunct -> CROWN lower bounds of its rows of C y - d
    row_tol: dict[int, np.ndarray]  # disjunct -> rounding allowance of those bounds

    def crown_value(self, j: int) -> float:
        """CROWN lower bound of ``min_x max_i (C y - d)_i`` for disjunct ``j``."""
        r = self.row_lower[j]
        return float(np.max(r)) if r.size else -math.inf

    def crown_proven(self, j: int) -> bool:
        return bool(np.any(self.row_lower[j] > self.row_tol[j]))


@dataclass
class CoreBounds:
    regions: list[RegionBounds]
    method: str = "crown"
    time_s: float = 0.0

    def region_of(self, j: int) -> RegionBounds:
        for r in self.regions:
            if j in r.disjuncts:
                return r
        raise KeyError(j)


def compute_core_bounds(graph: Graph, spec: Spec, method: str = "crown") -> CoreBounds:
    """CROWN (or IBP) intermediate bounds and objective row bounds per input region, in the graph's dtype."""

    t0 = time.perf_counter()
    regions = []
    dt, dev = graph.dtype, graph.device
    for lo, hi, idx in spec.regions():
        xl = torch.as_tensor(np.array(lo, dtype=np.float64), dtype=dt, device=dev).reshape(1, -1)
        xh = torch.as_tensor(np.array(hi, dtype=np.float64), dtype=dt, device=dev).reshape(1, -1)
        with torch.no_grad():
            pre = intermediate_bounds(graph, xl, xh, method)
        rows = [spec.disjuncts[j] for j in idx]
        C = np.concatenate([dj.C for dj in rows], 0)
        d = np.concatenate([dj.d for dj in rows], 0)
        row_lower, row_tol = {}, {}
        if C.shape[0]:
            ob = objective_bounds(graph, torch.tensor(C), torch.tensor(d), xl, xh,
                                  BoundSettings(method if method in ("ibp", "crown") else "crown"), pre=pre)
            lower = ob.lower[0].detach().cpu().numpy()
            tol = ob.tol[0].detach().cpu().numpy()
        else:
            lower = tol = np.zeros(0)
        k = 0
        for j, dj in zip(idx, rows):
            m = dj.C.shape[0]
            row_lower[j], row_tol[j] = lower[k:k + m], tol[k:k + m]
            k += m
        regions.append(RegionBounds(np.asarray(lo, np.float64), np.asarray(hi, np.float64), list(idx), pre,
                                    row_lower, row_tol))
    return CoreBounds(regions, method, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------- backends


class Backend(ABC):
    """A verification backend selected by name."""

    name: str = ""
    complete: bool = False
    description: str = ""

    @abstractmethod
    def run(self, graph: Graph, spec: Spec, core: CoreBounds, deadline=None, reference=None) -> Result:
        """Decide (or bound) the spec on the graph; ``reference`` (an ``OnnxReference``) validates counterexamples."""


_BACKENDS: dict[str, Callable[..., Backend]] = {}


def register_backend(name: str, factory: Callable[..., Backend]) -> None:
    _BACKENDS[name] = factory


def get_backend(name: str, **settings) -> Backend:
    if name not in _BACKENDS:
        raise KeyError(f"unknown backend {name!r}; available: {', '.join(sorted(_BACKENDS))}")
    return _BACKENDS[name](**settings)


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


# ---------------------------------------------------------------------------------------------- solvers


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

    def tolerance(self) -> float:
        """The primal/integer feasibility tolerance the solver works with (decides the MILP unsat margin)."""
        return 1e-6


class SolverUnavailable(Exception):
    """The solver cannot run this model (not installed, no licence, size-limited licence)."""


_SOLVERS: dict[str, Callable[..., SolverAdapter]] = {}


def register_solver(name: str, factory: Callable[..., SolverAdapter]) -> None:
    _SOLVERS[name] = factory


def get_solver(name: str, **kw) -> SolverAdapter:
    if name not in _SOLVERS:
        raise KeyError(f"unknown solver {name!r}; available: {', '.join(sorted(_SOLVERS))}")
    return _SOLVERS[name](**kw)


def available_solvers() -> list[str]:
    return sorted(_SOLVERS)


class FallbackSolver(SolverAdapter):
    """Runs ``primary``; when it raises ``SolverUnavailable`` (e.g. Gurobi's size-limited licence) runs HiGHS instead.

    The fallback message is logged to stderr once and kept in ``messages``.
    """

    def __init__(self, primary: SolverAdapter, fallback: SolverAdapter):
        super().__init__(primary.threads, primary.verbose)
        self.primary, self.fallback = primary, fallback
        self.name = primary.name
        self.messages: list[str] = []

    def _note(self, e: Exception) -> None:
        msg = f"{self.primary.name} unavailable for this model ({e}); fell back to {self.fallback.name}"
        if msg not in self.messages:
            self.messages.append(msg)
            print(f"[backends] {msg}", file=sys.stderr)

    def solve(self, model, time_limit=math.inf, stop=None):
        try:
            return self.primary.solve(model, time_limit, stop)
        except SolverUnavailable as e:
            self._note(e)
            return self.fallback.solve(model, time_limit, stop)

    def solve_objectives(self, model, costs, time_limit=math.inf):
        try:
            return self.primary.solve_objectives(model, costs, time_limit)
        except SolverUnavailable as e:
            self._note(e)
            return self.fallback.solve_objectives(model, costs, time_limit)

    def tolerance(self):
        return max(self.primary.tolerance(), self.fallback.tolerance())


def make_solver(name: str, threads: int | None = None, verbose: bool = False) -> SolverAdapter:
    """The adapter for ``name``; non-HiGHS solvers fall back to HiGHS when they cannot run a model."""
    s = get_solver(name, threads=threads, verbose=verbose)
    if name == "highs":
        return s
    return FallbackSolver(s, get_solver("highs", threads=threads, verbose=verbose))


@dataclass
class Timer:
    timings: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, dt: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + dt


def time_left(deadline) -> float:
    return math.inf if deadline is None else max(0.0, deadline.left())
