"""Verdicts, results and counterexamples."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class Verdict(str, enum.Enum):
    SAT = "sat"  # a validated counterexample exists
    UNSAT = "unsat"  # proven: the unsafe set is unreachable
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"
    ERROR = "error"

    def __str__(self) -> str:  # "sat", not "Verdict.SAT"
        return self.value


@dataclass
class Counterexample:
    x: np.ndarray  # flat input, C order of the ONNX input shape
    y: np.ndarray  # flat output as computed by onnxruntime
    disjunct: int  # index of the disjunct it meets
    validated: bool = False  # re-run through onnxruntime and checked against the spec


@dataclass
class Result:
    verdict: Verdict
    method: str = ""
    bound: float | None = None  # best lower bound on the objective (min over rows/disjuncts) when known
    counterexample: Counterexample | None = None
    time_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def __post_init__(self):
        self.verdict = Verdict(self.verdict)
        if self.verdict is Verdict.SAT and (self.counterexample is None or not self.counterexample.validated):
            raise ValueError("a sat result needs a validated counterexample")

    def summary(self) -> str:
        parts = [str(self.verdict), f"method={self.method}", f"time={self.time_s:.3f}s"]
        if self.bound is not None:
            parts.append(f"bound={self.bound:.6g}")
        if self.message:
            parts.append(self.message)
        return "  ".join(parts)
