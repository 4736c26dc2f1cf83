"""CPU thread limits for the certificates: torch's thread count, and the BLAS libraries' for small dense algebra.

Shared by the Lipschitz analysis (one thread for its eigenvalue problems) and randomized smoothing (the
sampling threads); it imports neither, so the Lipschitz fast path of every ``verify`` run stays light.
"""
from __future__ import annotations

import contextlib
import functools

import torch

# CPU threads for the (small, dense) linear algebra of the Lipschitz analysis. Multi-threaded
# eigen-decompositions of a few hundred rows are slower than one thread already, and dramatically
# slower (100x measured) when other processes keep the cores busy.
LINALG_THREADS = 1


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily run torch's CPU kernels on ``n`` threads (None: leave torch's setting).

    On a machine busy with other processes, one thread is often much faster than
    several for small models: every kernel call then pays for thread synchronisation.
    """
    if n is None or n <= 0:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def linalg_threads(n: int | None = LINALG_THREADS):
    """Limit torch's and the BLAS libraries' CPU threads (threadpoolctl when installed)."""
    with torch_threads(n):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - comes with scikit-learn
            yield
            return
        with threadpool_limits(n):
            yield


def few_threads(fn):
    """Decorator: run ``fn`` under :func:`linalg_threads` (unless already inside, when nothing changes)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if torch.get_num_threads() == LINALG_THREADS:  # already inside (or nothing to change)
            return fn(*args, **kwargs)
        with linalg_threads():
            return fn(*args, **kwargs)

    return wrapper
