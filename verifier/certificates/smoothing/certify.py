"""Randomized smoothing (Cohen, Rosenfeld and Kolter, ICML 2019).

The smoothed classifier of a base classifier ``f`` is
``g(x) = argmax_c P(f(x + e) = c)`` with ``e ~ N(0, sigma^2 I)``.

- :func:`predict` draws ``n`` noisy samples, takes the two most frequent classes
  and abstains (returns ``ABSTAIN`` = -1) unless a two-sided binomial test
  rejects "both are equally likely" at level ``alpha``.
- :func:`certify` draws ``n0`` samples to select a class ``cA``, then ``n`` fresh
  samples to estimate ``pA = P(f(x + e) = cA)``; the one-sided Clopper-Pearson
  lower bound ``pA_lower`` at confidence ``1 - alpha`` gives the l2 radius
  ``sigma * PhiInv(pA_lower)``; it abstains when ``pA_lower <= 1/2``.

These are claims about the *smoothed* classifier that hold with probability
``1 - alpha`` over the sampling; they are never reported as ``unsat`` for the
network itself.

The base classifier may be a :class:`verifier.graph.Graph` (as loaded from
ONNX), any ``torch.nn.Module``, a callable mapping a batch to logits, or a path
to an ONNX file. Sampling is batched, runs on CPU or CUDA, and is reproducible:
each call draws from its own ``torch.Generator`` seeded with ``seed``
(:func:`certify_dataset` uses ``seed + idx`` for example ``idx``).
"""
from __future__ import annotations

import contextlib
import datetime
import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.special import bdtrc
from scipy.stats import binomtest, norm

from frontends.onnx.loader import load_onnx
from verifier.ir.errors import VerifierError
from verifier.ir.graph import Graph

ABSTAIN = -1
# Large batches amortise the per-call overhead of torch's CPU kernels (which grows a lot when
# the machine is busy); the noisy input batch is capped at MAX_BATCH_ELEMENTS scalars (memory).
DEFAULT_BATCH = 50_000
MAX_BATCH_ELEMENTS = 1 << 24


class DataError(VerifierError):
    """A labelled data file (``.npz``) that cannot be used."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        self.detail = message
        super().__init__(f"{path}: {message}" if path else message)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily run torch's CPU kernels on ``n`` threads (None: leave torch's setting).

    On a machine busy with other processes, one thread is often much faster than
    several for small models: every kernel call then pays for thread synchronisation.
    """
    if n is None or n <= 0:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


# --------------------------------------------------------------------------- statistics
def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper-Pearson lower confidence bound on a binomial proportion.

    Returns the ``p_L`` with ``P(Bin(n, p_L) >= k) = alpha``: with probability at
    least ``1 - alpha``, the true proportion is at least ``p_L``. Computed by
    root-finding on the exact binomial tail (``scipy.special.bdtrc``) and rounded
    down, so it never exceeds the exact bound by more than rounding.
    """

    k, n = int(k), int(n)
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if k == 0:
        return 0.0
    if k == n:  # closed form: p^n = alpha
        return float(np.nextafter(alpha ** (1.0 / n), 0.0))

    def tail(p: float) -> float:  # P(X >= k) - alpha, increasing in p
        return float(bdtrc(k - 1, n, p)) - alpha

    xtol = 1e-15
    root = brentq(tail, 0.0, 1.0, xtol=xtol, rtol=4 * np.finfo(float).eps, maxiter=500)
    # step down until the tail is at most alpha (conservative side of the root)
    p = root
    for _ in range(8):
        if tail(p) <= 0.0:
            break
        p = max(0.0, p - max(xtol, 4 * np.finfo(float).eps * p))
    return float(p)


def binomial_test_pvalue(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test p-value (as ``scipy.stats.binomtest``)."""

    if n == 0:
        return 1.0
    return float(binomtest(int(k), int(n), p).pvalue)


