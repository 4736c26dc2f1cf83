"""Settings of the bound computations (IBP, CROWN, alpha-CROWN)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

METHODS = ("ibp", "crown", "alpha-crown")


@dataclass(frozen=True)
class BoundSettings:
    method: Literal["ibp", "crown", "alpha-crown"] = "crown"  # the bound of --method crown etc.: set by the method
    alpha_iters: int = 30
    alpha_lr: float = 0.25
    lr_decay: float = 0.98
    # alpha-CROWN also optimises the slopes of every intermediate layer's bounds (alpha_intermediate)
    intermediate_alpha: bool = True

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown bound method {self.method!r}; choose from {', '.join(METHODS)}")
