"""The black-box view of a model: onnxruntime scores or labels of a batch of inputs, with the queries counted."""
from __future__ import annotations

import numpy as np

from frontends.onnx.reference import OnnxReference


class Oracle:
    """Queries an ONNX model through onnxruntime; ``queries`` counts the inputs asked about."""

    def __init__(self, reference: OnnxReference):
        self.reference = reference
        self.queries = 0

    @property
    def n_inputs(self) -> int:
        return self.reference.n_inputs

    def _run(self, X: np.ndarray) -> np.ndarray:
        return self.reference.run_batch(np.asarray(X).reshape(len(X), self.n_inputs))

    def scores(self, X: np.ndarray, count: bool = True) -> np.ndarray:
        """(N, K) float64 outputs at the N inputs ``X`` (flat or shaped), in batches of 512."""
        X = np.asarray(X).reshape(len(X), self.n_inputs)
        if count:
            self.queries += len(X)
        if len(X) == 0:  # the output size from an uncounted run at zero
            return np.zeros((0, self.reference.run(np.zeros(self.n_inputs)).size))
        return np.concatenate([self._run(X[k:k + 512]) for k in range(0, len(X), 512)])

    def labels(self, X: np.ndarray, count: bool = True) -> np.ndarray:
        """(N,) predicted classes (argmax of the outputs)."""
        return np.argmax(self.scores(X, count), axis=1)
