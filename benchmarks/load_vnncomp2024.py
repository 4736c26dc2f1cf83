"""Which VNN-COMP 2024 networks the loader takes: every ``.onnx`` / ``.onnx.gz`` under
``<root>/<benchmark>/onnx/`` loaded with ``frontends.load.load_problem`` (the static check, the layer graph and
the forward comparison with onnxruntime on points of the network's first property in ``instances.csv``), then a
table per benchmark: what loads, and for each network that does not the reason (the unsupported op types, or
the loader's one-line error).

    python benchmarks/load_vnncomp2024.py [root]   (default /work/shared/benchmarks/vnncomp2024)
"""
from __future__ import annotations

import csv
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from frontends.load import load_model, load_problem  # noqa: E402
from frontends.onnx.files import read_model_bytes  # noqa: E402
from verifier.ir.errors import VerifierError  # noqa: E402

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/benchmarks/vnncomp2024")


def first_specs(bench: Path) -> dict[str, Path]:
    """Network file name (without .gz) -> the first property listed for it in instances.csv."""
    out: dict[str, Path] = {}
    csv_path = bench / "instances.csv"
    if csv_path.exists():
        for row in csv.reader(csv_path.open()):
            if len(row) >= 2:
                out.setdefault(Path(row[0].strip()).name.removesuffix(".gz"), bench / row[1].strip())
    return out


def check_on_random_points(net: Path, n: int = 4):
    """The graph of a network without a property, its forward pass compared with onnxruntime on ``n`` points
    uniform in [0, 1]."""
    model = load_model(read_model_bytes(net), str(net))
    g = model.graph
    x = np.random.default_rng(0).random((n, g.n_inputs))
    with torch.no_grad():
        ours = g.forward(g.as_input(x)).double().numpy()
    for k in range(n):
        ref = model.reference.run(x[k])
        if np.abs(ours[k] - ref.reshape(-1)).max() > 1e-4 * (1 + np.abs(ref).max()):
            raise VerifierError(f"differs from onnxruntime by {np.abs(ours[k] - ref.reshape(-1)).max():.3g}")
    return g


def reason(e: Exception) -> str:
    msg = str(e)
    ops = [m.group(1) for n in (getattr(e, "nodes", None) or []) if (m := re.search(r"\((\w+)\)$", n))]
    if ops and "unsupported node" in msg:
        return "unsupported: " + ", ".join(sorted(set(ops)))
    msg = msg.split(": ", 1)[1] if msg.startswith("/") and ": " in msg else msg
    return msg if len(msg) <= 160 else msg[:157] + "..."


def main() -> None:
    torch.set_num_threads(1)
    total = ok = 0
    t_all = time.time()
    for bench in sorted(p for p in ROOT.iterdir() if (p / "onnx").is_dir()):
        specs = first_specs(bench)
        nets = sorted(p for p in (bench / "onnx").iterdir() if p.name.endswith((".onnx", ".onnx.gz")))
        rows = []
        for net in nets:
            total += 1
            t = time.time()
            spec = specs.get(net.name.removesuffix(".gz"))
            try:
                with net.open("rb") as f:
                    if f.read(7) == b"version":
                        raise VerifierError("a Git LFS pointer, not the model")
                if spec is not None:
                    graph = load_problem(net, spec).graph
                    how = "checked on its first property"
                else:
                    graph = check_on_random_points(net)
                    how = "no property: checked on random points"
                status, why = "loads", f"{len(graph.nodes)} nodes ({how}), ops " + ",".join(
                    sorted({n.op.kind for n in graph.nodes}))
                ok += 1
            except VerifierError as e:
                status, why = "refused", reason(e)
            except Exception as e:  # a traceback here is a loader bug: show it as such
                status, why = "CRASH", f"{type(e).__name__}: {e}"[:160]
            rows.append((net.name, status, f"{time.time() - t:5.1f}s", why))
        n_ok = sum(r[1] == "loads" for r in rows)
        print(f"\n== {bench.name}: {n_ok}/{len(rows)} load")
        for r in rows:
            print(f"  {r[0]:<70s} {r[1]:<8s} {r[2]}  {r[3]}")
    print(f"\n{ok}/{total} networks load ({time.time() - t_all:.0f} s)")


if __name__ == "__main__":
    main()
