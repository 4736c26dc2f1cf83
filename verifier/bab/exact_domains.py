"""Exact decisions of single ReLU-splitting domains: a small MILP for a domain with few unstable
ReLUs, and an LP for a domain on which every ReLU is stable (the network is affine there)."""
from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linprog

from backends.encoding import encode_network
from backends.solvers import SolveStatus, StopRule, make_solver
from verifier.attack.validate import validate_candidate
from verifier.bab.common import Outcome
from verifier.bab.domains import Region
from verifier.bounds.crown import backward_lower
from verifier.bounds.proof import max_is_strict, refutes
from verifier.ir.deadline import Deadline


def _finite(*arrays) -> bool:
    """Every entry of every array is finite (no NaN, no infinity)."""
    return all(bool(np.all(np.isfinite(a))) for a in arrays)


def solve_domain_milp(problem, region: Region, pre, grp_ok, deadline: Deadline):
    """Decide a domain of ``region`` with few unstable ReLUs by one big-M MILP per open disjunct (HiGHS).

    ``pre`` holds the domain's bounds with its splits applied (a split neuron is stable in them),
    so only the unstable neurons get binaries. Returns PROVEN (every open disjunct's MILP bound
    above the solver's tolerance), FALSIFIED with a validated counterexample, or OPEN (time, or a
    point that does not validate: the search then splits the domain as usual). Like the MILP
    backend, its unsat relies on the solver's feasibility tolerances.
    """
    rows, x_lo, x_hi = region.rows, region.x_lo, region.x_hi
    g64 = problem.graph64()
    pre64 = {p: (v[0].double(), v[1].double()) for p, v in pre.items()}
    if not _finite(*[t.cpu().numpy() for b in pre64.values() for t in b]):
        return Outcome.OPEN, None  # NaN or infinite bounds: nothing for a solver
    enc = encode_network(g64, pre64, x_lo.double().cpu().numpy(), x_hi.double().cpu().numpy(), "milp")
    solver = make_solver("highs")
    thr = max(1e-6, solver.tolerance())
    for g in range(len(rows.groups)):
        if bool(grp_ok[g]):
            continue
        j = rows.idx[g]
        dj = problem.spec.disjuncts[j]
        model = enc.with_objective(dj.C, dj.d)
        if deadline.left() <= 0:
            return Outcome.OPEN, None
        out = solver.solve(model, deadline.left(), StopRule(bound_above=thr))
        lower = out.bound if out.bound is not None else -float("inf")
        if out.status == SolveStatus.OPTIMAL and out.bound is None and out.objective is not None:
            lower = out.objective
        if out.status == SolveStatus.INFEASIBLE or refutes(lower, thr, max_is_strict(dj.strict)):
            continue
        if out.x is not None and out.objective is not None and out.objective <= 0:
            cex = validate_candidate(problem.reference, problem.spec, out.x[model.input_vars], disjuncts=[j])
            if cex is not None:
                return Outcome.FALSIFIED, cex
        return Outcome.OPEN, None
    return Outcome.PROVEN, None


def solve_linear_domain(problem, region: Region, pre, sgn, grp_ok):
    """Decide a domain of ``region`` on which every ReLU is stable: the network is affine there.

    The objective rows and every split neuron's pre-activation are exact affine functions of
    x (backward passes through stable ReLUs are exact); one LP per open disjunct,
    ``min t  s.t.  C_i y(x) - d_i <= t (its rows),  s_j z_j(x) >= 0 (the splits),  x in box``,
    in float64 with HiGHS, proves it (optimum above the tolerance, or infeasible) or gives a
    minimiser that is validated as a counterexample. Relies on the LP solver's tolerances. Non-finite
    coefficients are never sent to the solver: the domain stays open.
    """
    rows, x_lo, x_hi = region.rows, region.x_lo, region.x_hi
    cpu = torch.device("cpu")  # small exact passes, then numpy: on the CPU whatever the search's device
    g64 = problem.graph64().to(device=cpu)
    lo64, hi64 = x_lo.to(cpu, torch.float64), x_hi.to(cpu, torch.float64)
    pre64 = {k: (v[0].to(cpu, torch.float64), v[1].to(cpu, torch.float64)) for k, v in pre.items()}
    K = rows.C.shape[0]
    A0 = rows.C.to(cpu, torch.float64).reshape(1, K, *g64.output_shape)
    _, Ax, bias = backward_lower(g64, g64.output_name, A0, lo64, hi64, pre64, return_linear=True)
    obj_A, obj_b = Ax[0].numpy(), bias[0].numpy() - rows.d.to(cpu, torch.float64).numpy()
    A_ub, b_ub = [], []
    for p, s in sgn.items():
        flat = s.reshape(-1).cpu()
        idx = torch.nonzero(flat).flatten()
        if idx.numel() == 0:
            continue
        shape = g64.shape_of(p)
        E = torch.zeros(idx.numel(), flat.numel(), dtype=torch.float64)
        E[torch.arange(idx.numel()), idx] = 1.0
        _, Az, bz = backward_lower(g64, p, E.reshape(1, idx.numel(), *shape), lo64, hi64, pre64, return_linear=True)
        sign = flat[idx].double().numpy()
        # s_j (a_j x + c_j) >= 0   <=>   -s_j a_j x <= s_j c_j
        A_ub.append(-sign[:, None] * Az[0].numpy())
        b_ub.append(sign * bz[0].numpy())
    n = lo64.shape[1]
    if not _finite(obj_A, obj_b, lo64.numpy(), hi64.numpy(), *A_ub, *b_ub):
        return Outcome.OPEN, None  # NaN or infinite coefficients (non-finite weights?): never sent to linprog
    bounds = list(zip(lo64[0].numpy(), hi64[0].numpy())) + [(None, None)]
    for g, grp in enumerate(rows.groups):
        if bool(grp_ok[g]):
            continue
        rows_A = np.hstack([obj_A[grp], -np.ones((len(grp), 1))])  # C_i y - d_i - t <= 0
        rows_b = -obj_b[grp]
        A = np.vstack([rows_A] + [np.hstack([a, np.zeros((a.shape[0], 1))]) for a in A_ub])
        b = np.concatenate([rows_b] + b_ub)
        c = np.zeros(n + 1)
        c[-1] = 1.0
        res = linprog(c, A_ub=A, b_ub=b, bounds=bounds, method="highs")
        if res.status == 2:  # infeasible: the domain holds no input
            continue
        if res.status != 0:
            return Outcome.OPEN, None
        scale = 1.0 + np.abs(obj_b[grp]).max() + np.abs(obj_A[grp]).sum(1).max()
        if refutes(res.fun, 1e-6 * scale, max_is_strict(rows.disjuncts[g].strict)):
            continue
        cex = validate_candidate(problem.reference, problem.spec, res.x[:n], disjuncts=[rows.idx[g]])
        if cex is not None:
            return Outcome.FALSIFIED, cex
        return Outcome.OPEN, None
    return Outcome.PROVEN, None
