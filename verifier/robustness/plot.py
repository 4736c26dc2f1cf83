"""Plot of the radius brackets: one vertical segment per example from the certified to the attacked radius
(matplotlib, an optional dependency, imported when called: :func:`plot_available` says whether it is)."""
from __future__ import annotations

import importlib.util
import math
import os
from typing import Sequence

from verifier.robustness.radius import Bracket


def plot_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def plot_brackets(brackets: Sequence[Bracket], path: str | os.PathLike, title: str = "") -> None:
    """Brackets sorted by the certified radius; exact ones as dots, missing attacked ends as arrows up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = sorted(brackets, key=lambda b: (b.certified, b.attacked))
    fin = [b.attacked for b in order if math.isfinite(b.attacked)]
    top = max(fin + [b.certified for b in order] + [1e-3]) * 1.1
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, b in enumerate(order):
        up = b.attacked if math.isfinite(b.attacked) else top
        ax.plot([k, k], [b.certified, up], color="tab:blue" if math.isfinite(b.attacked) else "tab:gray", lw=1.5)
        ax.plot(k, b.certified, "v" if not b.exact else "o", color="tab:green", ms=3)
        if math.isfinite(b.attacked):
            ax.plot(k, b.attacked, "^" if not b.exact else "o", color="tab:red", ms=3)
    norm = order[0].norm if order else ""
    ax.set_xlabel("example (sorted by certified radius)")
    ax.set_ylabel(f"{norm} radius")
    ax.set_ylim(0, top)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"[certified, attacked] brackets on the minimal {norm} perturbation")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
