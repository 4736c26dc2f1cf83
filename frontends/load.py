"""A verification problem from its files: the model read once (the layer graph and the reference executor
are both made from the same bytes) and the property (VNN-LIB 1.0 or 2.0)."""
from __future__ import annotations

import os

import torch

from verifier.ir.problem import Problem

from .onnx.files import read_model_bytes
from .onnx.loader import graph_from_bytes
from .onnx.reference import OnnxReference
from .vnnlib.v2 import load_spec


def load_problem(model_path: str | os.PathLike, spec_path: str | os.PathLike, device="cpu",
                 dtype=torch.float32) -> Problem:
    data = read_model_bytes(model_path)
    graph = graph_from_bytes(data, str(model_path), dtype=dtype, device=device)
    spec = load_spec(spec_path, n_inputs=graph.n_inputs, n_outputs=graph.n_outputs)  # VNN-LIB 1.0 or 2.0
    return Problem(graph, spec, str(model_path), str(spec_path), reference=OnnxReference(data))
