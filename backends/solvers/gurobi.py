"""Gurobi adapter (gurobipy): a model per solve, or a model kept open (``GurobiSession``).

The pip wheel carries a size-limited licence (about 2000 variables and 2000
constraints). Gurobi reports it as ``GurobiError`` code 10010 ("Model too large
for size-limited license"); this adapter turns that (and a missing or broken
licence) into ``SolverUnavailable``, which ``FallbackSolver`` answers by running
HiGHS with a clear message.

Output: the environment is made empty with ``OutputFlag`` and ``LogToConsole`` 0 before it starts (a
started default environment prints the licence banner, "Restricted license ...", on stdout); with
``verbose`` the log is on and goes to stderr (``quiet.solver_output(python=True)`` around the start and
the solves: gurobipy writes its log through Python's ``sys.stdout``).
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp

from backends.solvers.base import ModelSession, SolveOutcome, SolverAdapter, SolverUnavailable, SolveStatus, StopRule
from backends.solvers.quiet import maybe_solver_output
from backends.solvers.registry import register_solver

SIZE_LIMIT_CODE = 10010
LICENSE_CODES = {10009, 10010}  # no/invalid licence, model too large for the licence


@contextmanager
def licence_errors(gp):
    """Gurobi's licence errors (``LICENSE_CODES``) raised inside the block become ``SolverUnavailable``."""
    try:
        yield
    except gp.GurobiError as e:
        if e.errno in LICENSE_CODES:
            raise SolverUnavailable(f"Gurobi error {e.errno}: {e}") from None
        raise


class GurobiSession(ModelSession):
    """A Gurobi model kept open; ``bound`` sets its objective (``Obj``, ``ObjCon``), solves, reads ``ObjBound``."""

    def __init__(self, gp, GRB, m, x, verbose: bool = False):
        self._gp, self._GRB, self._m, self._x = gp, GRB, m, x
        self._verbose = verbose

    def bound(self, cost, offset=0.0, time_limit=math.inf, stop_at=None):
        m, GRB = self._m, self._GRB
        with licence_errors(self._gp), maybe_solver_output(self._verbose, python=True):
            self._x.Obj = cost
            m.ObjCon = float(offset)
            m.Params.TimeLimit = max(0.01, float(time_limit)) if math.isfinite(time_limit) else GRB.INFINITY
            m.Params.BestBdStop = GRB.INFINITY if stop_at is None else float(stop_at)
            m.optimize()
        try:
            b = float(m.ObjBound)
        except (self._gp.GurobiError, AttributeError):  # no bound (interrupted before the root relaxation)
            return None
        return b if math.isfinite(b) else None

    def close(self):
        if self._m is not None:
            self._m.dispose()
            self._m = None


