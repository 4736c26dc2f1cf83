"""Randomized smoothing (Cohen, Rosenfeld and Kolter, ICML 2019): PREDICT, CERTIFY and the data-set loop.

The smoothed classifier of a base classifier ``f`` is
``g(x) = argmax_c P(f(x + e) = c)`` with ``e ~ N(0, sigma^2 I)``.

- :func:`predict` draws ``n`` noisy samples, takes the two most frequent classes
  and abstains (returns ``ABSTAIN`` = -1) unless a two-sided binomial test
  rejects "both are equally likely" at level ``alpha``.
- :func:`certify` draws ``n0`` samples to select a class ``cA``, then ``n`` fresh
  samples to estimate ``pA = P(f(x + e) = cA)``; the one-sided Clopper-Pearson
  lower bound ``pA_lower`` at confidence ``1 - alpha`` gives the l2 radius
  ``sigma * PhiInv(pA_lower)``; it abstains when ``pA_lower <= 1/2``.
- :func:`certify_dataset` certifies every example of a labelled set (one :class:`CertifyRecord` each).

These are claims about the *smoothed* classifier that hold with probability
``1 - alpha`` over the sampling; they are never reported as ``unsat`` for the
network itself.

The sampling parameters are one :class:`SmoothingParams` (or sigma and the other fields as
keywords). The base classifier may be a :class:`verifier.ir.graph.Graph` (as loaded from
ONNX), any ``torch.nn.Module``, a callable mapping a batch to logits, or a path
to an ONNX file (``sampling.py``). Sampling is batched, runs on CPU or CUDA, and is reproducible:
each call draws from its own ``torch.Generator`` seeded with ``seed``
(:func:`certify_dataset` uses ``seed + idx`` for example ``idx``). The statistics are in
``stats.py``, the log format in ``records.py``.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from verifier.certificates.smoothing.records import CertifyRecord
from verifier.certificates.smoothing.sampling import as_classifier, sample_counts, seeded_generator
from verifier.certificates.smoothing.stats import binomial_test_pvalue, clopper_pearson_lower, phi_inv
from verifier.certificates.threads import torch_threads

ABSTAIN = -1


@dataclass(frozen=True)
class SmoothingParams:
    """How the smoothed classifier is sampled and how sure its answers are."""

    sigma: float  # noise level (standard deviation of the Gaussian)
    n0: int = 100  # selection samples (CERTIFY only)
    n: int = 100_000  # estimation samples
    alpha: float = 0.001  # failure probability
    batch: int | None = None  # noisy samples per forward pass (None: DEFAULT_BATCH, capped by input size)
    seed: int = 0
    threads: int | None = None  # torch CPU threads while sampling (None: torch's setting)

    @classmethod
    def of(cls, params: SmoothingParams | float, **fields) -> SmoothingParams:
        """``params`` with ``fields`` replaced; a number for ``params`` is sigma (the other fields as given)."""
        if isinstance(params, SmoothingParams):
            return dataclasses.replace(params, **fields) if fields else params
        return cls(params, **fields)

    def check(self, *counts: str) -> None:
        """ValueError unless sigma > 0, 0 < alpha < 1 and each of the named sample counts is at least 1."""
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"sigma must be a positive number, got {self.sigma}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        for k in counts:
            v = getattr(self, k)
            if int(v) < 1:
                raise ValueError(f"{k} must be at least 1, got {v}")


@dataclass
class Prediction:
    prediction: int  # class, or ABSTAIN
    counts: np.ndarray  # per-class counts over the n samples
    p_value: float  # two-sided binomial test of the top two counts
    n: int
    time_s: float

    @property
    def abstained(self) -> bool:
        return self.prediction == ABSTAIN


@dataclass
class Certificate:
    """CERTIFY's answer for one input: the smoothed class and its l2 radius (prob. 1 - alpha)."""

    prediction: int  # class, or ABSTAIN
    radius: float  # l2 radius; 0.0 when abstaining
    pA_lower: float  # Clopper-Pearson lower bound on P(f(x+e) = cA)
    count: int  # nA: how many of the n estimation samples gave cA
    selected: int  # cA, the class picked from the n0 selection samples
    n0: int
    n: int
    alpha: float
    sigma: float
    time_s: float
    counts0: np.ndarray = field(repr=False, default=None)  # selection counts

    @property
    def abstained(self) -> bool:
        return self.prediction == ABSTAIN

    @property
    def samples(self) -> int:
        return self.n0 + self.n


