"""Models of the robustness tests (``test_radius.py``, ``test_blackbox.py``): a small ReLU MLP trained briefly
on scikit-learn's digits and a linear classifier (one Gemm, whose minimal adversarial distances are known in
closed form), both exported to ONNX, and the digits test split as ``.npz``."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
from torch import nn

from verifier.certificates.smoothing.train import export_onnx, load_digits_split, make_mlp, train_noisy


def write_models(folder) -> dict:
    xtr, ytr, xte, yte = load_digits_split()
    mlp = train_noisy(make_mlp(hidden=(32, 32), seed=0), xtr, ytr, 0.0, epochs=20, seed=0)
    lin = nn.Sequential(nn.Linear(64, 10))
    train_noisy(lin, xtr, ytr, 0.0, epochs=10, seed=0)
    paths = {"mlp": str(folder / "mlp.onnx"), "linear": str(folder / "linear.onnx"), "data": str(folder / "test.npz")}
    export_onnx(mlp, paths["mlp"], (64,), method="helper")
    export_onnx(lin, paths["linear"], (64,), method="helper")
    np.savez(paths["data"], x=xte, y=yte)
    paths["W"] = lin[0].weight.detach().double().numpy()
    paths["b"] = lin[0].bias.detach().double().numpy()
    paths["x"], paths["y"] = xte, yte
    return paths


def linear_distance(W: np.ndarray, b: np.ndarray, x: np.ndarray, norm: str) -> tuple[int, float]:
    """The predicted class of the linear classifier and the exact distance to its decision boundary:
    ``min_j ((w_c - w_j) x + b_c - b_j) / ||w_c - w_j||_dual`` (dual of l_inf: l1; of l2: l2)."""
    z = W @ x + b
    c = int(np.argmax(z))
    dual = 1 if norm == "linf" else 2
    return c, min((z[c] - z[j]) / np.linalg.norm(W[c] - W[j], dual) for j in range(len(z)) if j != c)


def ort_adversarial(path: str, x: np.ndarray, label: int) -> bool:
    """A fresh onnxruntime session says ``x`` (float32) reaches ``y_label <= y_j`` for some other j."""
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: np.asarray(x, dtype=np.float32).reshape(1, -1)})[0][0]
    return bool(y[label] <= np.max(np.delete(y, label)))
