"""Typed settings passed down from the CLI / API (no global configuration)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .bounds.objective import BoundSettings


@dataclass(frozen=True)
class AttackSettings:
    restarts: int = 64  # random starting points per disjunct and round
    steps: int = 100  # PGD steps per round
    rounds: int = 1000  # rounds of restarts while time remains
    step_size: float = 0.1  # fraction of the box width per step, decayed
    seed: int = 0


@dataclass(frozen=True)
class VerifyOptions:
    method: str = "auto"
    timeout: float = 300.0  # seconds, whole run
    device: str = "cpu"
    dtype: str = "float32"  # float32 | float64 (bound computations)
    solver: str = "highs"  # MILP/LP solver: highs | gurobi | cbc
    attack: AttackSettings = field(default_factory=AttackSettings)
    bounds: BoundSettings = field(default_factory=BoundSettings)
    attack_first: bool = True  # run a short attack before bounding
    verbose: bool = False
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0: torch's default (every physical core, or OMP_NUM_THREADS)
