"""Settings of ``verify train`` (training for verifiability, ``verifier.training``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ARCHS = ("mlp", "cnn")
MODES = ("standard", "fgsm", "pgd", "ibp", "crown-ibp", "noise")
NORMS = ("linf", "l2")
LIPSCHITZ = ("none", "spectral", "orthogonal")
ACTIVATIONS = ("relu", "maxmin", "groupsort")
EVAL_BOUNDS = ("ibp", "crown")


@dataclass(frozen=True)
class TrainSettings:
    """One training run: data, architecture, training mode and its schedule, evaluation.

    ``hidden``: the MLP's hidden widths, or the CNN's two conv channel counts. ``eps``: the training (and
    evaluation) radius in ``norm``; ``ibp`` / ``crown-ibp`` train on l_inf boxes only. The adversarial and
    certified modes ramp the radius linearly from 0 to ``eps`` between epochs ``ramp_start * epochs`` and
    ``ramp_end * epochs``; the certified ones mix the losses as ``kappa * natural + (1 - kappa) * certified`` with
    ``kappa`` going from 1 to ``kappa_end`` over the same ramp; ``crown-ibp`` uses
    ``beta * CROWN-IBP + (1 - beta) * IBP`` with ``beta`` going from 1 to 0. ``sigma``: the noise of ``noise``
    training (for ``verify smooth``). ``group_size``: GroupSort's group (MaxMin is GroupSort with groups of 2).
    ``eval_bound``: the bound of the log's verified accuracy; ``eval_max``: test examples per evaluation (0: all)."""

    data: str = "digits"
    arch: Literal["mlp", "cnn"] = "mlp"
    hidden: tuple[int, ...] = (64, 64)
    mode: Literal["standard", "fgsm", "pgd", "ibp", "crown-ibp", "noise"] = "standard"
    norm: Literal["linf", "l2"] = "linf"
    eps: float = 0.05
    epochs: int = 20
    lr: float = 2e-3
    batch_size: int = 64
    seed: int = 0
    lipschitz: Literal["none", "spectral", "orthogonal"] = "none"
    activation: Literal["relu", "maxmin", "groupsort"] = "relu"
    group_size: int = 4
    sigma: float = 0.25
    attack_steps: int = 7  # PGD steps of pgd training
    eval_attack_steps: int = 20  # PGD steps of the log's PGD accuracy
    ramp_start: float = 0.0
    ramp_end: float = 0.5
    kappa_end: float = 0.5
    eval_bound: Literal["ibp", "crown"] = "crown"
    eval_max: int = 0
    eval_every: int = 1  # evaluate every this many epochs (and always after the last)
    test_fraction: float = 0.3
    threads: int = 1

    def __post_init__(self):
        for name, allowed in (("arch", ARCHS), ("mode", MODES), ("norm", NORMS), ("lipschitz", LIPSCHITZ),
                              ("activation", ACTIVATIONS), ("eval_bound", EVAL_BOUNDS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose from {', '.join(allowed)}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive integers, got {self.hidden}")
        if self.arch == "cnn" and len(self.hidden) != 2:
            raise ValueError("--arch cnn takes two --hidden values (the two conv layers' channels)")
        for name in ("epochs", "batch_size", "attack_steps", "eval_attack_steps", "eval_every", "threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("eps", "sigma", "eval_max"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not (0 <= self.ramp_start <= self.ramp_end <= 1):
            raise ValueError("the epsilon ramp needs 0 <= ramp_start <= ramp_end <= 1")
        if not (0 <= self.kappa_end <= 1):
            raise ValueError(f"kappa_end must be in [0, 1], got {self.kappa_end}")
        if not (0 < self.test_fraction < 1):
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.mode in ("ibp", "crown-ibp") and self.norm != "linf":
            raise ValueError(f"--mode {self.mode} trains on l_inf boxes: use --norm linf")
        if self.activation != "relu":
            if self.arch != "mlp":
                raise ValueError(f"--activation {self.activation} needs --arch mlp (it acts on vectors)")
            g = 2 if self.activation == "maxmin" else self.group_size
            if g < 2:
                raise ValueError(f"group_size must be at least 2, got {g}")
            if any(int(h) % g for h in self.hidden):
                raise ValueError(f"--activation {self.activation}: every hidden size must be a multiple of {g}")
        if self.lipschitz == "orthogonal" and self.arch != "mlp":
            raise ValueError("--lipschitz orthogonal needs --arch mlp (Björck orthogonalises matrices); "
                             "use spectral for convolutions")

    @property
    def groups(self) -> int:
        """The activation's group size (1 for ReLU)."""
        return {"relu": 1, "maxmin": 2}.get(self.activation, self.group_size)
