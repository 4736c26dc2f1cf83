"""The black-box view of a model: onnxruntime scores or labels of a batch of inputs, with the queries counted."""
from __future__ import annotations

import numpy as np

from frontends.onnx.reference import OnnxReference, condense
from verifier.ir.errors import ModelError


class Oracle:
    """Queries an ONNX model through onnxruntime; ``queries`` counts the inputs asked about."""

    def __init__(self, reference: OnnxReference):
        self.reference = reference
        self.queries = 0
        session = reference.session
        first = session.get_inputs()[0].shape[0] if session.get_inputs()[0].shape else 1
        self._batched = not (isinstance(first, int) and first == 1)

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.reference.input_shape))

    def _run(self, X: np.ndarray) -> np.ndarray:
        ref = self.reference
        X = np.asarray(X, dtype=ref.input_type).reshape(len(X), self.n_inputs)
        if not self._batched or len(X) == 1:
            return np.stack([ref.run(x) for x in X])
        try:
            y = ref.session.run(None, {ref.input_name: X.reshape(len(X), *ref.input_shape[1:])})[0]
        except Exception as e:  # onnxruntime raises its own types
            raise ModelError(f"onnxruntime cannot run a batch of {len(X)}: {condense(e)}", ref.source) from None
        return np.asarray(y, dtype=np.float64).reshape(len(X), -1)

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