def predict(model, x, params: SmoothingParams | float, *, device=None, num_classes: int | None = None,
            **fields) -> Prediction:
    """PREDICT of Cohen et al.: the smoothed class of ``x`` or ABSTAIN (wrong with prob. <= alpha).

    ``params``: a :class:`SmoothingParams`, or sigma with the other fields as keywords (``n=``, ``alpha=``, ...).
    """
    p = SmoothingParams.of(params, **fields)
    p.check("n")
    clf = as_classifier(model, device=device)
    t0 = time.perf_counter()
    with torch_threads(p.threads):
        counts = sample_counts(clf, x, p.sigma, p.n, p.batch, seeded_generator(clf, p.seed), num_classes)
    order = np.argsort(-counts, kind="stable")
    c1 = int(counts[order[0]])
    c2 = int(counts[order[1]]) if counts.size > 1 else 0
    pval = binomial_test_pvalue(c1, c1 + c2, 0.5)
    pred = int(order[0]) if pval <= p.alpha else ABSTAIN
    return Prediction(pred, counts, pval, int(p.n), time.perf_counter() - t0)


def certify(model, x, params: SmoothingParams | float, *, device=None, num_classes: int | None = None,
            **fields) -> Certificate:
    """CERTIFY of Cohen et al.: class and l2 radius of the smoothed classifier at ``x``.

    ``x`` is one example in the model's input shape (without a batch axis). ``params``: a
    :class:`SmoothingParams`, or sigma with the other fields as keywords (``n0=``, ``n=``, ``alpha=``,
    ``batch=``, ``seed=``, ``threads=``: torch CPU threads while sampling).
    """
    p = SmoothingParams.of(params, **fields)
    p.check("n0", "n")
    clf = as_classifier(model, device=device)
    t0 = time.perf_counter()
    gen = seeded_generator(clf, p.seed)
    with torch_threads(p.threads):
        counts0 = sample_counts(clf, x, p.sigma, p.n0, p.batch, gen, num_classes)
        cA = int(np.argmax(counts0))
        counts = sample_counts(clf, x, p.sigma, p.n, p.batch, gen, counts0.size)
    nA = int(counts[cA])
    pA = clopper_pearson_lower(nA, int(p.n), p.alpha)
    if pA <= 0.5:
        pred, radius = ABSTAIN, 0.0
    else:
        pred, radius = cA, float(p.sigma) * phi_inv(pA)
    return Certificate(pred, radius, pA, nA, cA, int(p.n0), int(p.n), float(p.alpha), float(p.sigma),
                       time.perf_counter() - t0, counts0)


def certify_dataset(model, X, y, params: SmoothingParams | float, *, device=None,
                    indices: Iterable[int] | None = None, on_record: Callable[[CertifyRecord], None] | None = None,
                    **fields) -> list[CertifyRecord]:
    """Certify every example of a labelled set; example ``i`` is sampled with seed ``seed + i``.

    ``params`` as for :func:`certify`; ``on_record`` is called with each record as soon as it is known.
    """
    p = SmoothingParams.of(params, **fields)
    clf = as_classifier(model, device=device)
    X = np.asarray(X)
    y = np.asarray(y)
    idx = range(len(X)) if indices is None else indices
    records = []
    num_classes = None
    for i in idx:
        i = int(i)
        c = certify(clf, X[i], dataclasses.replace(p, seed=p.seed + i), num_classes=num_classes)
        num_classes = c.counts0.size
        rec = CertifyRecord(i, int(y[i]), c.prediction, c.radius, int(c.prediction == int(y[i])), c.time_s)
        records.append(rec)
        if on_record is not None:
            on_record(rec)
    return records
