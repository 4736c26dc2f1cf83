"""Wall times of `vnnlib-solver` as a program: --help, supports, and a one-ReLU query (sat and unsat).

    python benchmarks/vnnlib_solver_startup.py [--repeat 5]

Prints the median (and min/max) wall time of each command over ``--repeat`` fresh processes, then where a
``verify`` run's time goes: the bare interpreter, and the import of each heavy module it needs (each in a fresh
process, so the figures overlap: torch and onnx share numpy). The one-ReLU model is Y = Relu(X) with X in [-1, 1];
the sat query asks Y >= 0.5, the unsat one Y >= 2.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAD = ("(vnnlib-version <2.0>)\n(declare-network N\n  (declare-input X real [1])\n  (declare-output Y real [1]))\n"
        "(assert (>= X[0] -1.0))\n(assert (<= X[0] 1.0))\n")
SOLVER = [sys.executable, "-m", "verifier.cli.vnnlib_solver"]
IMPORTS = ["verifier.cli.vnnlib_solver", "numpy", "onnx", "onnxruntime", "torch", "verifier.api", "frontends.load",
           "verifier.cli.vnnlib_commands"]


def one_relu(folder: Path) -> tuple[Path, Path, Path]:
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "relu", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, folder / "relu.onnx")
    (folder / "sat.vnnlib").write_text(HEAD + "(assert (>= Y[0] 0.5))\n")
    (folder / "unsat.vnnlib").write_text(HEAD + "(assert (>= Y[0] 2.0))\n")
    return folder / "relu.onnx", folder / "sat.vnnlib", folder / "unsat.vnnlib"


def wall(cmd: list[str], repeat: int, expect: str | None = None) -> list[float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
        times.append(time.perf_counter() - t)
        first = r.stdout.splitlines()[0] if r.stdout else ""
        if r.returncode != 0 or (expect is not None and first != expect):
            sys.exit(f"{' '.join(cmd)}: exit {r.returncode}, first line {first!r}, stderr {r.stderr.strip()!r}")
    return times


def row(label: str, times: list[float]) -> None:
    print(f"{label:44s} median {statistics.median(times):6.2f} s   min {min(times):6.2f}   max {max(times):6.2f}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        model, sat, unsat = one_relu(Path(d))
        net = ["--network", f"N={model}", "--timeout", "60"]
        print(f"vnnlib-solver wall times, {a.repeat} fresh processes each")
        row("--help", wall(SOLVER + ["--help"], a.repeat))
        row("supports --onnx-operators", wall(SOLVER + ["supports", "--onnx-operators"], a.repeat))
        row("verify one-ReLU sat", wall(SOLVER + ["verify", str(sat)] + net, a.repeat, "sat"))
        row("verify one-ReLU unsat", wall(SOLVER + ["verify", str(unsat)] + net, a.repeat, "unsat"))
    print("\nwhere a verify run's time goes (import of each module alone, fresh process):")
    row("python -c pass", wall([sys.executable, "-c", "pass"], a.repeat))
    for m in IMPORTS:
        row(f"import {m}", wall([sys.executable, "-c", f"import {m}"], a.repeat))


if __name__ == "__main__":
    main()
