"""Settings of the robustness commands: the black-box attacks (``verify attack-blackbox``) and the radius
brackets (``verify radius``), as frozen dataclasses (no torch)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Norm = Literal["linf", "l2"]


@dataclass(frozen=True)
class SubstituteSettings:
    """Papernot et al. 2017: the substitute trained with Jacobian-based dataset augmentation."""

    initial: int = 150  # initial substitute training set (held-out examples, labelled by the oracle)
    rounds: int = 6  # substitute training epochs rho (augmentation rounds)
    lam: float = 0.1  # lambda: step of the Jacobian augmentation
    tau: int = 3  # lambda changes sign every tau rounds (the periodic step size of the paper)
    reservoir: int = 400  # kappa: points augmented per round once reservoir sampling starts (0: never)
    reservoir_from: int = 3  # sigma: the first round that uses reservoir sampling
    hidden: tuple[int, ...] = (200, 200)  # the substitute MLP's hidden layers
    epochs: int = 60  # training epochs of the substitute in each round
    seed: int = 0


@dataclass(frozen=True)
class TransferSettings:
    """The attack crafted on the substitute and transferred to the real model."""

    attack: Literal["fgsm", "pgd"] = "fgsm"
    eps: float = 0.3  # perturbation budget in ``norm``
    norm: Norm = "linf"
    steps: int = 20  # PGD steps (FGSM: one)
    domain: tuple[float, float] | None = (0.0, 1.0)  # valid input range (None: unbounded)


@dataclass(frozen=True)
class ScoreAttackSettings:
    """SimBA (Guo et al. 2019), the query-efficient score-based baseline."""

    queries: int = 1000  # score queries per example
    step: float | None = None  # step per coordinate (None: eps for l_inf, min(eps, 0.2) for l2)
    seed: int = 0


@dataclass(frozen=True)
class BlackboxSettings:
    substitute: SubstituteSettings = field(default_factory=SubstituteSettings)
    transfer: TransferSettings = field(default_factory=TransferSettings)
    score: ScoreAttackSettings = field(default_factory=ScoreAttackSettings)
    noise_tries: int = 1  # random perturbations per example in the noise baseline
    threads: int = 1  # torch CPU threads


@dataclass(frozen=True)
class RadiusSettings:
    """The bracket [certified, attacked] on each example's minimal adversarial perturbation."""

    norm: Norm = "linf"
    methods: tuple[str, ...] = ("crown", "alpha-crown")  # verifier methods of the certified binary search
    time_per_call: float = 10.0  # seconds of each verifier call
    tol: float = 0.01  # stop a binary search when (hi - lo) <= tol * hi
    max_steps: int = 12  # at most this many verifier calls per method and example
    eps_max: float = 1.0  # the largest radius searched
    domain: tuple[float, float] | None = (0.0, 1.0)  # valid input range (None: unbounded)
    attack_steps: int = 100  # PGD steps of the upper end's attack
    attack_restarts: int = 16
    attack_rounds: int = 2  # PGD rounds of restarts per attack call
    attack_search_steps: int = 12  # at most this many attack calls in the binary search of the attacked end
    attack_time: float = 10.0  # seconds per attack call
    blackbox: bool = True  # SimBA where PGD finds nothing
    blackbox_queries: int = 2000
    lipschitz: bool = True  # the Lipschitz certified radius (l2; in l_inf the l2 radius / sqrt(n))
    smoothing_sigma: float = 0.0  # > 0: report randomized smoothing's l2 radius apart (probabilistic)
    smoothing_n: int = 2000
    seed: int = 0
    threads: int = 1
