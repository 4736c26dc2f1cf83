"""Cheap features of a verification problem that ``auto``'s planner (``verifier.methods.planner``) decides by:
the sizes of the input, the network and the spec, how many ReLUs CROWN leaves unstable, and the size of the exact
MILP (and whether Gurobi is installed and its licence covers that size)."""
from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass

import numpy as np
import torch

from verifier.bounds.crown import intermediate_bounds
from verifier.ir.ops import ReLU
from verifier.ir.problem import Problem

MAX_COUNTED_NEURONS = 20_000  # past this many ReLUs no MILP is planned: unstable ReLUs are not counted (None)
MAX_COUNTED_REGIONS = 4  # the unstable count is the largest over this many input regions of the spec


@dataclass(frozen=True)
class Features:
    n_inputs: int
    n_relu: int  # ReLU neurons
    depth: int  # ReLU layers
    n_other: int  # nonlinear nodes other than ReLU (Sigmoid, MaxPool, ...): no ReLU splitting, no MILP
    n_disjuncts: int
    n_regions: int  # distinct input boxes of the spec
    n_unstable: int | None  # ReLUs CROWN leaves unstable (the most over the regions counted); None: not counted
    milp_vars: int | None  # the exact MILP's size, estimated: variables ...
    milp_rows: int | None  # ... and constraints (None: not counted)
    gurobi: bool  # gurobipy is installed

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items())


def gurobi_installed() -> bool:
    return importlib.util.find_spec("gurobipy") is not None


def problem_features(problem: Problem) -> Features:
    """The features of ``problem`` (one CROWN pass of the intermediate bounds per counted region)."""
    graph, spec = problem.graph, problem.spec
    relus = [n for n in graph.nodes if isinstance(n.op, ReLU)]
    def size(name: str) -> int:  # a ReLU may take the network's input itself
        return graph.n_inputs if name == graph.input_name else int(np.prod(graph.by_name[name].shape))

    n_relu = sum(size(n.inputs[0]) for n in relus)
    n_other = sum(1 for n in graph.nonlinear_nodes() if not isinstance(n.op, ReLU))
    regions = spec.regions()
    unstable = vars_ = rows = None
    if n_other == 0 and n_relu <= MAX_COUNTED_NEURONS:
        unstable = 0
        for lo, hi, _ in regions[:MAX_COUNTED_REGIONS]:
            t = [torch.tensor(np.array(v, np.float64), dtype=graph.dtype, device=graph.device).reshape(1, -1)
                 for v in (lo, hi)]
            with torch.no_grad():
                pre = intermediate_bounds(graph, t[0], t[1], "crown")
            unstable = max(unstable, sum(int(((pre[n.inputs[0]][0] < 0) & (pre[n.inputs[0]][1] > 0)).sum())
                                         for n in relus))
        # inputs, each ReLU's pre-activation and output, a binary per unstable one, the outputs and the objective;
        # a row per pre-activation (its affine definition), three per unstable ReLU, one per output row
        vars_ = graph.n_inputs + 2 * n_relu + unstable + graph.n_outputs + 1
        rows = n_relu + 3 * unstable + graph.n_outputs + max((len(d.d) for d in spec.disjuncts), default=0)
    return Features(graph.n_inputs, n_relu, len(relus), n_other, len(spec.disjuncts), len(regions), unstable, vars_,
                    rows, gurobi_installed())
