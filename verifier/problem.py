"""A verification problem: the loaded graph, the spec, and the reference executor."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .graph import Graph
from .spec import Spec


@dataclass
class Problem:
    graph: Graph
    spec: Spec
    model_path: str = ""
    spec_path: str = ""
    _reference: object = field(default=None, repr=False)
    _graph64: Graph | None = field(default=None, repr=False)

    def graph64(self) -> Graph:
        """The graph in float64 (built on first use; the graph itself when already float64)."""
        if self.graph.dtype == torch.float64:
            return self.graph
        if self._graph64 is None:
            self._graph64 = self.graph.to(dtype=torch.float64)
        return self._graph64

    @property
    def reference(self):
        """onnxruntime session of the model file (created on first use)."""
        if self._reference is None:
            from .validate import OnnxReference

            self._reference = OnnxReference(self.model_path)
        return self._reference

    @classmethod
    def load(cls, model_path, spec_path, device="cpu", dtype=torch.float32) -> "Problem":
        from frontends.onnx_loader import load_onnx
        from frontends.vnnlib2 import load_spec

        graph = load_onnx(model_path, dtype=dtype, device=device)
        spec = load_spec(spec_path, n_inputs=graph.n_inputs, n_outputs=graph.n_outputs)  # VNN-LIB 1.0 or 2.0
        return cls(graph, spec, str(model_path), str(spec_path))


class Deadline:
    """Wall-clock budget shared by the phases of one run."""

    def __init__(self, seconds: float):
        self.start = time.monotonic()
        self.end = self.start + max(0.0, seconds)

    def left(self) -> float:
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def elapsed(self) -> float:
        return time.monotonic() - self.start
