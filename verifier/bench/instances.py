"""The instances of a VNN-COMP benchmark folder: finding and reading its ``instances.csv``, selecting
instances by a regular expression and a count, and the instance key (paths without ``./`` and ``.gz``)."""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path


class BenchError(Exception):
    """A problem with the benchmark folder or the run's options (not with one instance)."""


def norm_path(p: str) -> str:
    """Path as a key: forward slashes, no leading ./, no trailing .gz."""
    p = p.strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p[:-3] if p.endswith(".gz") else p


def instance_key(onnx: str, vnnlib: str) -> tuple[str, str]:
    return norm_path(onnx), norm_path(vnnlib)


@dataclass(frozen=True)
class Instance:
    onnx: str  # as written in instances.csv (relative to the benchmark folder)
    vnnlib: str
    timeout_s: float

    @property
    def key(self) -> tuple[str, str]:
        return instance_key(self.onnx, self.vnnlib)


def find_instances_csv(bench: str | os.PathLike) -> Path:
    """``BENCH/instances.csv``, the one ``*instances.csv`` in BENCH, or BENCH itself if it is a file."""
    p = Path(bench)
    if p.is_file():
        return p
    if not p.is_dir():
        raise BenchError(f"benchmark folder not found: {p}")
    if (p / "instances.csv").is_file():
        return p / "instances.csv"
    found = sorted(p.glob("*instances.csv"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise BenchError(f"no instances.csv in {p}")
    raise BenchError(f"several *instances.csv in {p}: {', '.join(f.name for f in found)}; name one")


def read_instances(path: str | os.PathLike) -> list[Instance]:
    """Rows ``onnx,vnnlib,timeout_s``; blank lines, ``#`` comments and a header row are skipped."""
    path = Path(path)
    out = []
    with open(path, newline="") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row]
            if not row or not any(row) or row[0].startswith("#"):
                continue
            if len(row) < 3:
                raise BenchError(f"{path}:{lineno}: expected onnx,vnnlib,timeout_s; got {','.join(row)!r}")
            try:
                t = float(row[2])
            except ValueError:
                if lineno == 1:  # header
                    continue
                raise BenchError(f"{path}:{lineno}: timeout {row[2]!r} is not a number") from None
            out.append(Instance(row[0], row[1], t))
    if not out:
        raise BenchError(f"{path}: no instances")
    return out


def select(instances: list[Instance], pattern: str | None = None, first: int | None = None) -> list[Instance]:
    """Instances whose ``onnx,vnnlib`` matches the regular expression ``pattern``; then the first ``first``."""
    if pattern:
        rx = re.compile(pattern)
        instances = [i for i in instances if rx.search(f"{i.onnx},{i.vnnlib}")]
    if first is not None:
        instances = instances[:max(0, first)]
    return instances


def existing_file(p: Path) -> Path | None:
    """``p`` or ``p.gz`` if either exists (instances.csv names files without .gz)."""
    if p.exists():
        return p
    gz = Path(str(p) + ".gz")
    return gz if gz.exists() else None
