"""Benchmark: randomized smoothing (and Lipschitz certificates) on models trained here.

Trains a small MLP on scikit-learn's digits (shipped with scikit-learn, no download)
with Gaussian noise augmentation at each sigma, exports it to ONNX, loads it through
the ONNX front end, and reports

- sampling throughput (samples per second) of CERTIFY on one example,
- certify time per example over the first ``--examples`` test images,
- certified accuracy vs l2 radius, one row per sigma (and a plot with ``--plot``),
- for comparison, deterministic Lipschitz certificates of the same models (product
  bound, global and local radii), and LipSDP vs the product bound on random 32- and
  48-neuron MLPs and a small trained one (ratio and solve time).

    python benchmarks/bench_smoothing.py --plot smoothing.png
    python benchmarks/bench_smoothing.py --n 10000 --examples 50 --no-lipsdp   # quick
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from frontends.onnx.loader import load_onnx  # noqa: E402
from verifier.certificates.lipschitz.analysis import product_bound  # noqa: E402
from verifier.certificates.lipschitz.evaluate import gradient_norms  # noqa: E402
from verifier.certificates.lipschitz.global_bound import global_lipschitz  # noqa: E402
from verifier.certificates.lipschitz.local import local_certified_radius  # noqa: E402
from verifier.certificates.lipschitz.radii import certified_radius  # noqa: E402
from verifier.certificates.smoothing.certify import SmoothingParams, certify, certify_dataset  # noqa: E402
from verifier.certificates.smoothing.plot import plot_certified_accuracy  # noqa: E402
from verifier.certificates.smoothing.records import format_accuracy_table  # noqa: E402
from verifier.certificates.smoothing.train import (  # noqa: E402
    accuracy,
    export_onnx,
    load_digits_split,
    make_mlp,
    train_noisy,
)

RADII = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def throughput(graph, x, sigma, n, n0, batch, threads=None, repeats=3) -> tuple[float, float]:
    certify(graph, x, sigma, n0=n0, n=min(n, 20_000), batch=batch, threads=threads)  # warm-up
    best_t = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        c = certify(graph, x, sigma, n0=n0, n=n, batch=batch, seed=100 + r, threads=threads)
        best_t = min(best_t, time.perf_counter() - t0)
    return c.samples / best_t, best_t


def lipsdp_table(time_limit: float, trained_small) -> list[tuple]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        specs = [("random 8-32-32-10", make_mlp(8, (32, 32), 10, seed=11), (8,)),
                 ("random 8-48-48-10", make_mlp(8, (48, 48), 10, seed=12), (8,)),
                 ("random 16-32-48-10", make_mlp(16, (32, 48), 10, seed=13), (16,))]
        if trained_small is not None:
            specs.append(("digits 64-32-10 (trained)", trained_small, (64,)))
        for name, model, shape in specs:
            path = os.path.join(d, "m.onnx")
            export_onnx(model, path, shape)
            g = load_onnx(path)
            t0 = time.perf_counter()
            prod = product_bound(g)
            t_prod = time.perf_counter() - t0
            t0 = time.perf_counter()
            sdp = global_lipschitz(g, "lipsdp", time_limit=time_limit)
            t_sdp = time.perf_counter() - t0
            rng = np.random.default_rng(0)
            sampled = float(gradient_norms(g, rng.standard_normal((2000, g.n_inputs)))["jacobian_norm"].max())
            rows.append((name, prod.L, t_prod, sdp.L, t_sdp, sdp.method, sampled))
            log(f"  {name}: product {prod.L:.4g}, LipSDP {sdp.L:.4g} ({sdp.method}, {t_sdp:.1f} s)")
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.25, 0.5])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--examples", type=int, default=100, help="test examples to certify per sigma")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads while sampling (default: torch's choice)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--plot", help="save certified accuracy vs radius here (PNG)")
    ap.add_argument("--no-lipsdp", action="store_true", help="skip the LipSDP comparison")
    ap.add_argument("--sdp-time-limit", type=float, default=60.0)
    return ap.parse_args(argv)


def lipschitz_radii(graph, xte, yte, idx) -> tuple:
    """Deterministic Lipschitz certificates of the same model, for comparison: ``(L, global radii, local radii)``
    of the first 50 examples of ``idx`` (-1 where the prediction is wrong)."""
    b = product_bound(graph)
    rg, rl = [], []
    for i in idx[: min(len(idx), 50)]:
        g_r = certified_radius(graph, xte[i], b)
        l_r = local_certified_radius(graph, xte[i], b, "crown")
        ok = g_r.prediction == yte[i]
        rg.append(g_r.l2 if ok else -1.0)
        rl.append(l_r.l2 if ok else -1.0)
    return b.L, rg, rl


def run_sigma(args, sigma: float, data, idx, d: str) -> tuple:
    """Train, export and certify at one ``sigma``: ``(records, summary row, Lipschitz row)``."""
    xtr, ytr, xte, yte = data
    t0 = time.perf_counter()
    model = make_mlp(hidden=tuple(args.hidden), seed=0)
    train_noisy(model, xtr, ytr, sigma, epochs=args.epochs, seed=0)
    t_train = time.perf_counter() - t0
    path = os.path.join(d, f"mlp_sigma{sigma}.onnx")
    export_onnx(model, path, (64,))
    graph = load_onnx(path, device=args.device)
    clean = accuracy(model, xte, yte)
    log(f"sigma={sigma}: trained in {t_train:.1f} s, clean test accuracy {clean:.3f}")
    sps, t_one = throughput(graph, xte[0], sigma, args.n, args.n0, args.batch, args.threads)
    log(f"  throughput {sps:,.0f} samples/s ({t_one:.3f} s for n0+n={args.n0 + args.n})")
    t0 = time.perf_counter()
    params = SmoothingParams(sigma, args.n0, args.n, args.alpha, args.batch, threads=args.threads)
    recs = certify_dataset(graph, xte, yte, params, indices=idx)
    total = time.perf_counter() - t0
    times = [r.time_s for r in recs]
    abst = sum(r.predict == -1 for r in recs)
    summary = (sigma, clean, sps, statistics.mean(times), statistics.median(times),
               len(recs) * (args.n + args.n0) / total, abst, len(recs))
    return recs, summary, (sigma, *lipschitz_radii(graph, xte, yte, idx))


def print_tables(summary, curves, lip_rows) -> None:
    print("\n## throughput and time per example")
    print(f"{'sigma':>6} {'clean acc':>9} {'samples/s (1 ex)':>17} {'s/example mean':>15} {'median':>8} "
          f"{'samples/s (set)':>16} {'abstain':>8}")
    for sigma, clean, sps, mean_t, med_t, sps_set, abst, n_ex in summary:
        print(f"{sigma:>6g} {clean:>9.3f} {sps:>17,.0f} {mean_t:>15.3f} {med_t:>8.3f} {sps_set:>16,.0f} "
              f"{abst:>4}/{n_ex}")
    print("\n## certified accuracy of the smoothed classifier (l2 radius)")
    print(format_accuracy_table(curves, RADII))
    print("\n## for comparison: deterministic Lipschitz certificates of the same base models (first "
          f"{len(lip_rows[0][2]) if lip_rows else 0} examples)")
    head = "curve".ljust(22) + "".join(f"r={r:<8.3g}" for r in RADII)
    print(head)
    for sigma, L, rg, rl in lip_rows:
        for name, rs in ((f"sigma={sigma:g} global", rg), (f"sigma={sigma:g} local", rl)):
            arr = np.array(rs)
            print(name.ljust(22) + "".join(f"{np.mean(arr >= r):<10.3f}" for r in RADII))
        print(f"  (sigma={sigma:g}: product bound L <= {L:.4g})")


def print_lipsdp(args, xtr, ytr) -> None:
    log("LipSDP vs product bound:")
    small = make_mlp(hidden=(32,), seed=0)
    train_noisy(small, xtr, ytr, 0.25, epochs=30, seed=0)
    rows = lipsdp_table(args.sdp_time_limit, small)
    print("\n## LipSDP-Neuron vs product of layer norms (global l2 Lipschitz bound)")
    print(f"{'network':<28} {'product':>10} {'time':>7} {'LipSDP':>10} {'time':>7} {'ratio':>6} "
          f"{'sampled max |J|':>16}")
    for name, pL, tp, sL, ts, how, smp in rows:
        print(f"{name:<28} {pL:>10.4g} {tp:>6.2f}s {sL:>10.4g} {ts:>6.1f}s {pL / sL:>6.2f} {smp:>16.4g}"
              + ("" if how == "lipsdp" else f"  ({how}: fell back)"))


def main(argv=None) -> int:
    args = parse_args(argv)
    data = load_digits_split()
    xtr, ytr, xte, yte = data
    idx = list(range(min(args.examples, len(xte))))
    curves, summary, lip_rows = {}, [], []
    arch = "-".join(map(str, args.hidden))
    print(f"# randomized smoothing on sklearn digits (64 inputs, 10 classes); MLP 64-{arch}-10")
    print(f"# n0={args.n0}, n={args.n}, alpha={args.alpha}, {len(idx)} test examples per sigma, "
          f"device={args.device}, sampling threads={args.threads or torch.get_num_threads()}, "
          f"cpu count={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as d:
        for sigma in args.sigmas:
            recs, row, lip_row = run_sigma(args, sigma, data, idx, d)
            curves[f"sigma={sigma:g}"] = recs
            summary.append(row)
            lip_rows.append(lip_row)
    print_tables(summary, curves, lip_rows)
    if args.plot:
        plot_certified_accuracy(curves, args.plot, max_radius=max(RADII),
                                title="Smoothed MLP on sklearn digits")
        log(f"wrote {args.plot}")
    if not args.no_lipsdp:
        print_lipsdp(args, xtr, ytr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
