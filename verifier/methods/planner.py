"""``auto``'s planner: from the problem's features (``verifier.methods.features``) an ordered schedule of methods,
each with its share of the time, and whether the first MILP races the next step in a second process.

The rules (``PlanSettings`` holds their thresholds; ``PlanSettings.schedule`` replaces them with a fixed schedule):
- networks with nonlinearities other than ReLU are not planned here (``verifier.methods.bab`` handles them);
- the exact MILP where CROWN leaves few ReLUs unstable: up to ``milp_max_unstable`` where Gurobi is installed and
  its licence covers the model's estimated size, up to ``milp_max_unstable_highs`` with HiGHS;
- then input splitting where the input has at most ``input_split_max_dim`` dimensions, else ReLU splitting (which
  refines its root's intermediate bounds by MILP where it pays: ``verifier.bab.portfolio``);
- with two or more cores the MILP races the splitting search (each answer of either is sound: the first ends the
  run); on one core it runs first with ``milp_share`` of the time, or second, after input splitting's share, where the
  input has at most ``split_first_max_dim`` dimensions.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from verifier.methods.features import Features
from verifier.settings.plan import PlanSettings


@dataclass(frozen=True)
class Plan:
    steps: tuple[str, ...]  # in order (``verifier.settings.plan.STEPS``)
    shares: tuple[float, ...]  # the share of the time left of each step but the last
    race: bool  # the first step (a MILP) runs in a second process beside the second step
    solver: str  # the MILP's solver
    why: str  # the features that decided, in words

    def describe(self) -> str:
        if self.race:
            order = f"{self.steps[0]} ({self.solver}) racing {' then '.join(self.steps[1:])}"
        else:
            parts = [f"{s} ({self.solver})" if s == "milp" else s for s in self.steps]
            order = " then ".join(f"{p} [{f:.0%}]" for p, f in zip(parts, self.shares)) + \
                (" then " if len(parts) > 1 else "") + parts[-1]
        return f"{order}; {self.why}"


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def milp_solver(f: Features, settings: PlanSettings) -> str:
    """Gurobi where it is installed and its licence covers the model's estimated size, else HiGHS."""
    fits = not settings.licence_size or (f.milp_vars is not None and f.milp_vars <= settings.licence_size and
                                         f.milp_rows <= settings.licence_size)
    return "gurobi" if f.gurobi and fits else "highs"


def make_plan(f: Features, settings: PlanSettings, input_split_max_dim: int, n_cores: int | None = None) -> Plan:
    """The schedule for a ReLU network with features ``f`` (``input_split_max_dim``: ``BaBSettings``')."""
    n_cores = cores() if n_cores is None else n_cores
    solver = milp_solver(f, settings)
    split = "input-split" if f.n_inputs <= input_split_max_dim else "relu-split"
    if settings.schedule:
        steps, why = settings.schedule, "the schedule set in plan.schedule"
    else:
        limit = settings.milp_max_unstable if solver == "gurobi" else settings.milp_max_unstable_highs
        use_milp = f.n_unstable is not None and f.n_unstable <= limit
        few = "at most" if split == "input-split" else "more than"
        unstable = "unstable not counted" if f.n_unstable is None else \
            f"{f.n_unstable} unstable after CROWN ({'at most' if use_milp else 'more than'} {limit} for a MILP " \
            f"with {solver})"
        why = f"{f.n_inputs} inputs ({few} {input_split_max_dim}), {f.n_relu} ReLUs, {unstable}"
        steps = ("milp", split) if use_milp else (split,)
    race = bool(len(steps) > 1 and steps[0] == "milp" and
                (settings.race if settings.race is not None else n_cores >= 2))
    if not race and not settings.schedule and len(steps) > 1 and f.n_inputs <= settings.split_first_max_dim:
        steps = (split, "milp")
    shares = settings.shares or tuple(settings.milp_share if s == "milp" else 0.5 for s in steps[:-1])
    if len(shares) < len(steps) - 1:
        shares = shares + (0.5,) * (len(steps) - 1 - len(shares))
    return Plan(tuple(steps), tuple(shares[:len(steps) - 1]), race, solver, why)