def phi_inv(p: float) -> float:
    return float(norm.ppf(p))


# --------------------------------------------------------------------------- classifiers
@dataclass
class BaseClassifier:
    """A batched logit function with the shape of one example and where it runs."""

    fn: Callable[[torch.Tensor], torch.Tensor]  # (B, *example_shape) -> (B, K)
    example_shape: tuple[int, ...] | None  # None: take the shape of the given x
    device: torch.device
    dtype: torch.dtype
    name: str = ""


def as_classifier(model, device=None, dtype=None) -> BaseClassifier:
    """Wrap a Graph, ``torch.nn.Module``, ONNX path or callable as a batched classifier."""

    if isinstance(model, (str, os.PathLike)):

        model = load_onnx(model, dtype=dtype or torch.float32, device=device or "cpu")
    if isinstance(model, BaseClassifier):
        return model
    if isinstance(model, Graph):
        g = model
        dev = torch.device(device) if device is not None else g.device
        dt = dtype or g.dtype
        if dev != g.device or dt != g.dtype:
            g = g.to(dev, dt)
        n = g.n_inputs
        return BaseClassifier(lambda x: g.forward(x.reshape(x.shape[0], n)), None, dev, dt, g.source)
    if isinstance(model, torch.nn.Module):
        params = list(model.parameters()) + list(model.buffers())
        dev = torch.device(device) if device is not None else (params[0].device if params else torch.device("cpu"))
        dt = dtype or (params[0].dtype if params and params[0].is_floating_point() else torch.float32)
        module = model.to(device=dev, dtype=dt).eval()

        def fn(x):
            y = module(x)
            return y.reshape(y.shape[0], -1)

        return BaseClassifier(fn, None, dev, dt, type(model).__name__)
    if callable(model):
        return BaseClassifier(model, None, torch.device(device or "cpu"), dtype or torch.float32, "callable")
    raise TypeError(f"cannot use {type(model).__name__} as a classifier")


