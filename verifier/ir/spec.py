"""The property: input regions and the unsafe output set as a DNF of ``C y <= d``.

A ``Spec`` describes the UNSAFE set (VNN-LIB convention): the property is
violated (``sat``) when some input ``x`` inside a disjunct's box produces an
output ``y`` with ``C y <= d`` (all rows of that disjunct). It holds
(``unsat``) when no disjunct can be met.
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

    def contains_input(self, x: np.ndarray, tol: float = 0.0) -> bool:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        return bool(np.all(x >= self.lo - tol) and np.all(x <= self.hi + tol))

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
            groups: list[tuple[np.ndarray, np.ndarray, list[int]]] = []
            for i, dj in enumerate(self.disjuncts):
                for lo, hi, idx in groups:
                    if np.array_equal(lo, dj.lo) and np.array_equal(hi, dj.hi):
                        idx.append(i)
                        break
                else:
                    groups.append((dj.lo, dj.hi, [i]))
            object.__setattr__(self, "_regions", groups)
        return self._regions

    def violated_disjunct(self, x: np.ndarray, y: np.ndarray, x_tol: float = 0.0,
                          y_tol: float = 0.0) -> int | None:
        """Index of a disjunct that (x, y) meets, or None."""
        for i, dj in enumerate(self.disjuncts):
            if dj.contains_input(x, x_tol) and dj.output_violation(y) <= y_tol:
                return i
        return None

    @property
    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.min(np.stack([d.lo for d in self.disjuncts]), axis=0)
        hi = np.max(np.stack([d.hi for d in self.disjuncts]), axis=0)
        return lo, hi
