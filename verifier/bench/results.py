"""The results CSV of a benchmark run: its columns, reading it back (:func:`read_results`, for resuming and
scoring), the append-only writer (:class:`ResultsCSV`) and the names of the kept result files."""
from __future__ import annotations

import csv
import hashlib
import os
import re
from pathlib import Path

from verifier.bench.instances import norm_path

CSV_FIELDS = ["onnx", "vnnlib", "verdict", "time_s", "method", "timeout_s", "reason", "solve_s",
              "method_used", "exit_code", "result_file"]
VERDICTS = ("sat", "unsat", "unknown", "timeout", "error")


def read_results(path: str | os.PathLike) -> list[dict]:
    """Rows of a results CSV (ours); a missing file gives []. A truncated last line is dropped."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if r.get("onnx") and r.get("vnnlib") and r.get("verdict") in VERDICTS
            and _is_number(r.get("time_s"))]


def _is_number(s) -> bool:
    try:
        float(s)
        return True
    except (TypeError, ValueError):
        return False


class ResultsCSV:
    """Append-only results file: a row is written and flushed (and fsynced) as soon as it is known."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fields = CSV_FIELDS
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), None)
            if header:
                fields = header
            self._repair_last_line()
        self.fields = fields
        self.f = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.f, fieldnames=fields, extrasaction="ignore")
        if new:
            self.writer.writeheader()
            self._sync()

    def _repair_last_line(self) -> None:
        """A run killed mid-write can leave a partial last line: end it so the next row starts clean."""
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
        if last not in (b"\n", b"\r"):
            with open(self.path, "a") as f:
                f.write("\n")

    def _sync(self) -> None:
        self.f.flush()
        try:
            os.fsync(self.f.fileno())
        except OSError:
            pass

    def append(self, row: dict) -> None:
        self.writer.writerow({k: row.get(k, "") for k in self.fields})
        self._sync()

    def close(self) -> None:
        self.f.close()


def result_file_name(onnx: str, vnnlib: str) -> str:
    """The name under ``OUT/results/`` of an instance's kept result file (readable stems and a short hash)."""
    stem = lambda p: re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(norm_path(p)).stem)[:60]  # noqa: E731
    h = hashlib.sha1(f"{norm_path(onnx)},{norm_path(vnnlib)}".encode()).hexdigest()[:8]
    return f"{stem(onnx)}__{stem(vnnlib)}_{h}.txt"
