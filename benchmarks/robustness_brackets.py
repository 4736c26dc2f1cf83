"""Benchmark: radius brackets and black-box attacks on a digits MLP trained here (scikit-learn's digits,
no download), plus the linear classifier whose minimal distances are known in closed form.

Prints

- per certified method, for l_inf and l2: mean certified radius, mean attacked radius, fraction of exact
  brackets (the two ends within --tol), fraction consistent (certified <= attacked), seconds per example;
- for the linear classifier: the worst relative gap of each end to the closed-form distance;
- the black-box attacks at a few budgets: success rate, queries per example (and the substitute's one-off
  training queries), mean perturbation, for the substitute transfer attack (FGSM and PGD), SimBA and random
  noise of the same norm.

    python benchmarks/robustness_brackets.py                 # a few minutes on one core
    python benchmarks/robustness_brackets.py --examples 4 --attack-examples 100   # quicker
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from verifier.certificates.smoothing.train import (  # noqa: E402
    export_onnx,
    load_digits_split,
    make_mlp,
    train_noisy,
)
from verifier.robustness.blackbox import run_blackbox  # noqa: E402
from verifier.robustness.inputs import load_inputs  # noqa: E402
from verifier.robustness.radius import RadiusSearch  # noqa: E402
from verifier.robustness.records import bracket_summary, format_summaries  # noqa: E402
from verifier.settings.robustness import BlackboxSettings, RadiusSettings, TransferSettings  # noqa: E402

# (label, methods, time per call, steps) of the certified searches
LINF_METHODS = [("lipschitz only", (), 1.0, 1), ("crown", ("crown",), 10.0, 12),
                ("alpha-crown", ("alpha-crown",), 10.0, 12), ("bab", ("bab",), 3.0, 8), ("milp", ("milp",), 3.0, 8)]
L2_METHODS = [("lipschitz only", (), 1.0, 1), ("crown (box)", ("crown",), 10.0, 12)]


def train_models(folder: Path, hidden) -> dict:
    xtr, ytr, xte, yte = load_digits_split()
    t0 = time.perf_counter()
    mlp = train_noisy(make_mlp(hidden=hidden, seed=0), xtr, ytr, 0.0, epochs=40, seed=0)
    lin = train_noisy(nn.Sequential(nn.Linear(64, 10)), xtr, ytr, 0.0, epochs=20, seed=0)
    with torch.no_grad():
        acc = [float((m(torch.as_tensor(xte)).argmax(1).numpy() == yte).mean()) for m in (mlp, lin)]
    paths = {"mlp": folder / "mlp.onnx", "linear": folder / "linear.onnx", "data": folder / "test.npz"}
    export_onnx(mlp, paths["mlp"], (64,), method="helper")
    export_onnx(lin, paths["linear"], (64,), method="helper")
    np.savez(paths["data"], x=xte, y=yte)
    print(f"trained MLP {hidden} (test accuracy {acc[0]:.3f}) and linear (accuracy {acc[1]:.3f}) in "
          f"{time.perf_counter() - t0:.1f} s")
    paths["W"], paths["b"] = lin[0].weight.detach().double().numpy(), lin[0].bias.detach().double().numpy()
    return paths


def brackets(path, data, n: int, **fields):
    model, x, y = load_inputs(str(path), str(data))
    search = RadiusSearch(model.graph, model.reference, RadiusSettings(**fields), str(path))
    t0 = time.perf_counter()
    out = [search.bracket(i, x[i], int(y[i])) for i in range(n)]
    return out, (time.perf_counter() - t0) / max(1, n), x


def bracket_table(paths, n: int, tol: float) -> None:
    print(f"\n# radius brackets on the digits MLP, first {n} test examples (tol {tol:g})")
    print("norm\tmethod\tmean_certified\tmean_attacked\texact\tconsistent\ts_per_example")
    for norm, table, eps_max in (("linf", LINF_METHODS, 0.5), ("l2", L2_METHODS, 4.0)):
        for label, methods, t, steps in table:
            bs, per, _ = brackets(paths["mlp"], paths["data"], n, norm=norm, methods=methods, time_per_call=t,
                                  max_steps=steps, tol=tol, eps_max=eps_max)
            s = bracket_summary(bs)
            print(f"{norm}\t{label}\t{s['mean_certified']:.4f}\t{s['mean_attacked']:.4f}\t{s['exact']:.2f}\t"
                  f"{s['consistent']:.2f}\t{per:.1f}", flush=True)


def linear_table(paths, n: int, tol: float) -> None:
    print(f"\n# linear classifier, first {n} test examples: worst relative gap of each end to the exact distance")
    print("norm\tmethods\tworst_certified_gap\tworst_attacked_gap\texact")
    for norm, methods, dual in (("linf", ("crown",), 1), ("l2", (), 2)):
        bs, _, x = brackets(paths["linear"], paths["data"], n, norm=norm, methods=methods, domain=None, eps_max=5.0,
                            tol=tol)
        gc, ga = 0.0, 0.0
        for b in bs:
            z = paths["W"] @ x[b.index].astype(np.float64) + paths["b"]
            c = int(np.argmax(z))
            if c != b.label:
                continue
            truth = min((z[c] - z[j]) / np.linalg.norm(paths["W"][c] - paths["W"][j], dual) for j in range(10)
                        if j != c)
            gc, ga = max(gc, (truth - b.certified) / truth), max(ga, (b.attacked - truth) / truth)
        print(f"{norm}\t{','.join(methods) or 'lipschitz'}\t{gc:.4f}\t{ga:.4f}\t"
              f"{np.mean([b.exact for b in bs]):.2f}", flush=True)


def attack_table(paths, n: int) -> None:
    model, x, y = load_inputs(str(paths["mlp"]), str(paths["data"]))
    sub = None
    for norm, eps in (("linf", 0.1), ("linf", 0.2), ("l2", 1.0)):
        for attack in ("fgsm", "pgd"):
            attacks = ("substitute", "simba", "noise") if attack == "fgsm" else ("substitute",)
            settings = BlackboxSettings(transfer=TransferSettings(attack, eps, norm))
            t0 = time.perf_counter()
            rep = run_blackbox(model.reference, x, y, settings, max_examples=n, attacks=attacks, substitute=sub)
            sub = rep.substitute  # trained once: the same initial examples and settings every time
            print()
            print(format_summaries(rep.summaries, eps, norm))
            s = rep.substitute
            print(f"# substitute: |S| per round {s.sizes}, {s.queries} label queries, agreement {s.agreement:.3f}; "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=8, help="examples per bracket row (default 8)")
    ap.add_argument("--attack-examples", type=int, default=300, help="examples attacked (default 300)")
    ap.add_argument("--tol", type=float, default=0.01)
    ap.add_argument("--hidden", default="64,64")
    ap.add_argument("--skip-brackets", action="store_true")
    ap.add_argument("--skip-attacks", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        paths = train_models(Path(d), tuple(int(h) for h in args.hidden.split(",")))
        if not args.skip_brackets:
            linear_table(paths, args.examples, args.tol)
            bracket_table(paths, args.examples, args.tol)
        if not args.skip_attacks:
            attack_table(paths, args.attack_examples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
