"""Labelled data sets for the certificate commands (``verify smooth``, ``verify lipschitz``) and for training:
``.npz`` files with arrays ``x`` and ``y``, read by :func:`load_labelled_npz`, with :class:`DataError` for a file
that cannot be used; scikit-learn's 8x8 digits scaled to [0, 1] (:func:`load_digits_split`) and the seeded
train/test split both use (:func:`split_train_test`)."""
from __future__ import annotations

import os

import numpy as np

from verifier.ir.errors import VerifierError


class DataError(VerifierError):
    """A labelled data file (``.npz``) that cannot be used."""

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        self.detail = message
        super().__init__(f"{path}: {message}" if path else message)


def _read_xy(p: str) -> tuple[np.ndarray, np.ndarray]:
    """The arrays ``x`` and ``y`` of the ``.npz`` file ``p`` as stored."""
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            missing = [k for k in ("x", "y") if k not in keys]
            if missing:
                found = ", ".join(sorted(keys)) or "none"
                raise DataError(f"missing array(s) {', '.join(missing)} (found: {found})", p)
            return z["x"], z["y"]
    except DataError:
        raise
    except Exception as e:  # zip / format errors come in many types
        raise DataError(f"not a readable .npz file ({type(e).__name__}: {e})", p) from None


def load_labelled_npz(path: str | os.PathLike, example_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``x`` (N, *example_shape) float32 and ``y`` (N,) int64 from an ``.npz`` file.

    Raises :class:`DataError` with a one-line message for a missing or malformed file.
    """
    p = str(path)
    if not os.path.exists(p):
        raise DataError("file not found", p)
    x, y = _read_xy(p)
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


def split_train_test(x: np.ndarray, y: np.ndarray, test_fraction: float = 0.3, seed: int = 0):
    """A seeded random split: ``(x_train, y_train, x_test, y_test)``, ``round(N * test_fraction)`` test examples."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def load_digits_split(test_fraction: float = 0.3, seed: int = 0):
    """scikit-learn's digits, pixels scaled to [0, 1]: ``(x_train, y_train, x_test, y_test)``, x as (N, 64) float32."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    return split_train_test(x, y, test_fraction, seed)
