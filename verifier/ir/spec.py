"""The property: input regions and the unsafe output set as a DNF of ``C y <= d``.

A ``Spec`` describes the UNSAFE set (VNN-LIB convention): the property is
violated (``sat``) when some input ``x`` inside a disjunct's box produces an
output ``y`` with ``C y <= d`` (all rows of that disjunct). It holds
(``unsat``) when no disjunct can be met.

Strict comparisons stay strict: a row flagged in ``Disjunct.strict`` is ``C_i y < d_i``, and an input
bound flagged in ``lo_open`` / ``hi_open`` is ``x_j > lo_j`` / ``x_j < hi_j``. A proof may always use
the closure (bounding the closed box, refuting ``C y <= d``): that covers the open set. A
counterexample must meet the exact set: :meth:`Disjunct.output_holds` and
:meth:`Disjunct.contains_input` test the strict forms.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Disjunct:
    """One conjunction: ``lo <= x <= hi`` and ``C y <= d`` (all rows)."""

    lo: np.ndarray  # (n_inputs,) float64
    hi: np.ndarray  # (n_inputs,) float64
    C: np.ndarray  # (m, n_outputs) float64
    d: np.ndarray  # (m,) float64
    strict: np.ndarray | None = None  # (m,) bool: row i is C_i y < d_i; None: no strict row
    lo_open: np.ndarray | None = None  # (n_inputs,) bool: x_j > lo_j; None: every lower bound closed
    hi_open: np.ndarray | None = None  # (n_inputs,) bool: x_j < hi_j; None: every upper bound closed

    def __post_init__(self):
        for name, size in (("strict", self.d.shape[0]), ("lo_open", self.lo.shape[0]),
                           ("hi_open", self.hi.shape[0])):
            v = getattr(self, name)
            if v is None:
                continue
            v = np.asarray(v, dtype=bool).reshape(-1)
            if v.shape[0] != size:
                raise ValueError(f"Disjunct.{name} has {v.shape[0]} flags for {size} entries")
            object.__setattr__(self, name, v if v.any() else None)

    @property
    def has_strict(self) -> bool:
        """Some output row or input bound is a strict comparison."""
        return self.strict is not None or self.lo_open is not None or self.hi_open is not None

    def strict_rows(self) -> np.ndarray:
        """(m,) bool: which rows of ``C y <= d`` are strict (``<``)."""
        return np.zeros(self.d.shape[0], dtype=bool) if self.strict is None else self.strict

    def is_empty(self) -> bool:
        """The input set holds no real point (lo > hi somewhere, or lo == hi with an open side)."""
        if (self.lo > self.hi).any():
            return True
        if self.lo_open is None and self.hi_open is None:
            return False
        eq = self.lo == self.hi
        opened = np.zeros_like(eq)
        if self.lo_open is not None:
            opened |= self.lo_open
        if self.hi_open is not None:
            opened |= self.hi_open
        return bool(np.any(eq & opened))

    def contains_input(self, x: np.ndarray, tol: float = 0.0) -> bool:
        """``x`` lies in the input set (open bounds strictly), each bound widened by ``tol``."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if not (np.all(x >= self.lo - tol) and np.all(x <= self.hi + tol)):
            return False
        if tol == 0.0:
            if self.lo_open is not None and np.any(x[self.lo_open] <= self.lo[self.lo_open]):
                return False
            if self.hi_open is not None and np.any(x[self.hi_open] >= self.hi[self.hi_open]):
                return False
        return True

    def output_holds(self, y: np.ndarray, tol: float = 0.0) -> bool:
        """The unsafe output condition holds at ``y``: every row met, strict rows strictly.

        With ``tol > 0`` (a checker's allowance) every row is widened by ``tol`` and strictness is moot."""
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if self.C.shape[0] == 0:
            return True
        r = self.C @ y - self.d
        if np.any(np.isnan(r)):
            return False
        if tol > 0.0 or self.strict is None:
            return bool(np.all(r <= tol))
        return bool(np.all(r[~self.strict] <= 0.0) and np.all(r[self.strict] < 0.0))

    def output_violation(self, y: np.ndarray) -> float:
        """max_i (C y - d)_i: <= 0 means the unsafe condition holds at y."""
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if self.C.shape[0] == 0:
            return -np.inf
        return float(np.max(self.C @ y - self.d))


@dataclass(frozen=True)
class Spec:
    n_inputs: int
    n_outputs: int
    disjuncts: tuple[Disjunct, ...]
    source: str = ""
    # Groups of disjuncts that share one input box: (lo, hi, [disjunct indices]).
    _regions: list = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def regions(self) -> list[tuple[np.ndarray, np.ndarray, list[int]]]:
        """Distinct input boxes, each with the indices of the disjuncts on it."""
        if self._regions is None:
            groups: dict[bytes, tuple[np.ndarray, np.ndarray, list[int]]] = {}  # keyed by the box's values
            for i, dj in enumerate(self.disjuncts):
                lo, hi = np.asarray(dj.lo, np.float64) + 0.0, np.asarray(dj.hi, np.float64) + 0.0  # -0.0 -> 0.0
                key = lo.tobytes() + hi.tobytes()
                if key in groups:
                    groups[key][2].append(i)
                else:
                    groups[key] = (dj.lo, dj.hi, [i])
            object.__setattr__(self, "_regions", list(groups.values()))
        return self._regions

    def violated_disjunct(self, x: np.ndarray, y: np.ndarray, x_tol: float = 0.0,
                          y_tol: float = 0.0) -> int | None:
        """Index of a disjunct that (x, y) meets, or None."""
        for i, dj in enumerate(self.disjuncts):
            if dj.contains_input(x, x_tol) and dj.output_holds(y, y_tol):
                return i
        return None

    @property
    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.min(np.stack([d.lo for d in self.disjuncts]), axis=0)
        hi = np.max(np.stack([d.hi for d in self.disjuncts]), axis=0)
        return lo, hi
