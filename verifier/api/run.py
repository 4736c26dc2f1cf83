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

try:
    import resource
except ImportError:  # not on every platform
    resource = None

from frontends.load import load_problem as load_files
from verifier.ir.deadline import Deadline
from verifier.ir.errors import DeadlineExpired, UnsupportedError, VerifierError
from verifier.ir.problem import Problem
from verifier.ir.result import Result, Verdict
from verifier.methods import get_method
from verifier.settings.options import VerifyOptions

log = logging.getLogger("verifier")

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(device: str) -> str:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise VerifierError("--device cuda was asked for but no CUDA device is available")
    return device


def load_problem(model_path, spec_path, options: VerifyOptions, deadline: Deadline | None = None) -> Problem:
    if options.dtype not in DTYPES:
        raise VerifierError(f"unknown dtype {options.dtype!r}; choose float32 or float64")
    return load_files(model_path, spec_path, device=resolve_device(options.device), dtype=DTYPES[options.dtype],
                      limits=options.limits, model_check=options.model_check, deadline=deadline)


def verify_problem(problem: Problem, options: VerifyOptions, deadline: Deadline | None = None) -> Result:
    """Run ``options.method`` on a loaded problem within ``deadline`` (default: ``options.timeout`` from now).

    The method decides its verdict (``timeout`` where it stopped for lack of time); nothing here re-decides it.
    """
    deadline = deadline or Deadline(options.timeout)
    if options.threads and options.threads > 0:
        torch.set_num_threads(options.threads)
    t0 = time.monotonic()
    try:
        fn = get_method(options.method)
    except KeyError as e:
        return Result(Verdict.ERROR, options.method, message=f"method: {e.args[0]}")
    try:
        result = fn(problem, options, deadline)
    except UnsupportedError as e:  # the method cannot handle this network: no verdict from it, and the reason
        result = Result(Verdict.UNKNOWN, options.method, message=f"{options.method} cannot decide this network: {e}")
    except VerifierError as e:  # a ModelError of the reference executor while validating
        result = Result(Verdict.ERROR, options.method, message=str(e))
    result.time_s = time.monotonic() - t0
    if resource is not None:
        result.stats.setdefault("max_rss_mb", round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    return result


def verify(model_path, spec_path, method: str | None = None, timeout: float | None = None,
           options: VerifyOptions | None = None, deadline: Deadline | None = None, **fields) -> Result:
    """Load the model and the spec, run the method; user mistakes give ``Verdict.ERROR`` with a message.

    ``method``, ``timeout`` and ``fields`` (other ``VerifyOptions`` fields) override ``options`` (default
    ``VerifyOptions()``, i.e. ``auto`` with 300 s). ``deadline`` (default: ``timeout`` seconds from now) is the
    one budget of the whole run, loading included.
    """
    options = options or VerifyOptions()
    changes = dict(fields, **{k: v for k, v in (("method", method), ("timeout", timeout)) if v is not None})
    if changes:
        options = replace(options, **changes)
    deadline = deadline or Deadline(options.timeout)
    t0 = time.monotonic()
    try:
        problem = load_problem(model_path, spec_path, options, deadline)
    except DeadlineExpired as e:  # the budget ran out while the inputs were read: a verdict
        return Result(Verdict.TIMEOUT, options.method, message=str(e), time_s=time.monotonic() - t0)
    except VerifierError as e:
        return Result(Verdict.ERROR, options.method, message=str(e), time_s=time.monotonic() - t0)
    load_s = time.monotonic() - t0
    result = verify_problem(problem, options, deadline)
    result.timings = {"load": load_s, **result.timings}
    result.time_s = time.monotonic() - t0
    return result
