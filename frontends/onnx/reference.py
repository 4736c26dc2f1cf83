"""The reference executor: an onnxruntime session of the model, the judge of every counterexample.

Built from the bytes the loader read (``OnnxReference(data)``) or from a file; the session is made on
first use. Imports no torch, so the benchmark report can use it too.
"""
from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort

from .files import read_model_bytes


class OnnxReference:
    """An onnxruntime session of a model (the model's bytes, or a plain or gzipped file)."""

    def __init__(self, model: bytes | str | os.PathLike):
        self._data = model if isinstance(model, (bytes, bytearray)) else None
        self._path = None if self._data is not None else model
        self._session = None

    @property
    def session(self):
        if self._session is None:
            data = self._data if self._data is not None else read_model_bytes(self._path)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.log_severity_level = 3
            self._session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
            inp = self._session.get_inputs()[0]
            self.input_name = inp.name
            self.input_shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
            self.input_type = np.float64 if "double" in inp.type else np.float32
            self._data = None  # the session holds the model now
        return self._session

    def run(self, x: np.ndarray) -> np.ndarray:
        """The flat float64 output of onnxruntime at ``x`` (flat or shaped)."""
        session = self.session
        x = np.asarray(x, dtype=self.input_type).reshape(self.input_shape)
        y = session.run(None, {self.input_name: x})[0]
        return np.asarray(y, dtype=np.float64).reshape(-1)
