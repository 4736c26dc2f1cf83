"""Python API: ``verify(model, spec, method=..., timeout=..., options=...)`` and ``compare``.

>>> from verifier.api import verify
>>> r = verify("model.onnx", "spec.vnnlib", method="crown", timeout=60)
>>> r.verdict, r.bound
"""
from verifier.api.run import load_problem, verify, verify_problem

__all__ = ["load_problem", "verify", "verify_problem"]
