"""The inputs of the robustness commands: the ONNX model read once (the layer graph and the onnxruntime
reference, statically checked) and its labelled data set (``.npz`` with arrays x and y)."""
from __future__ import annotations

import numpy as np

from frontends.load import LoadedModel, load_model
from frontends.onnx.files import read_model_bytes
from verifier.certificates.data import load_labelled_npz


def load_inputs(model_path: str, data_path: str, device: str = "cpu") -> tuple[LoadedModel, np.ndarray, np.ndarray]:
    """``(model, x, y)``; VerifierError (ModelError, DataError) with a one-line message for a bad file."""
    model = load_model(read_model_bytes(model_path), str(model_path), device=device)
    x, y = load_labelled_npz(data_path, model.graph.n_inputs)
    return model, x.reshape(len(x), -1), y
