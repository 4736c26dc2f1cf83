"""The settings of one run: ``VerifyOptions`` (the method, the budget, the device) with the attack, bound and
branch-and-bound settings (``AttackSettings``, ``BoundSettings``, ``BaBSettings``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from verifier.settings.bab import BaBSettings
from verifier.settings.bounds import BoundSettings
from verifier.settings.inputs import LimitSettings, ModelCheckSettings
from verifier.settings.plan import PlanSettings


@dataclass(frozen=True)
class AttackSettings:
    restarts: int = 64  # random starting points per disjunct and round
    steps: int = 100  # PGD steps per round
    rounds: int = 1000  # rounds of restarts while time remains
    step_size: float = 0.1  # fraction of the box width per step, decayed
    seed: int = 0  # random seed of every attack (`verify --seed`)


@dataclass(frozen=True)
class VerifyOptions:
    method: str = "auto"  # a registered method (`verify methods`)
    timeout: float = 300.0  # seconds, whole run
    device: str = "cpu"  # cpu, cuda or cuda:N
    dtype: Literal["float32", "float64"] = "float32"  # precision of the bound computations
    solver: Literal["highs", "gurobi", "cbc"] = "highs"  # MILP/LP solver of the methods milp and lp
    threads: int = 0  # torch CPU threads; 0: torch's default (every physical core, or OMP_NUM_THREADS)
    verbose: bool = False  # solver output (milp, lp) in the log
    attack: AttackSettings = field(default_factory=AttackSettings)
    bounds: BoundSettings = field(default_factory=BoundSettings)
    bab: BaBSettings = field(default_factory=BaBSettings)
    plan: PlanSettings = field(default_factory=PlanSettings)  # auto's schedule (verifier.methods.planner)
    limits: LimitSettings = field(default_factory=LimitSettings)
    model_check: ModelCheckSettings = field(default_factory=ModelCheckSettings)
