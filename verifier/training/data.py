"""Training data: scikit-learn's 8x8 digits scaled to [0, 1] or a user's labelled ``.npz`` (arrays ``x``, ``y``),
split into seeded train and test sets (``verifier.certificates.data``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verifier.certificates.data import DataError, load_digits_split, load_labelled_npz, split_train_test
from verifier.settings.training import TrainSettings


@dataclass
class Dataset:
    """Train and test splits; ``x`` as ``(N, *example_shape)`` float32, ``y`` int64 in ``[0, n_classes)``;
    ``domain``: the (low, high) value range of the inputs, to which perturbed inputs are clipped."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    domain: tuple[float, float]

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def load_dataset(settings: TrainSettings) -> Dataset:
    """The data of ``settings.data`` (``digits`` or a path to an ``.npz``) shaped for ``settings.arch``: flat
    vectors for the MLP; (C, H, W) images for the CNN (digits: (1, 8, 8); an ``.npz`` of (N, H, W) gets C = 1).
    Raises ``DataError`` (one line) for data that cannot be used."""
    if settings.data == "digits":
        xtr, ytr, xte, yte = load_digits_split(settings.test_fraction, settings.seed)
        domain = (0.0, 1.0)
        img = (1, 8, 8)
    else:
        x, y = load_labelled_npz(settings.data)
        if len(x) < 2:
            raise DataError(f"needs at least 2 examples to split into train and test, got {len(x)}", settings.data)
        if np.any(y < 0):
            raise DataError("'y' must hold class labels >= 0", settings.data)
        xtr, ytr, xte, yte = split_train_test(x, y, settings.test_fraction, settings.seed)
        if len(xtr) == 0 or len(xte) == 0:
            raise DataError(f"{len(x)} examples do not split into non-empty train and test sets", settings.data)
        domain = (float(x.min()), float(x.max()))
        shp = x.shape[1:]
        img = (1, *shp) if len(shp) == 2 else tuple(shp)
    n_classes = int(max(ytr.max(), yte.max())) + 1
    if n_classes < 2:
        raise DataError("the labels name a single class; training a classifier needs at least two", settings.data)
    if settings.arch == "mlp":
        shape = (int(np.prod(xtr.shape[1:])),)
    else:
        if len(img) != 3:
            raise DataError(f"--arch cnn needs images (N, H, W) or (N, C, H, W), got x of shape "
                            f"(N, {', '.join(map(str, xtr.shape[1:]))})", settings.data)
        shape = img
    return Dataset(xtr.reshape(len(xtr), *shape).astype(np.float32), ytr, xte.reshape(len(xte), *shape).astype(
        np.float32), yte, n_classes, domain)
