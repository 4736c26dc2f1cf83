"""Accuracies of a trained model on labelled data: clean, under PGD, verified by this project's bounds
(``verifier.bounds.objective.objective_bounds``, with its rounding allowances: a verified example is one the
verifier proves), and the certified l2 radii of this project's global Lipschitz certificate."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from verifier.bounds.objective import objective_bounds
from verifier.certificates.lipschitz.global_bound import global_lipschitz
from verifier.certificates.lipschitz.radii import radius_from_logits
from verifier.settings import BoundSettings
from verifier.training.attacks import pgd
from verifier.training.losses import input_box
from verifier.training.plan import bound_graph


def _tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


def predictions(model: nn.Module, x) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(_tensor(x)).argmax(1).numpy()


def clean_accuracy(model: nn.Module, x, y) -> float:
    return float((predictions(model, x) == np.asarray(y)).mean())


def pgd_accuracy(model: nn.Module, x, y, eps: float, norm: str, steps: int, domain, seed: int = 0) -> float:
    """Accuracy on PGD's adversarial inputs (random start, ``steps`` steps); at ``eps`` 0 the clean accuracy."""
    gen = torch.Generator().manual_seed(seed)
    X, Y = _tensor(x), torch.as_tensor(np.asarray(y), dtype=torch.long)
    model.eval()
    xa = pgd(model, X, Y, eps, norm, steps, domain, gen)
    return clean_accuracy(model, xa.numpy(), y)


def verified_mask(model: nn.Module, x, y, eps: float, domain, bound: str = "crown", input_shape=None) -> np.ndarray:
    """(N,) bool: the verifier's ``bound`` (ibp or crown) proves every margin ``y_label - y_j > 0`` on the l_inf
    box of radius ``eps`` around the example, clipped to ``domain``. (Boxes contain the l2 balls of the same
    radius: the mask is also sound for l2.)"""
    X = _tensor(x)
    y = np.asarray(y)
    shape = tuple(input_shape or X.shape[1:])
    model.eval()
    with torch.no_grad():
        graph = bound_graph(model, shape)
        n_out = graph.n_outputs
        x_lo, x_hi = input_box(X, eps, domain)
        out = np.zeros(len(y), dtype=bool)
        settings = BoundSettings(method=bound)
        for c in np.unique(y):
            idx = np.nonzero(y == c)[0]
            others = [j for j in range(n_out) if j != c]
            C = torch.zeros(len(others), n_out)
            C[:, int(c)] = 1.0
            C[torch.arange(len(others)), others] = -1.0
            ob = objective_bounds(graph, C, torch.zeros(len(others)), x_lo[idx], x_hi[idx], settings)
            out[idx] = ob.proven().all(1).cpu().numpy()
    return out


def verified_accuracy(model, x, y, eps, domain, bound: str = "crown", norm: str = "linf") -> float:
    """Fraction of examples verified at radius ``eps``: by ``bound`` on the l_inf box; for ``norm`` l2 also those
    whose Lipschitz-certified l2 radius (:func:`lipschitz_radii`) reaches ``eps``."""
    mask = verified_mask(model, x, y, eps, domain, bound)
    if norm == "l2":
        mask = mask | (lipschitz_radii(model, x, y) >= eps)
    return float(mask.mean())


def lipschitz_radii(model: nn.Module, x, y, input_shape=None) -> np.ndarray:
    """(N,) certified l2 radius of each example from the global Lipschitz bound (product of the layers'
    operator norms, ``verifier.certificates.lipschitz``) of the model's graph; 0 where the prediction is wrong."""
    X = _tensor(x)
    shape = tuple(input_shape or X.shape[1:])
    model.eval()
    with torch.no_grad():
        graph = bound_graph(model, shape, differentiable=False)
        bound = global_lipschitz(graph, "product")
        z = graph.to(dtype=torch.float64).forward(X.double().reshape(len(X), -1)).numpy()
    P = bound.pair_matrix(graph.n_outputs)
    radii = np.zeros(len(X))
    for i, (zi, yi) in enumerate(zip(z, np.asarray(y))):
        r = radius_from_logits(zi, P, graph.n_inputs)
        radii[i] = r.l2 if r.prediction == int(yi) else 0.0
    return radii
