"""Labelled data sets for the certificate commands (``verify smooth``, ``verify lipschitz``): ``.npz`` files
with arrays ``x`` and ``y``, read by :func:`load_labelled_npz`, with :class:`DataError` for a file that
cannot be used."""
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
