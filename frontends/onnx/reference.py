"""The reference executor: an onnxruntime session of the model, the judge of every counterexample.

``OnnxReference.open(data, source)`` makes the session at once (the load-time check does: a model that
onnxruntime refuses is a ModelError there, and validation reuses the session); ``OnnxReference(data)`` or
``OnnxReference(path)`` makes it on first use. A session that cannot run a point is a ModelError too,
never a traceback. Imports no torch, so the benchmark report can use it too.
"""
from __future__ import annotations

import os
import re

import numpy as np
import onnxruntime as ort

from verifier.ir.errors import ModelError

from .files import read_model_bytes

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
            inputs = session.get_inputs()
            if len(inputs) != 1:
                raise ModelError(f"onnxruntime sees {len(inputs)} inputs; the verifier needs exactly one",
                                 self.source)
            inp = inputs[0]
            self.input_name = inp.name
            self.input_shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
            self.input_type = np.float64 if "double" in inp.type else np.float32
            self._session = session
            self._data = None  # the session holds the model now
        return self._session

    def run(self, x: np.ndarray) -> np.ndarray:
        """The flat float64 output of onnxruntime at ``x`` (flat or shaped); a failed run is a ModelError."""
        session = self.session
        try:
            x = np.asarray(x, dtype=self.input_type).reshape(self.input_shape)
            y = session.run(None, {self.input_name: x})[0]
            return np.asarray(y, dtype=np.float64).reshape(-1)
        except Exception as e:  # a shape the session does not take, a kernel failure, a non-numeric output
            raise ModelError(f"onnxruntime cannot run the model on a point of shape {np.shape(x)}: {condense(e)}",
                             self.source) from None
