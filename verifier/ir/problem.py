"""A verification problem: the loaded graph, the spec, and the reference executor.

Loading from files is the front ends' job (``frontends.load.load_problem``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from verifier.ir.graph import Graph
from verifier.ir.spec import Spec


@dataclass
class Problem:
    graph: Graph
    spec: Spec
    model_path: str = ""
    spec_path: str = ""
    # the reference executor (``run(x) -> flat output``, onnxruntime): the judge of every counterexample;
    # None where the graph has no model file behind it (nothing can then be validated as ``sat``)
    reference: object | None = field(default=None, repr=False)
    _graph64: Graph | None = field(default=None, repr=False)

    def graph64(self) -> Graph:
        """The graph in float64 (built on first use; the graph itself when already float64)."""
        if self.graph.dtype == torch.float64:
            return self.graph
        if self._graph64 is None:
            self._graph64 = self.graph.to(dtype=torch.float64)
        return self._graph64
