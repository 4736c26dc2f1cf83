"""VNN-COMP result files: writing, parsing, and the competition checker's rules."""
from __future__ import annotations

import os
import re

import numpy as np

from verifier.ir.result import Result, Verdict
from verifier.ir.spec import Spec

VERDICT_WORDS = ("sat", "unsat", "unknown", "timeout", "error")


def format_result(result: Result) -> str:
    """First line the verdict; after ``sat`` the counterexample ``((X_0 v) ... (Y_0 v) ...)``: the flat X and Y, a
    model's several inputs (outputs) flattened and concatenated in graph order (:mod:`frontends.onnx.io_layout`)."""
    lines = [str(result.verdict)]
    if result.verdict is Verdict.SAT:
        cex = result.counterexample
        pairs = [f"(X_{i} {float(v)!r})" for i, v in enumerate(cex.x)]
        pairs += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(cex.y)]
        lines.append("(" + "\n ".join(pairs) + ")")
    return "\n".join(lines) + "\n"


def write_result_file(path: str | os.PathLike, result: Result) -> None:
    with open(path, "w") as f:
        f.write(format_result(result))


_PAIR = re.compile(r"\(\s*([XY])_(\d+)\s+([^\s()]+)\s*\)")


def parse_result_text(text: str) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """(verdict word, X, Y); X and Y are None unless the verdict is sat. Raises ValueError on bad files."""
    stripped = text.strip()
    if not stripped:
        raise ValueError("empty result file")
    first, _, rest = stripped.partition("\n")
    word = first.strip().lower()
    if word in ("violated", "holds"):  # 2021 spelling
        word = {"violated": "sat", "holds": "unsat"}[word]
    if word not in VERDICT_WORDS:
        raise ValueError(f"unknown verdict {first.strip()!r}")
    if word != "sat":
        return word, None, None
    xs, ys = {}, {}
    for kind, idx, val in _PAIR.findall(rest):
        (xs if kind == "X" else ys)[int(idx)] = float(val)
    if not xs or not ys:
        raise ValueError("sat result without a counterexample")
    if sorted(xs) != list(range(len(xs))) or sorted(ys) != list(range(len(ys))):
        raise ValueError("counterexample indices are not contiguous from 0")
    return word, np.array([xs[i] for i in range(len(xs))]), np.array([ys[i] for i in range(len(ys))])


def check_counterexample(run_model, spec: Spec, x: np.ndarray, y: np.ndarray, x_tol: float = 1e-4,
                         y_tol: float = 1e-4, rel: float = 1e-3) -> tuple[bool, str]:
    """The competition checker's rules: X in a box within x_tol, the model's output on X matches the
    printed Y within relative ``rel``, and the output meets a disjunct within y_tol."""
    if x.size != spec.n_inputs or y.size != spec.n_outputs:
        return False, (f"counterexample has {x.size} inputs / {y.size} outputs, "
                       f"spec wants {spec.n_inputs}/{spec.n_outputs}")
    y_model = run_model(x)
    if not np.allclose(y_model, y, rtol=rel, atol=rel * 1e-2):
        return False, f"printed Y differs from the model's output (max diff {np.max(np.abs(y_model - y)):.3g})"
    for dj in spec.disjuncts:
        if dj.contains_input(x, x_tol) and dj.output_holds(y_model, y_tol):
            return True, "ok"
    return False, "X is outside every input box or Y meets no disjunct"
