"""Benchmark: training for verifiability on digits (``verify train``, ``verifier.training``).

Trains models of the same architecture (an MLP 64-64-64-10 on scikit-learn's 8x8 digits scaled to [0, 1]) in
several modes -- standard, PGD adversarial training, IBP and CROWN-IBP certified training, and a
Lipschitz-bounded (Björck-orthogonal) model -- and prints, on the test split:

- clean accuracy; PGD accuracy at the training radius (l_inf, 20 steps, random start);
- verified accuracy at that radius by this project's IBP and CROWN bounds (``objective_bounds``: what
  ``verify --method ibp / crown`` proves; "best" counts an example proven by either);
- the average certified l2 radius of this project's global Lipschitz certificate (product of the layers'
  operator norms; 0 for a misclassified example);
- certified accuracy (best of IBP / CROWN) against the l_inf radius;

then checks the issue's orderings (PGD > standard in PGD accuracy; the certified model has the highest verified
accuracy, at least 3 times the standard one's; the Lipschitz model the largest average l2 radius), writes the
table as CSV and the certified-accuracy figure (matplotlib optional: skipped with a message).

    python benchmarks/training_orderings.py --csv training.csv --plot training.png
    python benchmarks/training_orderings.py --epochs 15 --hidden 32,32        # quick
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verifier.settings.training import TrainSettings  # noqa: E402
from verifier.training import load_dataset, train_model  # noqa: E402
from verifier.training.evaluate import clean_accuracy, lipschitz_radii, pgd_accuracy, verified_mask  # noqa: E402


def models(eps: float, epochs: int, hidden) -> dict[str, TrainSettings]:
    base = dict(eps=eps, epochs=epochs, hidden=hidden, eval_every=10**6)
    return {
        "standard": TrainSettings(mode="standard", **base),
        "pgd": TrainSettings(mode="pgd", attack_steps=7, **base),
        "ibp": TrainSettings(mode="ibp", lr=1e-2, kappa_end=0.0, **base),
        "crown-ibp": TrainSettings(mode="crown-ibp", lr=1e-2, kappa_end=0.0, **base),
        "lipschitz": TrainSettings(mode="standard", lipschitz="orthogonal", **base),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eps", type=float, default=0.15, help="training radius (l_inf), default 0.15")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--hidden", default="64,64")
    ap.add_argument("--radii", default="0,0.02,0.05,0.1,0.15,0.2", help="l_inf radii of the certified accuracy")
    ap.add_argument("--csv", default="training_orderings.csv")
    ap.add_argument("--plot", default="training_orderings.png")
    args = ap.parse_args(argv)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    radii = [float(r) for r in args.radii.split(",")]
    data = load_dataset(TrainSettings())
    x, y, dom = data.x_test, data.y_test, data.domain
    rows, curves = [], {}
    for name, s in models(args.eps, args.epochs, hidden).items():
        t0 = time.perf_counter()
        m = train_model(s, data.x_train, data.y_train, n_classes=data.n_classes, domain=dom)
        t_train = time.perf_counter() - t0
        ibp = verified_mask(m, x, y, args.eps, dom, "ibp")
        crown = verified_mask(m, x, y, args.eps, dom, "crown")
        row = dict(model=name, clean=clean_accuracy(m, x, y), pgd=pgd_accuracy(m, x, y, args.eps, "linf", 20, dom),
                   verified_ibp=float(ibp.mean()), verified_crown=float(crown.mean()),
                   verified_best=float((ibp | crown).mean()),
                   lipschitz_l2_radius=float(lipschitz_radii(m, x, y).mean()), train_s=t_train)
        curve = []
        for r in radii:
            if r == args.eps:
                curve.append(row["verified_best"])
            else:
                curve.append(float((verified_mask(m, x, y, r, dom, "ibp") | verified_mask(m, x, y, r, dom, "crown"))
                                   .mean()))
        row.update({f"cert_{r:g}": c for r, c in zip(radii, curve)})
        curves[f"{name} (clean {row['clean']:.2f})"] = curve
        rows.append(row)
        print(f"{name:10s} clean {row['clean']:.3f}  pgd@{args.eps:g} {row['pgd']:.3f}  verified@{args.eps:g} ibp "
              f"{row['verified_ibp']:.3f} crown {row['verified_crown']:.3f} best {row['verified_best']:.3f}  "
              f"lipschitz l2 radius {row['lipschitz_l2_radius']:.3f}  ({t_train:.1f} s)", flush=True)
    print("\ncertified accuracy (best of IBP / CROWN) vs l_inf radius:")
    print("model      " + " ".join(f"{r:>7g}" for r in radii))
    for row in rows:
        print(f"{row['model']:10s} " + " ".join(f"{row[f'cert_{r:g}']:7.3f}" for r in radii))
    by = {r["model"]: r for r in rows}
    cert_best = max(("ibp", "crown-ibp"), key=lambda k: by[k]["verified_best"])
    checks = [
        ("PGD model's PGD accuracy > standard's", by["pgd"]["pgd"] > by["standard"]["pgd"]),
        (f"{cert_best} has the highest verified accuracy", by[cert_best]["verified_best"] == max(
            r["verified_best"] for r in rows)),
        (f"{cert_best} verified >= 3 x standard's", by[cert_best]["verified_best"] >= 3 * by["standard"][
            "verified_best"]),
        ("Lipschitz model has the largest average l2 radius", by["lipschitz"]["lipschitz_l2_radius"] == max(
            r["lipschitz_l2_radius"] for r in rows)),
    ]
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    with open(args.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
    print(f"wrote {args.csv}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no figure")
        return 0
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, curve in curves.items():
        ax.plot(radii, curve, marker="o", label=label)
    ax.axvline(args.eps, color="grey", ls=":", lw=1)
    ax.set_xlabel("l_inf radius")
    ax.set_ylabel("certified accuracy (IBP / CROWN)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"digits, MLP {args.hidden}, trained at eps {args.eps:g}")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
