"""HiGHS adapter (highspy): the default LP/MILP solver.

Early termination for decision problems uses HiGHS callbacks: the MIP interrupt
callback stops once the dual bound passes ``StopRule.bound_above``, the
improving-solution callback hands each incumbent to ``StopRule.on_solution``.

Output: HiGHS prints its banner on file descriptor 1 when the process's first ``Highs()`` is made,
whatever its options say, so every ``Highs()`` is made inside ``quiet.solver_output()`` (fd 1 sent to
stderr); the log (``output_flag``) is on only when ``verbose``, and then the solves run inside it too.

Time: HiGHS's MIP presolve does not look at ``time_limit`` (measured: 13.6 s of presolve on an mnist_fc
256x6 MILP given 5 s), so a MIP with a time limit is solved in a thread of its own (HiGHS releases the
GIL) and given up on ``ABANDON_SLACK_S`` after its limit: a ``TIME_LIMIT`` outcome without a point or a
bound, the thread left to finish alone (HiGHS stops at the first time check after presolve; the
interpreter's exit waits for it).
"""
from __future__ import annotations

import math
import threading
import time

import highspy
import numpy as np
import scipy.sparse as sp

from backends.solvers.base import SolveOutcome, SolverAdapter, SolveStatus, StopRule
from backends.solvers.quiet import maybe_solver_output, solver_output
from backends.solvers.registry import register_solver


def _import():
    return highspy


ABANDON_SLACK_S = 0.25  # seconds past its time limit (plus 5% of it) after which a MIP solve is given up on


def _run_within(h, time_limit: float) -> bool:
    """``h.run()``, given up on (False) where it has not returned ``ABANDON_SLACK_S`` after ``time_limit``."""
    if not math.isfinite(time_limit):
        h.run()
        return True
    done = threading.Event()

    def solve():
        try:
            h.run()
        finally:
            done.set()

    # not a daemon: an interpreter that exits while HiGHS runs aborts ("terminate called without an active
    # exception"), so a normal exit waits for it; `verify` as a program ends with os._exit and does not
    threading.Thread(target=solve, name="highs-mip", daemon=False).start()
    return done.wait(time_limit * 1.05 + ABANDON_SLACK_S)


