"""A verification problem from its files: the model read once (the layer graph and the reference executor
are both made from the same bytes) and the property (VNN-LIB 1.0 or 2.0).

``limits`` bound what the spec may ask of the machine and ``deadline`` is honoured while it is read
(:mod:`frontends.vnnlib`); ``model_check`` is the load-time check of the model: onnx.checker, finite
weights and an onnxruntime session before the graph is built (:mod:`frontends.onnx.check`), then the graph's
forward pass against onnxruntime on points of the spec (:mod:`frontends.onnx.compare`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import onnx
import torch

from verifier.ir.deadline import Deadline
from verifier.ir.errors import ModelError
from verifier.ir.graph import Graph
from verifier.ir.problem import Problem
from verifier.ir.spec import Spec
from verifier.settings.inputs import LimitSettings, ModelCheckSettings

from .onnx.check import open_checked
from .onnx.compare import check_forward
from .onnx.files import read_model_bytes
from .onnx.io_layout import network_inputs
from .onnx.loader import graph_from_onnx, parse_model
from .onnx.reference import OnnxReference
from .vnnlib.v2 import load_spec


@dataclass
class LoadedModel:
    """A model read once: its ModelProto (kept for the forward check only), the layer graph and the
    onnxruntime reference whose session the static check made."""

    proto: onnx.ModelProto
    graph: Graph
    reference: OnnxReference


def load_model(data: bytes, source: str, device="cpu", dtype=torch.float32,
               model_check: ModelCheckSettings | None = None, limits: LimitSettings | None = None) -> LoadedModel:
    """Parse ``data``, check it statically (onnx.checker where ``model_check.enabled``; finite weights and an
    onnxruntime session always: the session is the judge of counterexamples) and build the layer graph."""
    model_check = model_check or ModelCheckSettings()
    proto = parse_model(data, source)
    reference = open_checked(proto, data, source, full=model_check.enabled)
    limits = limits or LimitSettings()
    graph = graph_from_onnx(proto, source, dtype=dtype, device=device, max_input_elements=limits.tensor_elements)
    check_io_order(proto, reference)
    return LoadedModel(proto, graph, reference)


def check_io_order(proto: onnx.ModelProto, reference: OnnxReference) -> None:
    """The graph (from the ModelProto) and onnxruntime (from its session) see the network inputs and outputs in
    the same order, so both lay out X and Y alike (:mod:`frontends.onnx.io_layout`); a ModelError otherwise."""
    ours = ([i.name for i in network_inputs(proto.graph)], [o.name for o in proto.graph.output])
    theirs = (reference.input_names, [o.name for o in reference.session.get_outputs()])
    for kind, a, b in (("inputs", ours[0], theirs[0]), ("outputs", ours[1], theirs[1])):
        if a != b:
            raise ModelError(f"the model's network {kind} are {a} but onnxruntime sees {b}", reference.source)


def check_model_on_spec(model: LoadedModel, spec: Spec, model_check: ModelCheckSettings | None = None,
                        deadline: Deadline | None = None) -> None:
    """The forward comparison of the graph with onnxruntime on points of ``spec`` (skipped when disabled)."""
    check_forward(model.graph, model.reference, spec, model_check or ModelCheckSettings(), model.proto, deadline)


def load_problem(model_path: str | os.PathLike, spec_path: str | os.PathLike, device="cpu",
                 dtype=torch.float32, limits: LimitSettings | None = None,
                 model_check: ModelCheckSettings | None = None, deadline: Deadline | None = None) -> Problem:
    limits = limits or LimitSettings()
    model_check = model_check or ModelCheckSettings()
    model = load_model(read_model_bytes(model_path), str(model_path), device, dtype, model_check, limits)
    graph = model.graph
    spec = load_spec(spec_path, n_inputs=graph.n_inputs, n_outputs=graph.n_outputs, limits=limits,
                     deadline=deadline)  # VNN-LIB 1.0 or 2.0
    check_model_on_spec(model, spec, model_check, deadline)
    return Problem(graph, spec, str(model_path), str(spec_path), reference=model.reference)
