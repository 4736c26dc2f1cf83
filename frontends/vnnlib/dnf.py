"""From the asserts of a VNN-LIB property, read as DNFs of atoms, to a :class:`~verifier.ir.spec.Spec`.

An atom is ``(kind, payload, value)``: ``(UPPER, i, v)`` is ``x[i] <= v``, ``(LOWER, i, v)`` is
``x[i] >= v`` and ``(ROW, [(j, c), ...], v)`` is ``sum(c * y[j]) <= v``. A DNF is a list of
conjunctions (lists of atoms): ``[]`` is false, ``[[]]`` is true.

Top-level asserts are ANDed, so the spec is the cross product of every assert's disjunction (capped
at :data:`MAX_DISJUNCTS`). Input bounds inside a disjunct give that disjunct its own box (intersected
with the top-level box); disjuncts with an empty box are dropped. An empty input set, a top-level box
that is empty or every disjunct's box empty, is a ``SpecError`` naming the input and the line (a user
mistake far more often than an intent; it would otherwise read as ``unsat``). Disjuncts without local
input bounds share one read-only ``lo`` / ``hi`` pair: copy before writing.
"""
from __future__ import annotations

import itertools
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np

from frontends.vnnlib.sexpr import Source
from verifier.ir.spec import Disjunct, Spec

MAX_DISJUNCTS = 100_000
UPPER, LOWER, ROW = 0, 1, 2  # x[i] <= v ; x[i] >= v ; sum(c * y[j]) <= v


@dataclass
class Assertions:
    """The top-level asserts of a file, read."""

    base: list  # atoms conjoined into every disjunct (from the asserts with one disjunct)
    multi: list  # (dnf, offset) of the asserts with several (or zero) disjuncts
    saw_input_bound: bool  # some atom bounds an input
    base_pos: list = field(default_factory=list)  # (index of its first atom in base, position) per assert in base


def build_spec(src: Source, asserts: Assertions, n_in: int, n_out: int, input_pos: dict[int, int]) -> Spec:
    """The :class:`Spec` of the cross product; ``input_pos`` maps each input to its declaration's offset."""
    multi = asserts.multi
    total = 1
    for dnf, pos in multi:
        total *= len(dnf)
        if total > MAX_DISJUNCTS:
            raise src.error(f"the assertions expand to more than {MAX_DISJUNCTS} disjuncts "
                            f"(cross product of {' x '.join(str(len(d)) for d, _ in multi)})", pos)
    if total == 0 and not asserts.saw_input_bound:
        raise src.error("no input bounds in the file")
    lo0, hi0 = [-np.inf] * n_in, [np.inf] * n_in
    base_rows = _apply(asserts.base, lo0, hi0)
    _check_nonempty(src, asserts, lo0, hi0)
    base_lo, base_hi = _frozen(lo0), _frozen(hi0)
    C0, d0 = _rows(base_rows, n_out)
    disjuncts = []
    boxes: dict[tuple, tuple] = {(): (base_lo, base_hi)}  # local input atoms -> shared box
    for k, combo in enumerate(itertools.product(*[dnf for dnf, _ in multi])):
        local = [a for conj in combo for a in conj]
        key = tuple(a for a in local if a[0] != ROW)
        rows = [(p, v) for kind, p, v in local if kind == ROW]
        box = boxes.get(key)
        if box is None or k == 0:
            if box is None:
                lo, hi = list(lo0), list(hi0)
                _apply(key, lo, hi)
                box = boxes[key] = (_frozen(lo), _frozen(hi))
            _check_bounded(src, box, (k, total), input_pos)
        lo, hi = box
        if np.any(lo > hi):
            continue
        if rows:
            C1, d1 = _rows(rows, n_out)
            C, d = np.vstack([C0, C1]), np.concatenate([d0, d1])
        else:
            C, d = C0, d0
        disjuncts.append(Disjunct(lo=lo, hi=hi, C=C, d=d))
    if total and not disjuncts:
        pos = next(p for dnf, p in multi if any(a[0] != ROW for conj in dnf for a in conj))
        raise src.error(f"the input set is empty: the input box of each of the {total} disjuncts is empty "
                        "(some input's lower bound exceeds its upper bound)", pos)
    return Spec(n_inputs=n_in, n_outputs=n_out, disjuncts=tuple(disjuncts), source=src.path)


def _check_bounded(src: Source, box: tuple[np.ndarray, np.ndarray], k_of: tuple[int, int],
                   input_pos: dict[int, int]) -> None:
    """Every input of disjunct ``k`` (of ``total``, ``k_of``) has both bounds in ``box``."""
    for arr, side in zip(box, ("lower", "upper")):
        bad = np.flatnonzero(np.isinf(arr))
        if bad.size:
            i = int(bad[0])
            k, total = k_of
            where = f" in disjunct {k + 1} of {total}" if total > 1 else ""
            more = f" ({bad.size} inputs lack one)" if bad.size > 1 else ""
            raise src.error(f"input X_{i} has no {side} bound{where}{more}", input_pos[i])


def _check_nonempty(src: Source, asserts: Assertions, lo: list, hi: list) -> None:
    """The top-level box (``lo``, ``hi``: the base atoms applied) is not empty; else a ``SpecError`` that names
    the input and the assert that emptied it (a user mistake far more often than an intent)."""
    empty = [i for i in range(len(lo)) if lo[i] > hi[i]]
    if not empty:
        return
    i = empty[0]
    box_lo, box_hi = -np.inf, np.inf
    for k, (kind, j, v) in enumerate(asserts.base):  # the first atom after which input i's bounds cross
        if j != i or kind == ROW:
            continue
        box_lo, box_hi = (box_lo, min(box_hi, v)) if kind == UPPER else (max(box_lo, v), box_hi)
        if box_lo > box_hi:
            break
    pos = asserts.base_pos[bisect_right([start for start, _ in asserts.base_pos], k) - 1][1]
    raise src.error(f"the input set is empty: X_{i} >= {float(lo[i])!r} and X_{i} <= {float(hi[i])!r} (a lower bound "
                    "above the upper bound)", pos)


def _apply(atoms: list, lo: list, hi: list) -> list:
    """Intersect the box (lists, in place) with the atoms' input bounds; return the rows."""
    rows = []
    for kind, i, v in atoms:
        if kind == UPPER:
            if v < hi[i]:
                hi[i] = v
        elif kind == LOWER:
            if v > lo[i]:
                lo[i] = v
        else:
            rows.append((i, v))
    return rows


def _rows(rows: list, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    C = np.zeros((len(rows), n_out))
    d = np.empty(len(rows))
    for r, (pairs, v) in enumerate(rows):
        for j, c in pairs:
            C[r, j] = c
        d[r] = v
    C.setflags(write=False)
    d.setflags(write=False)
    return C, d


def _frozen(values: list) -> np.ndarray:
    arr = np.array(values, dtype=np.float64)
    arr.setflags(write=False)
    return arr
