"""Schedules of certified training: the epsilon ramp and the loss mixes, as functions of training progress.

Progress ``t`` runs from 0 (first batch) to 1 (end of the last epoch). Before ``ramp_start`` the radius is 0 and
the loss natural; between ``ramp_start`` and ``ramp_end`` the radius grows linearly to ``eps`` (Gowal et al.'s
ramp), the natural-loss weight ``kappa`` falls from 1 to ``kappa_end`` and CROWN-IBP's ``beta`` (the weight of
the CROWN-IBP bound against the plain IBP one) from 1 to 0 (Zhang et al.); after ``ramp_end`` all stay put."""
from __future__ import annotations

from verifier.settings.training import TrainSettings


def progress(epoch: int, batch: int, n_batches: int, epochs: int) -> float:
    """Training progress in [0, 1] at ``batch`` (0-based) of ``epoch`` (0-based)."""
    return min(1.0, (epoch + batch / max(1, n_batches)) / max(1, epochs))


def ramp(settings: TrainSettings, t: float) -> float:
    """The ramp's position in [0, 1] at progress ``t``."""
    a, b = settings.ramp_start, settings.ramp_end
    if t >= b:
        return 1.0
    if t < a:
        return 0.0
    return (t - a) / (b - a)


def eps_at(settings: TrainSettings, t: float) -> float:
    return settings.eps * ramp(settings, t)


def kappa_at(settings: TrainSettings, t: float) -> float:
    """Weight of the natural loss: ``kappa * natural + (1 - kappa) * certified``."""
    return 1.0 - (1.0 - settings.kappa_end) * ramp(settings, t)


def beta_at(settings: TrainSettings, t: float) -> float:
    """Weight of CROWN-IBP's bound against IBP's: ``beta * crown_ibp + (1 - beta) * ibp``."""
    return 1.0 - ramp(settings, t)
