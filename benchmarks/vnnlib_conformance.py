"""Run the third-party VNN-LIB 2.0 conformance suite (`vnnlib-satisfactory`, PyPI) against `vnnlib-solver`.

    python benchmarks/vnnlib_conformance.py [--timeout 120] [--test CATEGORY] [--workdir DIR]
                                            [--solver-arg ARG ...] [--claim-all-operators] [--claim-all-theories]
                                            [--report FILE]

The suite generates ~180 small ONNX models with VNN-LIB 2.0 queries whose answers are known, asks the solver
`supports --onnx-operators` and the theory capabilities, skips the tests of what the solver does not claim, and
runs `vnnlib-solver verify Q --network N=M --timeout T` on the rest, parsing the verdict from stdout. Outcomes:
pass, fail (a wrong verdict: the most important finding), suspect (`unknown`, or an error: a refused query),
error (the suite's own timeout, or a test with no known answer), skip (not claimed).

Install the suite in a separate environment (it is not a project dependency):
    python -m venv --system-site-packages /work/venvs/vnnlib && /work/venvs/vnnlib/bin/pip install vnnlib-satisfactory
The suite is looked for in $VNNLIB_SATISFACTORY, /work/venvs/vnnlib/bin, then PATH; without it this script says so
and exits 0.

Diagnostics (not the default run the standard's drivers make): ``--solver-arg`` adds an argument to every
``verify`` (e.g. ``--solver-arg=--timeout=30``); ``--claim-all-operators`` answers
``supports --onnx-operators`` with every op type the loader knows, to see how the unclaimed ones fare;
``--claim-all-theories`` claims every theory of the standard, so that the hidden-node, multiple-network,
multiple-input/output and LIN/POLY tests run too.

Prints the suite's three `compliance` checks (formats of `supports` answers), the summary per category, each wrong
verdict with its query, and the refusals grouped by reason. Exit status 1 when a verdict is wrong.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTCOMES = ("pass", "fail", "suspect", "error", "skip")


def find_suite() -> str | None:
    for cand in (os.environ.get("VNNLIB_SATISFACTORY"), "/work/venvs/vnnlib/bin/vnnlib-satisfactory",
                 shutil.which("vnnlib-satisfactory")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


def solver_wrapper(folder: Path, extra: list[str], claim_all: bool, claim_theories: bool) -> Path:
    """A shell script the suite runs as its solver: `python -m verifier.cli.vnnlib_solver "$@"` (+ diagnostics)."""
    solver = f"{shlex.quote(sys.executable)} -m verifier.cli.vnnlib_solver"
    lines = ["#!/bin/sh"]  # no cd: the suite passes paths relative to its working directory
    claims: dict[str, list[str]] = {}
    if claim_all:
        sys.path.insert(0, str(ROOT))
        from frontends.onnx.loader import SUPPORTED
        claims["onnx-operators"] = sorted(SUPPORTED)
    if claim_theories:
        sys.path.insert(0, str(ROOT))
        from verifier.cli.vnnlib_supports import STANDARD_THEORIES
        claims.update({k: sorted(v) for k, v in STANDARD_THEORIES.items()})
    for cap, items in claims.items():
        (folder / f"{cap}.txt").write_text("".join(f"{i}\n" for i in items))
        lines.append(f'if [ "$1" = supports ] && [ "$2" = --{cap} ]; then '
                     f'cat {shlex.quote(str(folder / f"{cap}.txt"))}; exit 0; fi')
    if extra:
        lines.append(f'if [ "$1" = verify ]; then shift; exec {solver} verify "$@" '
                     f'{" ".join(shlex.quote(e) for e in extra)}; fi')
    lines.append(f'exec {solver} "$@"')
    path = folder / "vnnlib-solver.sh"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def refusal(stderr: str, stdout: str) -> str:
    """The reason of a refused or undecided run: its `error:` line with query-specific parts abstracted."""
    err = next((ln for ln in stderr.splitlines() if ln.startswith(("error:", "vnnlib-solver"))), None)
    if err is None:
        first = stdout.splitlines()[0] if stdout.strip() else "(no output)"
        return f"answered {first}"
    err = re.sub(r"'[^']*'", "'…'", err)
    err = re.sub(r"\b[A-Za-z_][\w.]*\[[\d,]+\]", "V[…]", err)  # indexed variables
    err = re.sub(r"(?<![\w.])-?\d+(\.\d+)?(e[-+]?\d+)?(?![\w.])", "N", err)
    err = re.sub(r"/\S+", "PATH", err)
    return err[:200]


def summarize(report: dict) -> int:
    results, skipped = report["results"], report["skipped"]
    by_cat: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in results:
        by_cat[r["category"]][r["outcome"]] += 1
    for s in skipped:
        by_cat[s["category"]]["skip"] += 1
    print(f"\n{'category':22s}" + "".join(f"{o:>8s}" for o in OUTCOMES))
    total: collections.Counter = collections.Counter()
    for cat in sorted(by_cat):
        total.update(by_cat[cat])
        print(f"{cat:22s}" + "".join(f"{by_cat[cat][o]:8d}" for o in OUTCOMES))
    print(f"{'TOTAL':22s}" + "".join(f"{total[o]:8d}" for o in OUTCOMES))

    wrong = [r for r in results if r["outcome"] == "fail"]
    print(f"\nwrong verdicts: {len(wrong)}")
    for r in wrong:
        print(f"  {r['test_id']}: expected {r['expected']}, answered {r['actual']}  query {r['vnnlib_path']}  "
              f"model {r['onnx_path']}")

    reasons: dict[str, list[str]] = collections.defaultdict(list)
    for r in results:
        if r["outcome"] in ("suspect", "error"):
            key = "suite timeout" if r.get("error") and "Timed out" in r["error"] else refusal(r["stderr"],
                                                                                              r["stdout"])
            reasons[key].append(r["test_id"])
    print(f"\nrefused or undecided ({sum(map(len, reasons.values()))}), by reason:")
    for key, ids in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        print(f"  {len(ids):4d}  {key}\n        e.g. {', '.join(ids[:4])}")
    missing = collections.Counter(s["missing_op"] for s in skipped)
    print(f"\nskipped ({len(skipped)}), by what the solver does not claim: "
          + ", ".join(f"{k} {v}" for k, v in missing.most_common()))
    return len(wrong)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timeout", type=float, default=120.0, help="per-test timeout in seconds (default 120)")
    ap.add_argument("--test", default=None, help="one test category only (e.g. relu)")
    ap.add_argument("--workdir", default=None, help="where the suite writes its artifacts (default: a temp dir)")
    ap.add_argument("--solver-arg", action="append", default=[], help="(diagnostic) an extra `verify` argument")
    ap.add_argument("--claim-all-operators", action="store_true",
                    help="(diagnostic) claim every op type of the loader in `supports --onnx-operators`")
    ap.add_argument("--claim-all-theories", action="store_true",
                    help="(diagnostic) claim every theory of the standard, to run the tests of each language feature")
    ap.add_argument("--report", default=None, help="copy the suite's report.json here")
    a = ap.parse_args()
    suite = find_suite()
    if suite is None:
        print("skipped: the conformance suite `vnnlib-satisfactory` is not installed (see this script's docstring)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        wrapper = solver_wrapper(Path(tmp), a.solver_arg, a.claim_all_operators, a.claim_all_theories)
        cmd = [suite, "run", "--solver", str(wrapper), "--timeout", str(a.timeout), "--no-verbose"]
        if a.test:
            cmd += ["--test", a.test]
        print("running:", " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        tail = [ln for ln in proc.stdout.splitlines() if re.match(r"\d+/\d+ passed", ln)]
        print("suite:", tail[-1] if tail else f"exit {proc.returncode}, no summary line\n{proc.stderr[-2000:]}")
        for check in ("opset", "vnnlib", "serialise-assignments"):  # the suite's checks of `supports` formats
            c = subprocess.run([suite, "compliance", check, "--solver", str(wrapper)], cwd=work, capture_output=True,
                               text=True)
            verdict = [ln for ln in c.stdout.splitlines() if ln.startswith(("PASS", "FAIL"))]
            print(f"compliance {check}: {verdict[-1] if verdict else f'exit {c.returncode}'}")
        report_path = work / ".vnnlib-satisfactory" / "report.json"
        if not report_path.is_file():
            print(f"no report written (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
            return 1
        if a.report:
            shutil.copy(report_path, a.report)
        n_wrong = summarize(json.loads(report_path.read_text()))
    return 1 if n_wrong else 0


if __name__ == "__main__":
    sys.exit(main())
