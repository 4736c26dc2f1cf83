"""From the asserts of a VNN-LIB property, read as DNFs of atoms, to a :class:`~verifier.ir.spec.Spec`.

An atom is ``(kind, payload, value)``: ``(UPPER, i, v)`` is ``x[i] <= v``, ``(LOWER, i, v)`` is
``x[i] >= v``, ``(UPPER_OPEN, i, v)`` / ``(LOWER_OPEN, i, v)`` are ``x[i] < v`` / ``x[i] > v``;
``(ROW, [(j, c), ...], v)`` is ``sum(c * y[j]) <= v`` and ``ROW_STRICT`` the same with ``<``. The kinds
below :data:`ROW` bound inputs. A DNF is a list of conjunctions (lists of atoms): ``[]`` is false,
``[[]]`` is true.

Top-level asserts are ANDed, so the spec is the cross product of every assert's disjunction, at most
``limits.disjuncts`` of them (checked before expanding), and refused when its arrays would take more than
:data:`MEMORY_CAP` bytes (estimated before expanding). Input bounds inside a disjunct give that disjunct its
own box (intersected with the top-level box). On one input the tighter bound wins, and at equal values
an open bound wins over a closed one (``x > 1`` and ``x >= 1`` is ``x > 1``). Strict rows and open bounds
become ``Disjunct.strict`` / ``lo_open`` / ``hi_open``.

A disjunct whose box is empty is dropped. A box emptied only by an open bound (``x > 1`` and
``x <= 1``) is a legitimately empty set: if every disjunct goes that way the spec has no disjuncts (the
unsafe set is empty: ``unsat``). A lower bound above an upper bound is a ``SpecError`` naming the input and
the line when it empties the input set (at top level, or in every disjunct): a user mistake far more often
than an intent, which would otherwise read as ``unsat``. Disjuncts without local input bounds share one
read-only ``lo`` / ``hi`` pair: copy before writing.
"""
from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from frontends.vnnlib.sexpr import Source
from verifier.ir.spec import Disjunct, Spec

UPPER, LOWER, UPPER_OPEN, LOWER_OPEN, ROW, ROW_STRICT = range(6)  # kinds below ROW bound an input
MEMORY_CAP = 4 << 30  # bytes the spec's arrays may take (estimated before the disjuncts are made)
_TICK = 1 << 8  # disjuncts made between two looks at the deadline


@dataclass
class Assertions:
    """The top-level asserts of a file, read."""

    base: list  # atoms conjoined into every disjunct (from the asserts with one disjunct)
    multi: list  # (dnf, offset) of the asserts with several (or zero) disjuncts
    saw_input_bound: bool  # some atom bounds an input
    base_pos: list = field(default_factory=list)  # (index of its first atom in base, position) per assert in base


class _Box:
    """An input box being built: bounds (lists) and the sets of inputs whose bound is open."""

    __slots__ = ("lo", "hi", "lo_open", "hi_open")

    def __init__(self, lo: list, hi: list, lo_open: set, hi_open: set):
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    def copy(self) -> "_Box":
        return _Box(list(self.lo), list(self.hi), set(self.lo_open), set(self.hi_open))

    def apply(self, atoms) -> list:
        """Intersect the box with the atoms' input bounds; return the other atoms (the rows)."""
        lo, hi, lo_open, hi_open = self.lo, self.hi, self.lo_open, self.hi_open
        rows = []
        for atom in atoms:
            kind, i, v = atom
            if kind == UPPER:
                if v < hi[i]:
                    hi[i] = v
                    if hi_open:
                        hi_open.discard(i)
            elif kind == LOWER:
                if v > lo[i]:
                    lo[i] = v
                    if lo_open:
                        lo_open.discard(i)
            elif kind == UPPER_OPEN:
                if v <= hi[i]:
                    hi[i] = v
                    hi_open.add(i)
            elif kind == LOWER_OPEN:
                if v >= lo[i]:
                    lo[i] = v
                    lo_open.add(i)
            else:
                rows.append(atom)
        return rows

    def frozen(self) -> "_Frozen":
        return _Frozen(self)


class _Frozen:
    """A finished box: read-only arrays, the open flags (None: all closed) and why it is empty, if it is."""

    __slots__ = ("lo", "hi", "lo_open", "hi_open", "crossed", "empty")

    def __init__(self, box: _Box):
        self.lo, self.hi = _frozen(box.lo), _frozen(box.hi)
        self.lo_open, self.hi_open = _flags(box.lo_open, len(box.lo)), _flags(box.hi_open, len(box.hi))
        self.crossed = bool(np.any(self.lo > self.hi))  # a lower bound above an upper bound
        self.empty = self.crossed or any(box.lo[i] >= box.hi[i] for i in box.lo_open | box.hi_open)


