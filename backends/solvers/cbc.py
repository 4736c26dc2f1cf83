"""CBC adapter through PuLP (PuLP ships the CBC binary).

CBC runs as a subprocess with no callbacks, so ``StopRule`` is not honoured
(the solve runs to optimality or to the time limit) and no dual bound is
reported for a MIP stopped early: such a solve is a ``TIME_LIMIT`` outcome. Its log (``msg``, on only
with ``verbose``) is the subprocess's stdout: sent to stderr (``quiet.solver_output()``).
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np
import scipy.sparse as sp

from backends.solvers.base import SolveOutcome, SolverAdapter, SolverUnavailable, SolveStatus, StopRule
from backends.solvers.quiet import maybe_solver_output
from backends.solvers.registry import register_solver


def _cbc_command(pulp, kw: dict):
    """A CBC found on the PATH (or installed by ``pip install pulp[cbc]``) through ``COIN_CMD``; else the
    binary PuLP ships (``PULP_CBC_CMD``, deprecated from PuLP 3.3 but still the one every PuLP has: its
    deprecation warning, one per solve, is silenced here)."""
    coin = getattr(pulp, "COIN_CMD", None)
    if coin is not None:
        cmd = coin(**kw)
        if cmd.available():
            return cmd
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PULP_CBC_CMD is deprecated", category=DeprecationWarning)
        return pulp.PULP_CBC_CMD(**kw)


class CbcAdapter(SolverAdapter):
    name = "cbc"

    def tolerance(self) -> float:
        # CBC's integer tolerance is 1e-6; it reports no dual bound, and its "optimal" is only as good as
        # its cutoff increment (set to 1e-9 below; the default 1e-5 made it stop ~8e-6 above the true
        # optimum on the test benchmark), so its unsat margin is kept at 1e-5.
        return 1e-5

    def solve(self, model, time_limit: float = math.inf, stop: StopRule | None = None) -> SolveOutcome:
        try:
            import pulp
        except ImportError as e:  # pragma: no cover
            raise SolverUnavailable(f"pulp not importable: {e}") from None
        t0 = time.perf_counter()
        prob = pulp.LpProblem("m", pulp.LpMinimize)
        V = []
        # PuLP >= 3.3 deprecates building LpVariable directly (one warning per variable) for prob.add_variable
        new_var = prob.add_variable if hasattr(prob, "add_variable") else pulp.LpVariable
        for j in range(model.n_vars):
            lb = float(model.lb[j]) if np.isfinite(model.lb[j]) else None
            ub = float(model.ub[j]) if np.isfinite(model.ub[j]) else None
            V.append(new_var(f"v{j}", lb, ub, pulp.LpInteger if model.integer[j] else pulp.LpContinuous))
        c = model.cost
        nz = np.nonzero(c)[0]
        prob += pulp.LpAffineExpression([(V[j], float(c[j])) for j in nz], constant=float(model.offset))
        A = sp.csr_matrix(model.A)
        cons: list[tuple[int, str]] = []
        for i in range(model.n_rows):
            s, e = A.indptr[i], A.indptr[i + 1]
            expr = pulp.LpAffineExpression([(V[j], float(a)) for j, a in zip(A.indices[s:e], A.data[s:e])])
            lo, hi = model.row_lo[i], model.row_hi[i]
            if np.isfinite(lo) and np.isfinite(hi) and lo == hi:
                prob += pulp.LpConstraint(expr, pulp.LpConstraintEQ, f"r{i}", float(lo))
                cons.append((i, f"r{i}"))
                continue
            if np.isfinite(lo):
                prob += pulp.LpConstraint(expr, pulp.LpConstraintGE, f"r{i}l", float(lo))
                cons.append((i, f"r{i}l"))
            if np.isfinite(hi):
                prob += pulp.LpConstraint(expr, pulp.LpConstraintLE, f"r{i}h", float(hi))
                cons.append((i, f"r{i}h"))
        is_mip = bool(model.integer.any())
        kw = dict(msg=bool(self.verbose), mip=is_mip)
        if math.isfinite(time_limit):
            # CBC's -sec takes fractions (a ceil overran by up to 1 s); CBC itself runs up to ~1.3 s past it (its
            # start, the model file, the cuts before its first time check): that much is kept back
            kw["timeLimit"] = max(0.1, round(float(time_limit) - min(1.0, 0.1 * float(time_limit)), 2))
        if self.threads:
            kw["threads"] = int(self.threads)
        if is_mip:
            kw["gapRel"] = 1e-9
            kw["gapAbs"] = 1e-9
            kw["options"] = ["increment 1e-9"]
        with maybe_solver_output(self.verbose):
            prob.solve(_cbc_command(pulp, kw))
        dt = time.perf_counter() - t0
        st = prob.sol_status
        out = SolveOutcome(SolveStatus.ERROR, time_s=dt, solver=self.name,
                           message=f"cbc: {pulp.LpStatus.get(prob.status)}/{pulp.LpSolution.get(st)}")
        have = st in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
        if have:
            out.x = np.array([v.varValue if v.varValue is not None else 0.0 for v in V], dtype=np.float64)
            out.objective = float(model.cost @ out.x + model.offset)
        if st == pulp.LpSolutionOptimal:
            out.status = SolveStatus.OPTIMAL
            out.bound = out.objective
            if not is_mip:
                y = np.zeros(model.n_rows)
                by_name = getattr(prob, "get_constraint_by_name", None) or prob.constraints.__getitem__
                for i, name in cons:
                    pi = by_name(name).pi
                    if pi is not None:
                        y[i] += float(pi)
                out.row_dual = y
        elif st == pulp.LpSolutionInfeasible:
            out.status = SolveStatus.INFEASIBLE
        elif st == pulp.LpSolutionIntegerFeasible or (st == pulp.LpSolutionNoSolutionFound and
                                                      dt >= 0.9 * time_limit):
            out.status = SolveStatus.TIME_LIMIT
        return out


register_solver("cbc", CbcAdapter)
