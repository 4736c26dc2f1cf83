"""Bookkeeping cost per ReLU-splitting iteration: the open domains in concatenated tensors (every stored
domain copied on every iteration, the scheme before ``DomainStore``) against ``DomainStore``'s slots.

Usage: python benchmarks/bench_domain_store.py [--neurons 3172] [--rows 1] [--batch 256] [--stored 10000 40000]
Prints milliseconds per iteration (take ``batch`` domains, add ``2 * batch`` children) at each stored count.
Defaults: the sizes of oval21's cifar_base_kw (3172 ReLU inputs, one row, batches of 256 domains).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from verifier.bab.domain_store import DomainStore  # noqa: E402


def fields(n, neurons, rows):
    return {"lo": torch.rand(n, neurons), "hi": torch.rand(n, neurons),
            "sgn": torch.zeros(n, neurons, dtype=torch.int8),
            "alpha": torch.rand(n, rows, neurons).half(), "beta": torch.rand(n, rows, neurons).half(),
            "plb": torch.rand(n, rows, dtype=torch.float64)}


def concatenated(n, neurons, rows, batch, iters):
    data, pri = fields(n, neurons, rows), torch.rand(n, dtype=torch.float64)
    t = time.perf_counter()
    for _ in range(iters):
        order = torch.argsort(pri)
        sel, rest = order[:batch], order[batch:]
        taken = {k: v[sel] for k, v in data.items()}
        data = {k: v[rest] for k, v in data.items()}
        pri = pri[rest]
        data = {k: torch.cat([v, taken[k], taken[k]]) for k, v in data.items()}
        pri = torch.cat([pri, torch.rand(2 * batch, dtype=torch.float64)])
    return (time.perf_counter() - t) / iters


def slots(n, neurons, rows, batch, iters):
    store = DomainStore(fields(n, neurons, rows), torch.rand(n, dtype=torch.float64))
    taken, _ = store.take(batch)  # the first growth (by half the capacity) is amortised over many iterations
    store.add({k: torch.cat([v, v]) for k, v in taken.items()}, torch.rand(2 * batch, dtype=torch.float64))
    t = time.perf_counter()
    for _ in range(iters):
        taken, _ = store.take(batch)
        store.add({k: torch.cat([v, v]) for k, v in taken.items()}, torch.rand(2 * batch, dtype=torch.float64))
    return (time.perf_counter() - t) / iters


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--neurons", type=int, default=3172)
    ap.add_argument("--rows", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--stored", type=int, nargs="+", default=[10_000, 40_000])
    a = ap.parse_args()
    print(f"neurons {a.neurons}, rows {a.rows}, batch {a.batch} (+{2 * a.batch} children per iteration)")
    print(f"{'stored':>8} {'concatenated ms/it':>20} {'DomainStore ms/it':>18}")
    for n in a.stored:
        c = concatenated(n, a.neurons, a.rows, a.batch, a.iters)
        s = slots(n, a.neurons, a.rows, a.batch, a.iters)
        print(f"{n:>8} {1000 * c:>20.1f} {1000 * s:>18.1f}")


if __name__ == "__main__":
    main()
