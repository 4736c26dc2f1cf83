"""Counterexample validation against onnxruntime (the reference executor).

A candidate input is clipped into the disjunct's box *after* rounding to float32
(so the float32 value actually fed to the network lies inside the box exactly),
run through onnxruntime, and accepted only when onnxruntime's own output meets
that disjunct's ``C y <= d`` with no tolerance.
"""
from __future__ import annotations

import os

import numpy as np

from .result import Counterexample
from .spec import Spec


class OnnxReference:
    """An onnxruntime session for a model file (plain or gzipped)."""

    def __init__(self, model_path: str | os.PathLike):
        import onnxruntime as ort

        from frontends.onnx_loader import read_model_bytes

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(read_model_bytes(model_path), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        self.input_type = np.float64 if "double" in inp.type else np.float32

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.input_type).reshape(self.input_shape)
        y = self.session.run(None, {self.input_name: x})[0]
        return np.asarray(y, dtype=np.float64).reshape(-1)


def clip_to_box_f32(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
    """float32 point inside [lo, hi] (checked in float64) closest to x, or None if the box holds no float32."""
    x32 = np.clip(np.asarray(x, dtype=np.float64).reshape(-1), lo, hi).astype(np.float32)
    low = x32.astype(np.float64) < lo
    x32[low] = np.nextafter(x32[low], np.float32(np.inf))
    high = x32.astype(np.float64) > hi
    x32[high] = np.nextafter(x32[high], np.float32(-np.inf))
    xd = x32.astype(np.float64)
    if np.any(xd < lo) or np.any(xd > hi):
        return None
    return x32


def validate_candidate(ref: OnnxReference, spec: Spec, x: np.ndarray, disjuncts=None) -> Counterexample | None:
    """Return a validated counterexample built from ``x`` if onnxruntime confirms it, else None."""
    order = range(len(spec.disjuncts)) if disjuncts is None else disjuncts
    for i in order:
        dj = spec.disjuncts[i]
        x32 = clip_to_box_f32(x, dj.lo, dj.hi)
        if x32 is None:
            continue
        y = ref.run(x32)
        if dj.output_violation(y) <= 0.0 and dj.contains_input(x32.astype(np.float64)):
            return Counterexample(x=x32.astype(np.float64), y=y, disjunct=i, validated=True)
    return None
