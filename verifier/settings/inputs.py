"""Settings of reading the inputs: the limits a spec must stay within (``[limits]``) and the load-time check of
a model against onnxruntime (``[model_check]``).

A limit guards the machine against a file that would exhaust it; the error that a limit raises names the
limit and how to raise it (``--set limits.disjuncts=2000000``). 0 disables a limit.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LimitSettings:
    spec_bytes: int = 1 << 30  # size of a spec's text (after gunzip), bytes
    tensor_elements: int = 50_000_000  # elements of one declared input or output tensor (VNN-LIB 2.0)
    disjuncts: int = 1_000_000  # disjuncts after the asserts are expanded (cross product of the DNFs)
    nesting_depth: int = 200  # depth of nested parentheses in a spec

    def __post_init__(self):
        for name in ("spec_bytes", "tensor_elements", "disjuncts", "nesting_depth"):
            if getattr(self, name) < 0:
                raise ValueError(f"limits.{name} must be >= 0 (0: no limit)")


@dataclass(frozen=True)
class ModelCheckSettings:
    enabled: bool = True  # check the model with onnx.checker, an onnxruntime session and a forward comparison
    points: int = 3  # random points of the spec's input set compared (the centre of each region is always one)
    rtol: float = 1e-3  # a node's output differs when |ours - onnxruntime| > atol + rtol * |onnxruntime| ...
    atol: float = 1e-4  # ... (scaled by the node's largest magnitude) anywhere

    def __post_init__(self):
        if self.points < 0 or self.rtol < 0 or self.atol < 0:
            raise ValueError("model_check.points, rtol and atol must be >= 0")
