"""A verification problem from its files: the model read once (the layer graph and the reference executor
are both made from the same bytes) and the property (VNN-LIB 1.0 or 2.0).

``limits`` bound what the spec may ask of the machine and ``deadline`` is honoured while it is read
(:mod:`frontends.vnnlib`); ``model_check`` is the load-time check of the model against onnxruntime.
"""
from __future__ import annotations

import os

import torch

from verifier.ir.deadline import Deadline
from verifier.ir.problem import Problem
from verifier.settings.inputs import LimitSettings, ModelCheckSettings

from .onnx.files import read_model_bytes
from .onnx.loader import graph_from_bytes
from .onnx.reference import OnnxReference
from .vnnlib.v2 import load_spec


def load_problem(model_path: str | os.PathLike, spec_path: str | os.PathLike, device="cpu",
                 dtype=torch.float32, limits: LimitSettings | None = None,
                 model_check: ModelCheckSettings | None = None, deadline: Deadline | None = None) -> Problem:
    limits = limits or LimitSettings()
    model_check = model_check or ModelCheckSettings()
    data = read_model_bytes(model_path)
    graph = graph_from_bytes(data, str(model_path), dtype=dtype, device=device)
    spec = load_spec(spec_path, n_inputs=graph.n_inputs, n_outputs=graph.n_outputs)  # VNN-LIB 1.0 or 2.0
    return Problem(graph, spec, str(model_path), str(spec_path), reference=OnnxReference(data))
