"""The solver adapters by name, and ``make_solver``: an adapter that falls back to HiGHS where it cannot run a model."""
from __future__ import annotations

import math
import sys

from backends.registry import Registry
from backends.solvers.base import SolverAdapter, SolverUnavailable

SOLVERS: Registry[SolverAdapter] = Registry("solver")
register_solver = SOLVERS.register  # (name, factory)
get_solver = SOLVERS.get  # (name, threads=, verbose=) -> SolverAdapter
available_solvers = SOLVERS.names  # () -> sorted names


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

    def open(self, model, gap=None, abs_gap=None):
        try:
            return self.primary.open(model, gap, abs_gap)
        except SolverUnavailable as e:
            self._note(e)
            return self.fallback.open(model, gap, abs_gap)

    def tolerance(self):
        return max(self.primary.tolerance(), self.fallback.tolerance())


def make_solver(name: str, threads: int | None = None, verbose: bool = False) -> SolverAdapter:
    """The adapter for ``name``; non-HiGHS solvers fall back to HiGHS when they cannot run a model."""
    s = get_solver(name, threads=threads, verbose=verbose)
    if name == "highs":
        return s
    return FallbackSolver(s, get_solver("highs", threads=threads, verbose=verbose))
