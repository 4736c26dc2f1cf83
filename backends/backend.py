"""The backend interface and the backends by name.

A *backend* (``lp``, ``milp``, ``dual``) takes a graph, a spec and the core's bounds
(``backends.core_bounds.CoreBounds``) and returns a ``Result`` with a bound, a verdict
and, for ``sat``, a validated counterexample.

Bound convention (``Result.bound`` and every per-disjunct value): a lower bound on
``v* = min over disjuncts j, min over x in box_j of max_i (C_j y - d_j)_i``.
The property holds (``unsat``) iff ``v* > 0``.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

from backends.core_bounds import CoreBounds
from backends.registry import Registry
from verifier.attack.validate import validate_candidate
from verifier.ir.graph import Graph
from verifier.ir.result import Counterexample, Result, Verdict
from verifier.ir.spec import Spec


class Backend(ABC):
    """A verification backend selected by name."""

    name: str = ""
    complete: bool = False
    description: str = ""

    @abstractmethod
    def run(self, graph: Graph, spec: Spec, core: CoreBounds, deadline=None, reference=None) -> Result:
        """Decide (or bound) the spec on the graph; ``reference`` (an ``OnnxReference``) validates counterexamples."""


BACKENDS: Registry[Backend] = Registry("backend")
register_backend = BACKENDS.register  # (name, factory)
get_backend = BACKENDS.get  # (name, **settings) -> Backend
available_backends = BACKENDS.names  # () -> sorted names


def time_left(deadline) -> float:
    return math.inf if deadline is None else max(0.0, deadline.left())


def unfinished_verdict(deadline) -> Verdict:
    """The verdict of a run that ran out of solver time: ``timeout`` once the deadline has passed, else ``unknown``."""
    return Verdict.TIMEOUT if (deadline is not None and deadline.left() <= 0) else Verdict.UNKNOWN


def solution_counterexample(reference, spec: Spec, model, out) -> Counterexample | None:
    """The input of a solver's point (``out``, a ``SolveOutcome`` on ``model``) with objective ``<= 0``, validated
    through onnxruntime against the spec; None when there is no such point or it does not validate."""
    if reference is None or out.x is None or out.objective is None or out.objective > 0:
        return None
    return validate_candidate(reference, spec, out.x[model.input_vars])
