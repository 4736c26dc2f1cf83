"""``python -m verifier.cli.bench_worker``: a warm worker of ``verify bench`` (``--worker warm``).

Imports the ``verify`` command and everything it loads (torch, onnx, onnxruntime, the methods) once,
runs no torch operation (an OpenMP pool started here would be lost in the fork and hang the child),
then serves the runner's requests (``verifier/bench/warm_server.py``): each instance in a forked child
that runs ``verify`` exactly as ``python -m verifier.cli`` would (its deadline counted from the fork,
the same arguments, the same exit), with torch's threads set in the child and the random generators of
Python and NumPy seeded afresh, as a new process has them.
"""
from __future__ import annotations

import random
import sys

import numpy as np
import torch

import verifier.cli.verify  # noqa: F401  (loaded here, once: the children inherit it)
from verifier.bench.warm_protocol import Request
from verifier.bench.warm_server import serve
from verifier.cli.guard import fast_exit
from verifier.cli.main import main


def run_instance(req: Request) -> int:
    """In the forked child: ``verify ARGV`` as a program (it ends the process itself)."""
    if req.threads:
        torch.set_num_threads(req.threads)
    random.seed()
    np.random.seed()
    sys.argv = ["verify", *req.argv]
    return main()


if __name__ == "__main__":
    fast_exit(serve(run_instance))
