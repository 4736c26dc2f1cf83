"""Settings of ``auto``'s planner (``verifier.methods.planner``): which methods it schedules, with what share of
the time, and whether it races two of them in separate processes."""
from __future__ import annotations

from dataclasses import dataclass

STEPS = ("milp", "input-split", "relu-split")  # what a schedule may hold (the attack is part of every step)


@dataclass(frozen=True)
class PlanSettings:
    # the steps auto runs after CROWN and the first attack, in order, each with its share of the time left (the last
    # takes the rest); empty: the planner picks them from features of the problem (``verify -v`` prints its pick)
    schedule: tuple[str, ...] = ()
    shares: tuple[float, ...] = ()  # the share of each step but the last (empty: ``milp_share`` for a MILP, else 0.5)
    # run the first MILP step in a second process, side by side with the next step (the first sound answer wins and
    # the other is stopped at once); None: when the machine has at least two cores
    race: bool | None = None
    milp_share: float = 0.4  # share of the time left of a MILP step that does not race
    # the exact MILP is scheduled where CROWN leaves at most this many ReLUs unstable: with Gurobi where its licence
    # covers the model (a 30-64-64-3 net with 128 ReLUs: 1-2 s per instance where input splitting ran out of 20 s) ...
    milp_max_unstable: int = 400
    milp_max_unstable_highs: int = 60  # ... with HiGHS otherwise (8-15x slower on these models than Gurobi)
    # without a race, input splitting runs before the MILP where the input has at most this many dimensions (ACAS Xu
    # 2_7 prop_4, 5 inputs: input splitting 1.5 s, the MILP 12.7 s; 1_1 prop_5: MILP first then splitting timed out
    # at 116 s, splitting alone 68 s), and after it elsewhere
    split_first_max_dim: int = 8
    licence_size: int = 2000  # variables and constraints Gurobi's size-limited licence covers (0: no limit)

    def __post_init__(self):
        bad = [s for s in self.schedule if s not in STEPS]
        if bad:
            raise ValueError(f"PlanSettings.schedule: unknown step {bad[0]!r}; choose from {', '.join(STEPS)}")
        if any(not 0.0 < f < 1.0 for f in self.shares):
            raise ValueError("PlanSettings.shares: each share must be in (0, 1)")
        if not 0.0 < self.milp_share < 1.0:
            raise ValueError(f"PlanSettings.milp_share must be in (0, 1), not {self.milp_share!r}")