def build_spec(src: Source, asserts: Assertions, n_in: int, n_out: int, input_pos: Callable[[int], int]) -> Spec:
    """The :class:`Spec` of the cross product; ``input_pos(i)`` is the offset of input ``i``'s declaration."""
    multi = asserts.multi
    total = _count(src, multi)
    if total == 0 and not asserts.saw_input_bound:
        raise src.error("no input bounds in the file")
    _check_memory(src, asserts, total, n_in, n_out)
    first = list(asserts.base) + [a for dnf, _ in multi for a in dnf[0]] if total else list(asserts.base)
    _check_enough_bounds(src, first, n_in, total, input_pos)
    top = _Box([-np.inf] * n_in, [np.inf] * n_in, set(), set())
    base_rows = top.apply(asserts.base)
    _check_nonempty(src, asserts, top.lo, top.hi)
    C0, d0, s0 = _rows(base_rows, n_out)
    disjuncts = []
    boxes: dict[tuple, _Frozen] = {(): top.frozen()}  # local input atoms -> shared box
    if total == 0:
        _check_bounded(src, boxes[()], (0, 1), input_pos)
    crossed = False
    for k, combo in enumerate(itertools.product(*[dnf for dnf, _ in multi])):
        if not k % _TICK:
            src.check_time()
        local = [a for conj in combo for a in conj]
        key = tuple(a for a in local if a[0] < ROW)
        box = boxes.get(key)
        if box is None or k == 0:
            if box is None:
                b = top.copy()
                b.apply(key)
                box = boxes[key] = b.frozen()
            _check_bounded(src, box, (k, total), input_pos)
        if box.empty:
            crossed |= box.crossed
            continue
        if len(key) != len(local):
            C1, d1, s1 = _rows([a for a in local if a[0] >= ROW], n_out)
            C, d = np.vstack([C0, C1]), np.concatenate([d0, d1])
            strict = None if s0 is None and s1 is None else np.concatenate([_all(s0, d0), _all(s1, d1)])
        else:
            C, d, strict = C0, d0, s0
        disjuncts.append(Disjunct(lo=box.lo, hi=box.hi, C=C, d=d, strict=strict, lo_open=box.lo_open,
                                  hi_open=box.hi_open))
    if total and not disjuncts and crossed:
        pos = next(p for dnf, p in multi if any(a[0] < ROW for conj in dnf for a in conj))
        raise src.error(f"the input set is empty: the input box of each of the {total} disjuncts is empty "
                        "(some input's lower bound exceeds its upper bound)", pos)
    return Spec(n_inputs=n_in, n_outputs=n_out, disjuncts=tuple(disjuncts), source=src.path)


def _count(src: Source, multi: list) -> int:
    """The number of disjuncts of the cross product, checked against ``limits.disjuncts`` as it grows."""
    limit = src.limits.disjuncts
    total = 1
    for dnf, pos in multi:
        total *= len(dnf)
        if limit and total > limit:
            sizes = [len(d) for d, _ in multi]
            raise src.over_limit("disjuncts", f"the assertions expand to more than {limit} disjuncts (cross "
                                 f"product of {' x '.join(map(str, sizes))})", pos, math.prod(sizes))
    return total


def _check_memory(src: Source, asserts: Assertions, total: int, n_in: int, n_out: int) -> None:
    """Refuse a spec whose disjuncts would take more than :data:`MEMORY_CAP` bytes (unless limits.disjuncts is 0).

    Each distinct input box takes 2 n_in floats and each disjunct its rows (n_out + 1 floats a row); every
    disjunct may have its own box where some assert with several disjuncts bounds inputs."""
    if not src.limits.disjuncts or not total:
        return

    def estimate(rows: int, boxes: int) -> int:
        return 8 * (2 * boxes * n_in + total * rows * (n_out + 1)) + 600 * total

    multi = asserts.multi
    if estimate(len(asserts.base) + sum(max(map(len, dnf)) for dnf, _ in multi), total) <= MEMORY_CAP:
        return  # even with every atom a row and every disjunct its own box (counting exactly costs a pass)
    boxes = total if any(a[0] < ROW for dnf, _ in multi for conj in dnf for a in conj) else 1
    rows = sum(a[0] >= ROW for a in asserts.base) + sum(
        max(sum(a[0] >= ROW for a in conj) for conj in dnf) for dnf, _ in multi)
    if estimate(rows, boxes) > MEMORY_CAP:
        raise src.error(f"the spec's {total} disjuncts would take about {estimate(rows, boxes) / 2**30:.1f} GiB of "
                        f"memory ({boxes} input boxes of {n_in} inputs, up to {rows} rows of {n_out} outputs each), "
                        f"more than the {MEMORY_CAP >> 30} GiB a spec may take: a check made while limits.disjuncts "
                        "is not 0 (--set limits.disjuncts=0 turns it off)", multi[0][1] if multi else None)