class GurobiAdapter(SolverAdapter):
    name = "gurobi"
    feasibility_tolerance = 1e-6
    int_feasibility_tolerance = 1e-6

    def tolerance(self) -> float:
        return max(self.feasibility_tolerance, self.int_feasibility_tolerance)

    def _build(self, model, time_limit):
        try:
            import gurobipy as gp
            from gurobipy import GRB
        except ImportError as e:  # pragma: no cover - gurobipy is installed here
            raise SolverUnavailable(f"gurobipy not importable: {e}") from None
        with licence_errors(gp), maybe_solver_output(self.verbose, python=True):  # "Set parameter ..." lines too
            env = gp.Env(empty=True)
            env.setParam("OutputFlag", 1 if self.verbose else 0)
            env.setParam("LogToConsole", 1 if self.verbose else 0)
            env.start()
            m = gp.Model(env=env)
            m.Params.FeasibilityTol = self.feasibility_tolerance
            m.Params.IntFeasTol = self.int_feasibility_tolerance
            m.Params.MIPGap = 1e-7  # default 1e-4: a reported optimum should be the optimum
            m.Params.MIPGapAbs = 1e-9
            if self.threads:
                m.Params.Threads = int(self.threads)
            if math.isfinite(time_limit):
                m.Params.TimeLimit = max(0.01, float(time_limit))
            vtype = np.where(model.integer, GRB.INTEGER, GRB.CONTINUOUS)
            lb = np.where(np.isfinite(model.lb), model.lb, -GRB.INFINITY)
            ub = np.where(np.isfinite(model.ub), model.ub, GRB.INFINITY)
            x = m.addMVar(model.n_vars, lb=lb, ub=ub, vtype=vtype)
            A = sp.csr_matrix(model.A)
            lo, hi = model.row_lo, model.row_hi
            eq = np.isfinite(lo) & np.isfinite(hi) & (lo == hi)
            ge = np.isfinite(lo) & ~eq
            le = np.isfinite(hi) & ~eq
            # rows in the model's order, so duals map back: equalities, then >=, then <= parts
            groups = []
            for mask, sense, rhs in ((eq, "=", lo), (ge, ">", lo), (le, "<", hi)):
                rows = np.nonzero(mask)[0]
                if rows.size:
                    c = m.addMConstr(A[rows], x, sense, rhs[rows])
                    groups.append((rows, c))
            m.setObjective(model.cost @ x + model.offset, GRB.MINIMIZE)
            m.update()
            return gp, GRB, m, x, groups

    def missing(self) -> str:
        try:
            import gurobipy  # noqa: F401
        except ImportError as e:
            return f"gurobipy: {e}"
        return ""

    def open(self, model, gap=None, abs_gap=None) -> GurobiSession:
        """The model built as for ``solve`` (no time limit), with the MIP gaps given replacing the adapter's."""
        gp, GRB, m, x, _ = self._build(model, math.inf)
        with maybe_solver_output(self.verbose, python=True):
            if gap is not None:
                m.Params.MIPGap = gap
            if abs_gap is not None:
                m.Params.MIPGapAbs = abs_gap
        return GurobiSession(gp, GRB, m, x, self.verbose)

    def solve(self, model, time_limit: float = math.inf, stop: StopRule | None = None) -> SolveOutcome:
        t0 = time.perf_counter()
        gp, GRB, m, x, groups = self._build(model, time_limit)
        is_mip = bool(model.integer.any())
        accepted: dict = {}

        def callback(mdl, where):
            if stop is None:
                return
            if where == GRB.Callback.MIP and stop.bound_above is not None:
                if mdl.cbGet(GRB.Callback.MIP_OBJBND) > stop.bound_above:
                    mdl.terminate()
            elif where == GRB.Callback.MIPSOL and stop.on_solution is not None:
                v = np.array(mdl.cbGetSolution(x.tolist()), dtype=np.float64)
                obj = float(mdl.cbGet(GRB.Callback.MIPSOL_OBJ))
                if stop.on_solution(v, obj):
                    accepted["x"], accepted["obj"] = v, obj
                    mdl.terminate()

        with licence_errors(gp), maybe_solver_output(self.verbose, python=True):
            m.optimize(callback if (is_mip and stop is not None) else None)
        dt = time.perf_counter() - t0
        st = m.Status
        out = SolveOutcome(SolveStatus.ERROR, time_s=dt, solver=self.name, message=f"gurobi status {st}")
        if m.SolCount > 0:
            out.x = np.array(x.X, dtype=np.float64)
            out.objective = float(m.ObjVal)
        if accepted:
            out.x, out.objective = accepted["x"], accepted["obj"]
        if is_mip:
            out.nodes = int(m.NodeCount)
            try:
                bd = float(m.ObjBound)
                out.bound = bd if math.isfinite(bd) else None
            except (gp.GurobiError, AttributeError):
                out.bound = None
        if st == GRB.OPTIMAL:
            out.status = SolveStatus.OPTIMAL
            if not is_mip:
                y = np.zeros(model.n_rows)
                for rows, c in groups:
                    y[rows] += np.asarray(c.Pi, dtype=np.float64)
                out.row_dual = y
                out.bound = out.objective
        elif st in (GRB.INFEASIBLE, GRB.INF_OR_UNBD):
            out.status = SolveStatus.INFEASIBLE
        elif st == GRB.TIME_LIMIT:
            out.status = SolveStatus.TIME_LIMIT
        elif st in (GRB.INTERRUPTED, GRB.USER_OBJ_LIMIT):
            out.status = SolveStatus.STOPPED
        m.dispose()
        return out


register_solver("gurobi", GurobiAdapter)
