"""The training loop of ``verify train``: seeded, with a progress line on stderr and a CSV log of each epoch's
loss and clean, PGD and verified test accuracy at the training radius."""
from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from verifier.certificates.threads import torch_threads
from verifier.settings.training import TrainSettings
from verifier.training.attacks import fgsm, pgd
from verifier.training.evaluate import clean_accuracy, pgd_accuracy, verified_accuracy
from verifier.training.losses import certified_loss
from verifier.training.models import build_model, refresh_normalisation
from verifier.training.plan import bound_graph
from verifier.training.schedule import beta_at, eps_at, kappa_at
from verifier.training.schedule import progress as progress_at

LOG_FIELDS = ("epoch", "eps", "kappa", "loss", "clean_acc", "pgd_acc", "verified_acc", "seconds")


@dataclass
class EpochRecord:
    """One row of the training log; the accuracies are on the test data at the training radius ``eps`` of the
    settings (``eps`` here is the radius the epoch trained at), NaN where the epoch was not evaluated."""

    epoch: int
    eps: float
    kappa: float
    loss: float
    clean_acc: float
    pgd_acc: float
    verified_acc: float
    seconds: float


class Progress:
    """A progress line on stderr: redrawn in place on a terminal, one line per epoch otherwise."""

    def __init__(self, enabled: bool, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def batch(self, epoch: int, epochs: int, k: int, n: int, loss: float) -> None:
        if self.enabled and self.tty:
            done = int(20 * (k + 1) / n)
            self.stream.write(f"\repoch {epoch + 1}/{epochs} [{'#' * done}{'.' * (20 - done)}] loss {loss:.4f}")
            self.stream.flush()

    def epoch(self, r: EpochRecord, epochs: int) -> None:
        if not self.enabled:
            return
        acc = "" if math.isnan(r.clean_acc) else (f" clean {r.clean_acc:.3f} pgd {r.pgd_acc:.3f} "
                                                  f"verified {r.verified_acc:.3f}")
        self.stream.write(f"{chr(13) if self.tty else ''}epoch {r.epoch}/{epochs} eps {r.eps:.4g} loss {r.loss:.4f}"
                          f"{acc} ({r.seconds:.1f} s)\n")
        self.stream.flush()


def batch_loss(model: nn.Module, settings: TrainSettings, xb, yb, t: float, domain, n_classes: int,
               gen) -> torch.Tensor:
    """The loss of one batch at training progress ``t`` for the settings' mode."""
    mode = settings.mode
    if mode == "standard":
        return F.cross_entropy(model(xb), yb)
    if mode == "noise":
        return F.cross_entropy(model(xb + settings.sigma * torch.randn(xb.shape, generator=gen)), yb)
    if mode in ("fgsm", "pgd"):
        eps = eps_at(settings, t)
        if mode == "fgsm":
            xa = fgsm(model, xb, yb, eps, settings.norm, domain, gen)
        else:
            xa = pgd(model, xb, yb, eps, settings.norm, settings.attack_steps, domain, gen)
        return F.cross_entropy(model(xa), yb)
    eps, kappa = eps_at(settings, t), kappa_at(settings, t)
    natural = F.cross_entropy(model(xb), yb)
    if eps <= 0 or kappa >= 1:
        return natural
    robust = certified_loss(bound_graph(model, tuple(xb.shape[1:])), xb, yb, eps, domain, n_classes, mode,
                            beta_at(settings, t))
    return kappa * natural + (1 - kappa) * robust


def evaluate(model, settings: TrainSettings, x, y, domain) -> tuple[float, float, float]:
    """(clean, PGD, verified) accuracy at the training radius on at most ``eval_max`` examples."""
    if settings.eval_max:
        x, y = x[: settings.eval_max], y[: settings.eval_max]
    clean = clean_accuracy(model, x, y)
    rob = pgd_accuracy(model, x, y, settings.eps, settings.norm, settings.eval_attack_steps, domain, settings.seed)
    ver = verified_accuracy(model, x, y, settings.eps, domain, settings.eval_bound, settings.norm)
    return clean, rob, ver


def train_model(settings: TrainSettings, x: np.ndarray, y: np.ndarray, *, n_classes: int | None = None,
                domain: tuple[float, float] = (0.0, 1.0), x_test=None, y_test=None, log_path=None,
                progress: bool = False, history: list | None = None) -> nn.Module:
    """Train the classifier of ``settings`` on ``x`` (N, *example_shape), ``y`` (N,) and return it in eval mode.

    Seeded by ``settings.seed`` (initialisation, batch order, noise and attack starts): the same settings and
    data give the same weights. With test data every ``eval_every`` epochs (and after the last) the clean, PGD
    and verified test accuracies at ``settings.eps`` are computed; ``log_path`` gets them as CSV (columns
    :data:`LOG_FIELDS`), ``history`` the :class:`EpochRecord` rows, ``progress`` a line on stderr."""
    X = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    Y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    n_classes = int(n_classes or int(Y.max()) + 1)
    bar = Progress(progress)
    records = history if history is not None else []
    with torch_threads(settings.threads):
        model = build_model(settings, tuple(X.shape[1:]), n_classes)
        gen = torch.Generator().manual_seed(settings.seed)
        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, settings.epochs))
        n_batches = max(1, math.ceil(len(X) / settings.batch_size))
        log_file = open(log_path, "w", newline="") if log_path else None
        try:
            writer = csv.writer(log_file) if log_file else None
            if writer:
                writer.writerow(LOG_FIELDS)
            for epoch in range(settings.epochs):
                t0 = time.perf_counter()
                model.train()
                perm = torch.randperm(len(X), generator=gen)
                total, seen = 0.0, 0
                for k in range(n_batches):
                    idx = perm[k * settings.batch_size:(k + 1) * settings.batch_size]
                    if len(idx) == 0:
                        continue
                    t = progress_at(epoch, k, n_batches, settings.epochs)
                    loss = batch_loss(model, settings, X[idx], Y[idx], t, domain, n_classes, gen)
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                    seen += len(idx)
                    bar.batch(epoch, settings.epochs, k, n_batches, total / seen)
                sched.step()
                t_end = progress_at(epoch + 1, 0, n_batches, settings.epochs)
                last = epoch == settings.epochs - 1
                if last:
                    refresh_normalisation(model)
                model.eval()
                accs = (math.nan,) * 3
                if x_test is not None and ((epoch + 1) % settings.eval_every == 0 or last):
                    accs = evaluate(model, settings, x_test, y_test, domain)
                uses_eps = settings.mode not in ("standard", "noise")
                r = EpochRecord(epoch + 1, eps_at(settings, t_end) if uses_eps else 0.0,
                                kappa_at(settings, t_end) if settings.mode in ("ibp", "crown-ibp") else 1.0,
                                total / max(1, seen), *accs, time.perf_counter() - t0)
                records.append(r)
                if writer:
                    writer.writerow([_fmt(v) for v in asdict(r).values()])
                    log_file.flush()
                bar.epoch(r, settings.epochs)
        finally:
            if log_file:
                log_file.close()
    model.eval()
    return model


def _fmt(v) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)
