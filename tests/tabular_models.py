"""Small tabular classifiers of the shape of issue 23 (tens of inputs, a few hundred ReLUs) and robustness
instances on them whose radius lies between what CROWN proves and what PGD breaks (the hard band: the cheap
bounds and the attack both fail there). Used by ``tests/test_planner.py`` and ``benchmarks/tabular_nets.py``.

``make_net`` builds a fully connected ReLU net, left at its random initialisation or trained for a few epochs on
synthetic data; ``bracket`` finds the two radii by bisection; ``write_instance`` writes the ONNX file and a
VNN-LIB robustness spec (the box clipped to [0, 1])."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from verifier.api import verify
from verifier.certificates.smoothing.train import export_onnx


def synthetic_data(seed: int, n: int = 2000, d: int = 30, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform in [0, 1]^d with labels from a fixed nonlinear function of them."""
    g = np.random.default_rng(seed)
    x = g.uniform(0, 1, (n, d)).astype(np.float32)
    W = g.normal(size=(d, k))
    return x, np.argmax(np.sin(3 * x @ W) + x @ W, 1)


def make_net(seed: int, n_in: int = 30, hidden=(64, 64), n_out: int = 3, epochs: int = 0) -> nn.Sequential:
    """A ReLU MLP; ``epochs`` > 0: trained with Adam on ``synthetic_data`` for that many epochs."""
    torch.manual_seed(seed)
    layers, n = [], n_in
    for h in hidden:
        layers += [nn.Linear(n, h), nn.ReLU()]
        n = h
    layers.append(nn.Linear(n, n_out))
    net = nn.Sequential(*layers)
    if epochs > 0:
        x, y = synthetic_data(seed, d=n_in, k=n_out)
        X, Y = torch.tensor(x), torch.tensor(y)
        opt = torch.optim.Adam(net.parameters(), 3e-3)
        g = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            perm = torch.randperm(len(X), generator=g)
            for i in range(0, len(X), 128):
                b = perm[i:i + 128]
                loss = nn.functional.cross_entropy(net(X[b]), Y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return net.eval()


def write_spec(path, x0: np.ndarray, label: int, eps: float, n_out: int) -> str:
    """The VNN-LIB spec "some other class scores at least ``label``'s" on the l_inf ball of ``eps``, in [0, 1]."""
    lines = [f"(declare-const X_{i} Real)" for i in range(len(x0))]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i, v in enumerate(np.asarray(x0, dtype=np.float64)):
        lines += [f"(assert (>= X_{i} {max(0.0, v - eps):.9f}))", f"(assert (<= X_{i} {min(1.0, v + eps):.9f}))"]
    ors = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(n_out) if j != label)
    lines.append(f"(assert (or {ors}))")
    Path(path).write_text("\n".join(lines) + "\n")
    return str(path)


def bracket(model: str, x0: np.ndarray, label: int, n_out: int, folder, steps: int = 8) -> tuple[float, float]:
    """(radius CROWN proves, radius where PGD finds a counterexample), each to ``steps`` bisections in [0, 0.5]."""
    spec = Path(folder) / "bracket.vnnlib"
    lo, hi = 0.0, 0.5
    for _ in range(steps):
        eps = (lo + hi) / 2
        r = verify(model, write_spec(spec, x0, label, eps, n_out), method="crown", timeout=20)
        lo, hi = (eps, hi) if r.verdict.value == "unsat" else (lo, eps)
    proven = lo
    lo, hi = proven, 0.5
    for _ in range(steps):
        eps = (lo + hi) / 2
        r = verify(model, write_spec(spec, x0, label, eps, n_out), method="attack", timeout=2)
        lo, hi = (lo, eps) if r.verdict.value == "sat" else (eps, hi)
    return proven, hi


def write_instances(net: nn.Sequential, folder, name: str, x0: np.ndarray, fractions,
                    tag: str = "") -> list[tuple[str, str]]:
    """The ONNX file of ``net`` and, per fraction, a spec that far along the band from CROWN's radius to PGD's
    around ``x0`` (its label: the net's class there). Returns [(model path, spec path)] in the order of
    ``fractions``."""
    folder = Path(folder)
    n_in, n_out = net[0].in_features, net[-1].out_features
    model = str(folder / f"{name}.onnx")
    if not Path(model).exists():
        export_onnx(net, model, (n_in,), method="helper")
    with torch.no_grad():
        label = int(net(torch.tensor(x0, dtype=torch.float32)).argmax())
    proven, broken = bracket(model, x0, label, n_out, folder)
    return [(model, write_spec(folder / f"{name}{tag}_{f:g}.vnnlib", x0, label, proven + f * (broken - proven), n_out))
            for f in fractions]