class HighsAdapter(SolverAdapter):
    name = "highs"
    mip_feasibility_tolerance = 1e-6
    primal_feasibility_tolerance = 1e-7
    mip_rel_gap = 1e-7
    mip_abs_gap = 1e-9

    def _new(self, time_limit: float):
        hs = _import()
        with solver_output():  # the banner of the process's first Highs() is printed on fd 1
            h = hs.Highs()
            h.setOptionValue("output_flag", bool(self.verbose))
        if self.threads:
            h.setOptionValue("threads", int(self.threads))
        if math.isfinite(time_limit):
            h.setOptionValue("time_limit", max(0.01, float(time_limit)))
        h.setOptionValue("mip_feasibility_tolerance", self.mip_feasibility_tolerance)
        h.setOptionValue("primal_feasibility_tolerance", self.primal_feasibility_tolerance)
        # optimality gaps tight enough that a reported optimum is the optimum (the default 1e-4 relative gap
        # left HiGHS 8e-6 above Gurobi and CBC on an mnist_fc MILP); decisions use the dual bound anyway
        h.setOptionValue("mip_rel_gap", self.mip_rel_gap)
        h.setOptionValue("mip_abs_gap", self.mip_abs_gap)
        return h

    @staticmethod
    def _lp(model):
        hs = _import()
        lp = hs.HighsLp()
        A = sp.csc_matrix(model.A)
        lp.num_col_ = model.n_vars
        lp.num_row_ = model.n_rows
        lp.col_cost_ = np.asarray(model.cost, dtype=np.float64)
        lp.col_lower_ = np.asarray(model.lb, dtype=np.float64)
        lp.col_upper_ = np.asarray(model.ub, dtype=np.float64)
        lp.row_lower_ = np.asarray(model.row_lo, dtype=np.float64)
        lp.row_upper_ = np.asarray(model.row_hi, dtype=np.float64)
        lp.offset_ = float(model.offset)
        lp.a_matrix_.format_ = hs.MatrixFormat.kColwise
        lp.a_matrix_.start_ = A.indptr.astype(np.int32)
        lp.a_matrix_.index_ = A.indices.astype(np.int32)
        lp.a_matrix_.value_ = A.data.astype(np.float64)
        lp.a_matrix_.num_col_ = model.n_vars
        lp.a_matrix_.num_row_ = model.n_rows
        if model.integer.any():
            lp.integrality_ = [hs.HighsVarType.kInteger if i else hs.HighsVarType.kContinuous for i in model.integer]
        return lp

    def tolerance(self) -> float:
        return max(self.mip_feasibility_tolerance, self.primal_feasibility_tolerance)

    def solve(self, model, time_limit: float = math.inf, stop: StopRule | None = None) -> SolveOutcome:
        hs = _import()
        t0 = time.perf_counter()
        h = self._new(time_limit)
        with maybe_solver_output(self.verbose):
            h.passModel(self._lp(model))
        is_mip = bool(model.integer.any())
        accepted: dict = {}
        if is_mip and stop is not None:
            if stop.bound_above is not None:
                target = float(stop.bound_above)

                def on_interrupt(e):
                    if e.data_out.mip_dual_bound > target:
                        e.interrupt()

                h.cbMipInterrupt.subscribe(on_interrupt)
            if stop.on_solution is not None:
                def on_improving(e):
                    v = np.array(e.data_out.mip_solution, dtype=np.float64)
                    obj = float(e.data_out.objective_function_value)
                    if stop.on_solution(v, obj):
                        accepted["x"], accepted["obj"] = v, obj

                def on_interrupt_sol(e):
                    if accepted:
                        e.interrupt()

                h.cbMipImprovingSolution.subscribe(on_improving)
                h.cbMipInterrupt.subscribe(on_interrupt_sol)
        finished = True
        with maybe_solver_output(self.verbose):
            if is_mip:
                finished = _run_within(h, time_limit)
            else:
                h.run()
        if not finished:  # still in presolve, past its time limit: no point, no bound
            return SolveOutcome(SolveStatus.TIME_LIMIT, time_s=time.perf_counter() - t0, solver=self.name,
                                message="HiGHS did not stop at its time limit (presolve); given up on")
        ms = h.getModelStatus()
        info = h.getInfo()
        dt = time.perf_counter() - t0
        M = hs.HighsModelStatus
        sol = h.getSolution()
        x = np.array(sol.col_value, dtype=np.float64) if sol.value_valid else None
        obj = float(info.objective_function_value) if x is not None else None
        if accepted:
            x, obj = accepted["x"], accepted["obj"]
        out = SolveOutcome(SolveStatus.ERROR, obj, None, x, None, dt, self.name, h.modelStatusToString(ms))
        if is_mip:
            out.nodes = int(info.mip_node_count)
            db = float(info.mip_dual_bound)
            out.bound = db if math.isfinite(db) else None
        if ms == M.kOptimal:
            out.status = SolveStatus.OPTIMAL
            if not is_mip:
                out.row_dual = np.array(sol.row_dual, dtype=np.float64) if sol.dual_valid else None
                out.bound = obj
        elif ms == M.kInfeasible:
            out.status = SolveStatus.INFEASIBLE
        elif ms == M.kTimeLimit:
            out.status = SolveStatus.TIME_LIMIT
        elif ms in (M.kInterrupt, M.kHighsInterrupt, M.kObjectiveBound, M.kObjectiveTarget, M.kSolutionLimit):
            out.status = SolveStatus.STOPPED
        return out

    def solve_objectives(self, model, costs, time_limit=math.inf):
        """One LP, many cost vectors: HiGHS keeps the basis between solves (warm start)."""
        hs = _import()
        t_end = time.monotonic() + time_limit
        h = self._new(time_limit)
        with maybe_solver_output(self.verbose):
            h.passModel(self._lp(model.relaxed()))
        idx = np.arange(model.n_vars, dtype=np.int32)
        out = []
        for c, off in costs:
            left = t_end - time.monotonic()
            if left <= 0:
                out.append(SolveOutcome(SolveStatus.TIME_LIMIT, solver=self.name))
                continue
            t0 = time.perf_counter()
            h.setOptionValue("time_limit", max(0.01, left))
            h.changeColsCost(len(idx), idx, np.asarray(c, dtype=np.float64))
            with maybe_solver_output(self.verbose):
                h.run()
            ms = h.getModelStatus()
            sol = h.getSolution()
            o = SolveOutcome(SolveStatus.ERROR, None, None, None, None, time.perf_counter() - t0, self.name,
                             h.modelStatusToString(ms))
            if ms == hs.HighsModelStatus.kOptimal:
                o.status = SolveStatus.OPTIMAL
                o.objective = float(h.getInfo().objective_function_value) + off
                o.row_dual = np.array(sol.row_dual, dtype=np.float64) if sol.dual_valid else None
                o.x = np.array(sol.col_value, dtype=np.float64)
            elif ms == hs.HighsModelStatus.kTimeLimit:
                o.status = SolveStatus.TIME_LIMIT
            out.append(o)
        return out


register_solver("highs", HighsAdapter)
