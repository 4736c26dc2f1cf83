"""Python API: verify a model against a spec with a named method.

>>> from verifier.api import verify
>>> r = verify("model.onnx", "spec.vnnlib", method="crown", timeout=60)
>>> r.verdict, r.bound
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace

import torch

from .errors import UnsupportedError, VerifierError
from .methods import get_method
from .options import VerifyOptions
from .problem import Deadline, Problem
from .result import Result, Verdict

log = logging.getLogger("verifier")

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(device: str) -> str:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise VerifierError("--device cuda was asked for but no CUDA device is available")
    return device


def load_problem(model_path, spec_path, options: VerifyOptions) -> Problem:
    if options.dtype not in DTYPES:
        raise VerifierError(f"unknown dtype {options.dtype!r}; choose float32 or float64")
    return Problem.load(model_path, spec_path, device=resolve_device(options.device), dtype=DTYPES[options.dtype])


def verify_problem(problem: Problem, options: VerifyOptions, deadline: Deadline | None = None) -> Result:
    deadline = deadline or Deadline(options.timeout)
    if options.threads and options.threads > 0:
        torch.set_num_threads(options.threads)
    t0 = time.monotonic()
    try:
        fn = get_method(options.method)
    except KeyError as e:
        return Result(Verdict.ERROR, options.method, message=str(e.args[0]))
    try:
        result = fn(problem, options, deadline)
    except UnsupportedError as e:
        result = Result(Verdict.ERROR, options.method, message=str(e))
    if result.verdict is Verdict.UNKNOWN and deadline.expired():
        result.verdict = Verdict.TIMEOUT
    result.time_s = time.monotonic() - t0
    try:
        import resource

        result.stats.setdefault("max_rss_mb", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    except (ImportError, OSError):  # not on every platform
        pass
    return result


def verify(model_path, spec_path, method: str = "auto", timeout: float = 300.0,
           options: VerifyOptions | None = None, **kw) -> Result:
    """Load the model and the spec, run ``method``; user mistakes give ``Verdict.ERROR`` with a message."""
    options = options or VerifyOptions()
    options = replace(options, method=method, timeout=timeout, **kw)
    deadline = Deadline(timeout)
    t0 = time.monotonic()
    try:
        problem = load_problem(model_path, spec_path, options)
    except VerifierError as e:
        return Result(Verdict.ERROR, method, message=str(e), time_s=time.monotonic() - t0)
    load_s = time.monotonic() - t0
    result = verify_problem(problem, options, deadline)
    result.timings = {"load": load_s, **result.timings}
    result.time_s = time.monotonic() - t0
    return result
