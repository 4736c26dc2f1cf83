"""The reference executor: an onnxruntime session of the model, the judge of every counterexample.

``OnnxReference.open(data, source)`` makes the session at once (the load-time check does: a model that
onnxruntime refuses is a ModelError there, and validation reuses the session); ``OnnxReference(data)`` or
``OnnxReference(path)`` makes it on first use. A session that cannot run a point is a ModelError too,
never a traceback. A model with several inputs or outputs is fed and read in the convention of
:mod:`frontends.onnx.io_layout`: the flat ``X`` split into the inputs in graph order, the outputs flattened and
concatenated in graph order. Imports no torch, so the benchmark report can use it too.
"""
from __future__ import annotations

import os
import re

import numpy as np
import onnxruntime as ort

from verifier.ir.errors import ModelError

from .files import read_model_bytes
from .io_layout import InputLayout, join_outputs, static_shape

_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*[A-Z_]+\s*:\s*")
_CPP_LOCATION = re.compile(r"/?[\w./-]+\.(?:h|cc|cpp):\d+\s+(?:[^()\s]+\s+)*[^()\s]+\([^)]*\)(?:\s*const)?\s*")


def condense(message: str, limit: int = 300) -> str:
    """A tool's error message as one line: onnxruntime's code prefix and C++ source location dropped,
    whitespace runs (newlines included) made one space, cut at ``limit`` characters."""
    text = _CPP_LOCATION.sub(" ", _ORT_PREFIX.sub("", str(message).strip()))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def open_session(data: bytes, source: str = "<model>") -> ort.InferenceSession:
    """An onnxruntime CPU session of a serialised model; a model onnxruntime refuses is a ModelError."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4  # fatal only: a refusal is reported once, as the ModelError
    try:
        return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
        raise ModelError(f"onnxruntime cannot load the model: {condense(e)}", source) from None


class OnnxReference:
    """An onnxruntime session of a model (the model's bytes, or a plain or gzipped file)."""

    def __init__(self, model: bytes | str | os.PathLike, source: str | None = None):
        self._data = model if isinstance(model, (bytes, bytearray)) else None
        self._path = None if self._data is not None else model
        self.source = source if source is not None else (str(model) if self._path is not None else "<model>")
        self._session = None

    @classmethod
    def open(cls, data: bytes, source: str = "<model>") -> OnnxReference:
        """The reference with its session made now (ModelError where onnxruntime refuses the model)."""
        ref = cls(data, source)
        _ = ref.session  # made now, for its check
        return ref

    @property
    def session(self):
        if self._session is None:
            data = self._data if self._data is not None else read_model_bytes(self._path)
            session = open_session(bytes(data), self.source)
            inputs = session.get_inputs()  # the graph's order, initializer-backed inputs left out
            if not inputs:
                raise ModelError("the model has no network input", self.source)
            self.layout = InputLayout([i.name for i in inputs],
                                      [static_shape(i.name, i.shape or [], self.source) for i in inputs],
                                      [np.float64 if "double" in i.type else np.float32 for i in inputs])
            first = self.layout.slots[0]
            # the first input's name, shape and type (the whole of it for a one-input model)
            self.input_name, self.input_shape, self.input_type = first.name, list(first.shape), first.dtype
            # a batch runs in one call when every input has a symbolic first axis
            self.batchable = all(i.shape and not isinstance(i.shape[0], int) for i in inputs)
            self._session = session
            self._data = None  # the session holds the model now
        return self._session

    @property
    def input_names(self) -> list[str]:
        _ = self.session
        return self.layout.names

    @property
    def n_inputs(self) -> int:
        """The size of ``X``: every network input's elements (:mod:`frontends.onnx.io_layout`)."""
        _ = self.session
        return self.layout.n_inputs

    def feeds(self, x) -> dict[str, np.ndarray]:
        """onnxruntime's feeds at ``x``: the flat X split into the network inputs, in graph order, each shaped
        and typed as the model declares it."""
        _ = self.session
        return self.layout.feeds(x)

    def run(self, x: np.ndarray) -> np.ndarray:
        """The flat float64 ``Y`` of onnxruntime at ``x`` (flat X, or shaped as a one-input model's input): every
        output flattened and concatenated in graph order; a failed run is a ModelError."""
        session = self.session
        try:
            return join_outputs(session.run(None, self.layout.feeds(x)))
        except Exception as e:  # a shape the session does not take, a kernel failure, a non-numeric output
            raise ModelError(f"onnxruntime cannot run the model on a point of shape {np.shape(x)}: {condense(e)}",
                             self.source) from None

    def run_batch(self, X: np.ndarray) -> np.ndarray:
        """(B, n_outputs) float64 ``Y`` at the B points ``X`` (flat rows): one onnxruntime call where every input
        has a free batch axis, else one per point."""
        session = self.session
        X = np.asarray(X).reshape(len(X), self.layout.n_inputs)
        if not self.batchable or len(X) <= 1:
            return np.stack([self.run(x) for x in X]) if len(X) else np.zeros((0, 0))
        try:
            ys = session.run(None, self.layout.batch_feeds(X))
        except Exception as e:  # onnxruntime raises its own types
            raise ModelError(f"onnxruntime cannot run a batch of {len(X)}: {condense(e)}", self.source) from None
        if any(np.ndim(y) == 0 or np.shape(y)[0] != len(X) for y in ys):  # an output without the batch axis
            return np.stack([self.run(x) for x in X])
        return join_outputs(ys, batch=len(X))
