"""Counterexample validation against onnxruntime (the reference executor).

A candidate input is clipped into the disjunct's box *after* rounding to float32
(so the float32 value actually fed to the network lies inside the box exactly),
run through onnxruntime, and accepted only when onnxruntime's own output meets
that disjunct's ``C y <= d`` with no tolerance (strict rows strictly, open input bounds strictly).
"""
from __future__ import annotations

import numpy as np

from frontends.onnx.reference import OnnxReference
from verifier.ir.result import Counterexample
from verifier.ir.spec import Spec


def clip_to_box_f32(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, lo_open: np.ndarray | None = None,
                    hi_open: np.ndarray | None = None) -> np.ndarray | None:
    """float32 point inside [lo, hi] (checked in float64) closest to x, or None if the box holds no float32.

    ``lo_open`` / ``hi_open`` (bool per input) make a bound strict: the point then lies strictly inside it."""
    x32 = np.clip(np.asarray(x, dtype=np.float64).reshape(-1), lo, hi).astype(np.float32)
    low = x32.astype(np.float64) < lo
    if lo_open is not None:
        low |= lo_open & (x32.astype(np.float64) <= lo)
    x32[low] = np.nextafter(x32[low], np.float32(np.inf))
    high = x32.astype(np.float64) > hi
    if hi_open is not None:
        high |= hi_open & (x32.astype(np.float64) >= hi)
    x32[high] = np.nextafter(x32[high], np.float32(-np.inf))
    xd = x32.astype(np.float64)
    if np.any(xd < lo) or np.any(xd > hi):
        return None
    if lo_open is not None and np.any(xd[lo_open] <= lo[lo_open]):
        return None
    if hi_open is not None and np.any(xd[hi_open] >= hi[hi_open]):
        return None
    return x32


def validate_candidate(ref: OnnxReference, spec: Spec, x: np.ndarray, disjuncts=None) -> Counterexample | None:
    """Return a validated counterexample built from ``x`` if onnxruntime confirms it, else None."""
    order = range(len(spec.disjuncts)) if disjuncts is None else disjuncts
    outputs: dict[bytes, np.ndarray] = {}  # onnxruntime's output per distinct clipped point (boxes repeat)
    for i in order:
        dj = spec.disjuncts[i]
        x32 = clip_to_box_f32(x, dj.lo, dj.hi, dj.lo_open, dj.hi_open)
        if x32 is None:
            continue
        key = x32.tobytes()
        y = outputs.get(key)
        if y is None:
            y = outputs[key] = ref.run(x32)
        if dj.output_holds(y) and dj.contains_input(x32.astype(np.float64)):
            return Counterexample(x=x32.astype(np.float64), y=y, disjunct=i, validated=True)
    return None
