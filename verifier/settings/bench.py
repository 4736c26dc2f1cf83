"""Settings of a benchmark run's workers (``verify bench --worker``).

``warm`` (the default): one long-lived worker process per worker slot imports the verifier (torch, onnx,
onnxruntime, the methods) once and forks a child for each instance; ``fresh``: each instance is a new
``python -m verifier.cli`` process (it pays the imports, about 1.3-2 s, every time). Either way an instance
runs in a process of its own, so a crash or an out-of-memory kill is that one instance's ``error``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

BenchWorker = Literal["warm", "fresh"]
BENCH_WORKERS: tuple[str, ...] = get_args(BenchWorker)


@dataclass(frozen=True)
class WarmWorkerSettings:
    start_timeout_s: float = 120.0  # a worker that is not ready (its imports done) within this is given up
    slack_s: float = 10.0  # the runner gives up on a worker silent this long after its instance's kill time

    def __post_init__(self):
        if self.start_timeout_s <= 0 or self.slack_s <= 0:
            raise ValueError("start_timeout_s and slack_s must be > 0")
