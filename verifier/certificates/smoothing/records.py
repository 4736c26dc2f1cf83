"""The certify log of a data set and its summaries: :class:`CertifyRecord` (one row, the columns of Cohen
et al.'s ``certify.py``), the tab-separated log format (:data:`LOG_HEADER`, :func:`format_certify_row`,
:func:`parse_certify_log`) and certified accuracy at given radii (:func:`certified_accuracy`, a text table)."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class CertifyRecord:
    """One row of the certify log (Cohen et al.'s ``certify.py`` columns)."""

    idx: int
    label: int
    predict: int
    radius: float
    correct: int
    time_s: float

    def row(self) -> str:
        return format_certify_row(self)


LOG_HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime"


def format_certify_row(r: CertifyRecord) -> str:
    elapsed = str(datetime.timedelta(seconds=round(r.time_s, 6)))
    return f"{r.idx}\t{r.label}\t{r.predict}\t{r.radius:.3}\t{r.correct}\t{elapsed}"


def parse_certify_log(text: str) -> list[CertifyRecord]:
    """Read a certify log (header line then one row per example)."""
    out = []
    for line in text.splitlines()[1:]:
        if not line.strip():
            continue
        idx, label, pred, radius, correct, elapsed = line.split("\t")
        h, m, s = elapsed.split(":")
        secs = int(h) * 3600 + int(m) * 60 + float(s)
        out.append(CertifyRecord(int(idx), int(label), int(pred), float(radius), int(correct), secs))
    return out


def certified_accuracy(records: Sequence[CertifyRecord], radii) -> np.ndarray:
    """Fraction of examples that are classified correctly with a certified radius >= r, per r."""
    radii = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    if len(records) == 0:
        return np.zeros_like(radii)
    correct = np.array([r.correct for r in records], dtype=bool)
    rad = np.array([r.radius for r in records], dtype=np.float64)
    return np.array([(correct & (rad >= r)).mean() for r in radii])


def format_accuracy_table(curves: dict, radii) -> str:
    """Text table: one row per curve (for example per sigma), one column per radius."""
    radii = list(radii)
    head = "curve".ljust(14) + "".join(f"r={r:<8.3g}" for r in radii)
    lines = [head]
    for name, recs in curves.items():
        acc = certified_accuracy(recs, radii)
        lines.append(str(name).ljust(14) + "".join(f"{a:<10.3f}" for a in acc))
    return "\n".join(lines)