def _auto_batch(batch: int | None, n_elements: int) -> int:
    b = DEFAULT_BATCH if batch is None or batch <= 0 else int(batch)
    return max(1, min(b, MAX_BATCH_ELEMENTS // max(1, n_elements)))


def sample_counts(clf: BaseClassifier, x, sigma: float, num: int, batch: int | None = None,
                  generator: torch.Generator | None = None, num_classes: int | None = None) -> np.ndarray:
    """Counts of the base classifier's top class over ``num`` samples of ``x + N(0, sigma^2 I)``."""
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(clf.device, clf.dtype)
    shape = tuple(x.shape) if clf.example_shape is None else clf.example_shape
    flat = x.reshape(1, -1)
    d = flat.shape[1]
    b = _auto_batch(batch, d)
    with torch.inference_mode():
        if num_classes is None:
            num_classes = int(clf.fn(x.reshape(1, *shape)).shape[1])
        counts = torch.zeros(num_classes, dtype=torch.int64, device=clf.device)
        noise = None
        left = int(num)
        while left > 0:
            m = min(b, left)
            if noise is None or noise.shape[0] != m:
                noise = torch.empty((m, d), device=clf.device, dtype=clf.dtype)
            noise.normal_(0.0, float(sigma), generator=generator)
            noise.add_(flat)
            logits = clf.fn(noise.view(m, *shape))
            counts += torch.bincount(logits.argmax(1), minlength=num_classes)[:num_classes]
            left -= m
    return counts.cpu().numpy()


def _generator(clf: BaseClassifier, seed: int) -> torch.Generator:
    g = torch.Generator(device=clf.device)
    g.manual_seed(int(seed))
    return g


def _check_params(sigma: float, alpha: float, **counts: int) -> None:
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a positive number, got {sigma}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    for k, v in counts.items():
        if int(v) < 1:
            raise ValueError(f"{k} must be at least 1, got {v}")


# --------------------------------------------------------------------------- predict / certify
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


def predict(model, x, sigma: float, n: int = 100_000, alpha: float = 0.001, batch: int | None = None,
            seed: int = 0, device=None, num_classes: int | None = None, threads: int | None = None) -> Prediction:
    """PREDICT of Cohen et al.: the smoothed class of ``x`` or ABSTAIN (wrong with prob. <= alpha)."""
    _check_params(sigma, alpha, n=n)
    clf = as_classifier(model, device=device)
    t0 = time.perf_counter()
    with torch_threads(threads):
        counts = sample_counts(clf, x, sigma, n, batch, _generator(clf, seed), num_classes)
    order = np.argsort(-counts, kind="stable")
    c1 = int(counts[order[0]])
    c2 = int(counts[order[1]]) if counts.size > 1 else 0
    pval = binomial_test_pvalue(c1, c1 + c2, 0.5)
    pred = int(order[0]) if pval <= alpha else ABSTAIN
    return Prediction(pred, counts, pval, int(n), time.perf_counter() - t0)


def certify(model, x, sigma: float, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
            batch: int | None = None, seed: int = 0, device=None, num_classes: int | None = None,
            threads: int | None = None) -> Certificate:
    """CERTIFY of Cohen et al.: class and l2 radius of the smoothed classifier at ``x``.

    ``x`` is one example in the model's input shape (without a batch axis). ``threads``:
    torch CPU threads while sampling (None: torch's setting).
    """
    _check_params(sigma, alpha, n0=n0, n=n)
    clf = as_classifier(model, device=device)
    t0 = time.perf_counter()
    gen = _generator(clf, seed)
    with torch_threads(threads):
        counts0 = sample_counts(clf, x, sigma, n0, batch, gen, num_classes)
        cA = int(np.argmax(counts0))
        counts = sample_counts(clf, x, sigma, n, batch, gen, counts0.size)
    nA = int(counts[cA])
    pA = clopper_pearson_lower(nA, int(n), alpha)
    if pA <= 0.5:
        pred, radius = ABSTAIN, 0.0
    else:
        pred, radius = cA, float(sigma) * phi_inv(pA)
    return Certificate(pred, radius, pA, nA, cA, int(n0), int(n), float(alpha), float(sigma),
                       time.perf_counter() - t0, counts0)


# --------------------------------------------------------------------------- data sets
@dataclass
class CertifyRecord:
    """One row of the certify log (Cohen et al.'s ``certify.py`` columns)."""

    idx: int
    label: int
    predict: int
    radius: float
    correct: int
    time_s: float

    def row(self) -> str:
        return format_certify_row(self)


LOG_HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime"


def format_certify_row(r: CertifyRecord) -> str:
    elapsed = str(datetime.timedelta(seconds=round(r.time_s, 6)))
    return f"{r.idx}\t{r.label}\t{r.predict}\t{r.radius:.3}\t{r.correct}\t{elapsed}"


def parse_certify_log(text: str) -> list[CertifyRecord]:
    """Read a certify log (header line then one row per example)."""
    out = []
    for line in text.splitlines()[1:]:
        if not line.strip():
            continue
        idx, label, pred, radius, correct, elapsed = line.split("\t")
        h, m, s = elapsed.split(":")
        secs = int(h) * 3600 + int(m) * 60 + float(s)
        out.append(CertifyRecord(int(idx), int(label), int(pred), float(radius), int(correct), secs))
    return out


def certify_dataset(model, X, y, sigma: float, n0: int = 100, n: int = 100_000, alpha: float = 0.001,
                    batch: int | None = None, seed: int = 0, device=None, indices: Iterable[int] | None = None,
                    on_record: Callable[[CertifyRecord], None] | None = None,
                    threads: int | None = None) -> list[CertifyRecord]:
    """Certify every example of a labelled set; example ``i`` is sampled with seed ``seed + i``."""
    clf = as_classifier(model, device=device)
    X = np.asarray(X)
    y = np.asarray(y)
    idx = range(len(X)) if indices is None else indices
    records = []
    num_classes = None
    for i in idx:
        i = int(i)
        c = certify(clf, X[i], sigma, n0, n, alpha, batch, seed + i, num_classes=num_classes, threads=threads)
        num_classes = c.counts0.size
        rec = CertifyRecord(i, int(y[i]), c.prediction, c.radius, int(c.prediction == int(y[i])), c.time_s)
        records.append(rec)
        if on_record is not None:
            on_record(rec)
    return records


def certified_accuracy(records: Sequence[CertifyRecord], radii) -> np.ndarray:
    """Fraction of examples that are classified correctly with a certified radius >= r, per r."""
    radii = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    if len(records) == 0:
        return np.zeros_like(radii)
    correct = np.array([r.correct for r in records], dtype=bool)
    rad = np.array([r.radius for r in records], dtype=np.float64)
    return np.array([(correct & (rad >= r)).mean() for r in radii])


def format_accuracy_table(curves: dict, radii) -> str:
    """Text table: one row per curve (for example per sigma), one column per radius."""
    radii = list(radii)
    head = "curve".ljust(14) + "".join(f"r={r:<8.3g}" for r in radii)
    lines = [head]
    for name, recs in curves.items():
        acc = certified_accuracy(recs, radii)
        lines.append(str(name).ljust(14) + "".join(f"{a:<10.3f}" for a in acc))
    return "\n".join(lines)


def plot_certified_accuracy(curves: dict, path: str | os.PathLike, max_radius: float | None = None,
                            title: str = "Certified accuracy of the smoothed classifier") -> None:
    """Certified accuracy vs l2 radius, one curve per entry (e.g. ``{"sigma=0.25": records}``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if max_radius is None:
        top = [max((r.radius for r in recs), default=0.0) for recs in curves.values()]
        max_radius = max(top + [1e-3]) * 1.05
    grid = np.linspace(0.0, max_radius, 400)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, recs in curves.items():
        ax.plot(grid, certified_accuracy(recs, grid), label=str(name), drawstyle="steps-post")
    ax.set_xlabel("radius (l2)")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, max_radius)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_labelled_npz(path: str | os.PathLike, example_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``x`` (N, *example_shape) float32 and ``y`` (N,) int64 from an ``.npz`` file.

    Raises :class:`DataError` with a one-line message for a missing or malformed file.
    """
    p = str(path)
    if not os.path.exists(p):
        raise DataError("file not found", p)
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            missing = [k for k in ("x", "y") if k not in keys]
            if missing:
                found = ", ".join(sorted(keys)) or "none"
                raise DataError(f"missing array(s) {', '.join(missing)} (found: {found})", p)
            x, y = z["x"], z["y"]
    except DataError:
        raise
    except Exception as e:  # zip / format errors come in many types
        raise DataError(f"not a readable .npz file ({type(e).__name__}: {e})", p) from None
    if x.ndim < 1 or x.shape[0] == 0:
        raise DataError(f"'x' must hold at least one example, got shape {x.shape}", p)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DataError(f"'y' must be a vector with one label per example: x has {x.shape[0]}, "
                        f"y has shape {y.shape}", p)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"'x' must be numeric, got {x.dtype}", p)
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise DataError("'y' must hold integer class labels", p)
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"'y' must hold integer class labels, got {y.dtype}", p)
    if not np.all(np.isfinite(x)):
        raise DataError("'x' contains NaN or infinite values", p)
    if example_size is not None:
        per = int(np.prod(x.shape[1:])) if x.ndim > 1 else 1
        if per != example_size:
            raise DataError(f"each example of 'x' has {per} values (shape {x.shape[1:]}), "
                            f"the model takes {example_size}", p)
    return x.astype(np.float32), y.astype(np.int64)
