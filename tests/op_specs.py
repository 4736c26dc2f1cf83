"""The end-to-end check shared by the op tests (``test_ops_smooth.py``, ``test_ops_bilinear.py``): ``auto`` on a
3-input net with the op answers a validated ``sat`` just above the sampled minimum of ``y0 - y1`` and ``unsat`` below
CROWN's lower bound on the box."""
from __future__ import annotations

import numpy as np
import torch
from test_bounds import F64, boxes, objective_values, sample_inputs

from frontends.onnx.loader import graph_from_onnx
from verifier.api import verify
from verifier.bounds import objective_bounds
from verifier.settings import BoundSettings

LO, HI = np.array([-0.5, -0.3, 0.1]), np.array([0.3, 0.4, 0.6])


def check_auto_both_sides(model, case: str, folder, n_uniform: int, starts: int, steps: int,
                          sat_by_attack: bool = False) -> None:
    """``model`` (an ONNX ModelProto of 3 inputs and 2 outputs) decided by ``auto`` on both sides of its sampled
    optimum; ``sat_by_attack``: the ``sat`` must come from the attack."""
    g64 = graph_from_onnx(model, case, dtype=F64)
    C = torch.tensor([[1.0, -1.0]])
    X = sample_inputs(g64, C, LO, HI, np.random.default_rng(0), n_uniform=n_uniform, starts=starts, steps=steps)
    best = float(objective_values(g64, C, torch.zeros(1), X).min())
    lower = float(objective_bounds(g64, C, torch.zeros(1), *boxes(LO, HI), BoundSettings("crown")).lower[0, 0])
    assert lower <= best
    path = folder / f"{case}.onnx"
    path.write_bytes(model.SerializeToString())
    head = "".join(f"(declare-const X_{i} Real)\n(assert (>= X_{i} {LO[i]}))\n(assert (<= X_{i} {HI[i]}))\n"
                   for i in range(3)) + "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
    for thr, expect in ((best + 0.02, "sat"), (lower - 0.05, "unsat")):
        spec = folder / f"{case}_{expect}.vnnlib"
        spec.write_text(head + f"(assert (<= (- Y_0 Y_1) {thr}))\n")
        r = verify(path, spec, method="auto", timeout=30)
        assert r.verdict.value == expect, (case, thr, r.verdict, r.method, r.message)
        if expect == "sat":  # validated on onnxruntime
            assert r.counterexample is not None and r.counterexample.validated, r.method
            assert not sat_by_attack or "attack" in r.method, r.method
