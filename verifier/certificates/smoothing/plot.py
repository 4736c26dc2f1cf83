"""Plot of certified accuracy against the l2 radius, one curve per set of certify records (matplotlib,
an optional dependency, imported when called)."""
from __future__ import annotations

import os

import numpy as np

from verifier.certificates.smoothing.records import certified_accuracy


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