def _check_enough_bounds(src: Source, atoms: list, n_in: int, total: int, input_pos: Callable[[int], int]) -> None:
    """Without making the box: some input of the first disjunct is unbounded when its atoms (``atoms``) are fewer
    than two per input. The error :func:`_check_bounded` would give, for a network of millions of inputs."""
    bounds = [a for a in atoms if a[0] < ROW]
    if len(bounds) >= 2 * n_in:
        return
    lower = {a[1] for a in bounds if a[0] in (LOWER, LOWER_OPEN)}
    upper = {a[1] for a in bounds if a[0] in (UPPER, UPPER_OPEN)}
    for have, side in ((lower, "lower"), (upper, "upper")):
        if len(have) < n_in:
            i = next(j for j in range(n_in) if j not in have)
            raise _unbounded(src, i, side, n_in - len(have), (0, total), input_pos)


def _check_bounded(src: Source, box: _Frozen, k_of: tuple[int, int], input_pos: Callable[[int], int]) -> None:
    """Every input of disjunct ``k`` (of ``total``, ``k_of``) has both bounds in ``box``."""
    for arr, side in ((box.lo, "lower"), (box.hi, "upper")):
        bad = np.flatnonzero(np.isinf(arr))
        if bad.size:
            raise _unbounded(src, int(bad[0]), side, bad.size, k_of, input_pos)


def _unbounded(src: Source, i: int, side: str, count: int, k_of: tuple[int, int],
               input_pos: Callable[[int], int]):
    k, total = k_of
    where = f" in disjunct {k + 1} of {total}" if total > 1 else ""
    more = f" ({count} inputs lack one)" if count > 1 else ""
    return src.error(f"input X_{i} has no {side} bound{where}{more}", input_pos(i))


def _check_nonempty(src: Source, asserts: Assertions, lo: list, hi: list) -> None:
    """The top-level box (``lo``, ``hi``: the base atoms applied) has no lower bound above its upper bound; else a
    ``SpecError`` that names the input and the assert that crossed them (a user mistake far more often than an
    intent). A box emptied by an open bound alone (``x > 1`` and ``x <= 1``) is no error."""
    empty = [i for i in range(len(lo)) if lo[i] > hi[i]]
    if not empty:
        return
    i = empty[0]
    box_lo, box_hi = -np.inf, np.inf
    for k, (kind, j, v) in enumerate(asserts.base):  # the first atom after which input i's bounds cross
        if j != i or kind >= ROW:
            continue
        box_lo, box_hi = (box_lo, min(box_hi, v)) if kind in (UPPER, UPPER_OPEN) else (max(box_lo, v), box_hi)
        if box_lo > box_hi:
            break
    pos = asserts.base_pos[bisect_right([start for start, _ in asserts.base_pos], k) - 1][1]
    raise src.error(f"the input set is empty: X_{i} >= {float(lo[i])!r} and X_{i} <= {float(hi[i])!r} (a lower bound "
                    "above the upper bound)", pos)


def _rows(rows: list, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """C, d and the strict flags (None: no strict row) of the row atoms."""
    C = np.zeros((len(rows), n_out))
    d = np.empty(len(rows))
    strict = None
    for r, (kind, pairs, v) in enumerate(rows):
        for j, c in pairs:
            C[r, j] = c
        d[r] = v
        if kind == ROW_STRICT:
            if strict is None:
                strict = np.zeros(len(rows), dtype=bool)
            strict[r] = True
    for a in (C, d) if strict is None else (C, d, strict):
        a.setflags(write=False)
    return C, d, strict


def _all(flags: np.ndarray | None, d: np.ndarray) -> np.ndarray:
    return np.zeros(d.shape[0], dtype=bool) if flags is None else flags


def _flags(indices: set, n: int) -> np.ndarray | None:
    if not indices:
        return None
    flags = np.zeros(n, dtype=bool)
    flags[list(indices)] = True
    flags.setflags(write=False)
    return flags


def _frozen(values: list) -> np.ndarray:
    arr = np.array(values, dtype=np.float64)
    arr.setflags(write=False)
    return arr
