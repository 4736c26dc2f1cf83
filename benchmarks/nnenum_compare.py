"""Run this verifier and nnenum side by side, one process per instance, and print the wall-time ratio.

Usage:
    python benchmarks/nnenum_compare.py [BENCH_DIR] [--every K] [--filter REGEX] [--limit N]
        [--timeout-scale S] [--jobs 1] [--csv OUT.csv] [--top 10] [--work-dir DIR]
        [--nnenum /work/peers/nnenum] [--nnenum-python /work/venvs/nnenum/bin/python]

BENCH_DIR defaults to ../shared/benchmarks/acasxu (beside the checkout). Each selected instance of its
instances.csv is run once with this verifier, as the competition runs a tool (``verify MODEL SPEC --timeout T
--result-file F`` in a fresh process), and once with nnenum the way its ``vnncomp_scripts/run_instance.sh``
does (``python3 -m nnenum.nnenum MODEL SPEC T RESULT`` with ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1`` and
its ``src`` on ``PYTHONPATH``). T is the instances.csv timeout times ``--timeout-scale``. The wall time of each
process is measured from its start to its exit, start-up included; a process still running at T + ``--grace``
seconds is killed with its whole process group. Gzipped models and specs are unpacked once, before any
timing, and both tools read the same plain files.

Answers are checked against BENCH_DIR/expected.csv:
* ours: a ``sat`` is checked like the competition's checker does (the counterexample re-run with
  onnxruntime): valid is correct, invalid is wrong; an ``unsat`` where expected says ``sat`` is wrong.
* nnenum writes no counterexamples (``violated`` only): its ``sat`` is correct only where expected says
  ``sat`` (wrong where it says ``unsat``, unconfirmed where it has no answer); ``holds`` is ``unsat``.
* an answer from a process whose wall time exceeded T counts as ``late`` (unsolved), as in the competition.
The table gives each instance, then the solved counts, the total wall of each tool over all instances
(timeouts included), the ratio ours/nnenum, and the instances with the highest per-instance ratio and
the slowest of ours. ``--jobs 1`` (the default) runs everything sequentially so that the two tools do not
disturb each other; the load average is printed before and after.

Installing nnenum (outside this checkout; never commit it):
    # 1. its source: a clone of github.com/stanleybak/nnenum (the ``fetch`` tool gives a bare mirror):
    git clone /work/.mirror/stanleybak+nnenum/repo /work/peers/nnenum
    #    (if the checkout fails on large example files, check out only the code:
    #     cd /work/peers/nnenum && git checkout HEAD -- src vnncomp_scripts pyproject.toml README.md)
    # 2. a separate virtualenv with its requirements (pyproject.toml of nnenum):
    python -m venv /work/venvs/nnenum
    /work/venvs/nnenum/bin/pip install "numpy>=1.26" "scipy>=1.11" "threadpoolctl>=3.1" \\
        "onnx>=1.15,<1.17" "onnxruntime==1.19.0" "skl2onnx>=1.16" swiglpk termcolor
The paths can also be given by the environment: NNENUM_DIR and NNENUM_PYTHON.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from verifier.bench.scoring import CounterexampleChecker  # noqa: E402

DEFAULT_BENCH = ROOT.parent / "shared" / "benchmarks" / "acasxu"
DEFAULT_NNENUM = "/work/peers/nnenum"
DEFAULT_NNENUM_PY = "/work/venvs/nnenum/bin/python"
NNENUM_WORDS = {"holds": "unsat", "violated": "sat", "timeout": "timeout", "error": "error"}


@dataclass
class Run:
    """One process: its verdict word, the judgement of it, its wall time and where its log is."""
    verdict: str = "-"
    status: str = "-"  # correct / wrong / unconfirmed / unsolved / late
    wall: float = 0.0
    note: str = ""


@dataclass
class Row:
    onnx: str
    vnnlib: str
    timeout: float
    expected: str
    ours: Run | None = None
    nnenum: Run | None = None

    @property
    def ratio(self) -> float:
        return self.ours.wall / self.nnenum.wall if self.nnenum.wall > 0 else float("inf")


class NnenumMissing(RuntimeError):
    pass


def check_nnenum(nnenum_dir: Path, python: str) -> None:
    """Raise NnenumMissing with the install steps when nnenum or its virtualenv is not usable."""
    how = ("install it outside the checkout (see the docstring of benchmarks/nnenum_compare.py):\n"
           "  git clone /work/.mirror/stanleybak+nnenum/repo /work/peers/nnenum   # after the fetch tool\n"
           "  python -m venv /work/venvs/nnenum && /work/venvs/nnenum/bin/pip install 'numpy>=1.26' 'scipy>=1.11' "
           "'threadpoolctl>=3.1' 'onnx>=1.15,<1.17' 'onnxruntime==1.19.0' 'skl2onnx>=1.16' swiglpk termcolor\n"
           "or give --nnenum DIR / --nnenum-python PY (or NNENUM_DIR / NNENUM_PYTHON)")
    if not (nnenum_dir / "src" / "nnenum" / "nnenum.py").is_file():
        raise NnenumMissing(f"nnenum not found: {nnenum_dir}/src/nnenum/nnenum.py does not exist; {how}")
    if not shutil.which(python):
        raise NnenumMissing(f"nnenum's python not found: {python}; {how}")
    probe = subprocess.run([python, "-c", "import numpy, scipy, onnx, onnxruntime, swiglpk, termcolor, nnenum.nnenum"],
                           env=nnenum_env(nnenum_dir), capture_output=True, text=True)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        raise NnenumMissing(f"nnenum cannot be imported with {python}: {last}; {how}")


def nnenum_env(nnenum_dir: Path) -> dict[str, str]:
    """The environment run_instance.sh sets up: its src on PYTHONPATH, single-threaded BLAS."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(nnenum_dir / "src")) if p)
    env["OPENBLAS_NUM_THREADS"] = "1"
    env["OMP_NUM_THREADS"] = "1"
    return env


def ours_command() -> list[str]:
    """The ``verify`` console script of this interpreter (not a pyenv shim, whose bash start-up would count)."""
    script = Path(sys.executable).parent / "verify"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "verifier.cli.main"]


def ours_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def timed_process(cmd: list[str], env: dict[str, str], log: Path, kill_after: float,
                  cwd: Path | None = None) -> tuple[float, bool]:
    """(wall seconds, killed): run ``cmd`` (from ``cwd``) in its own session, output to ``log``; kill its group when
    late. ``benchmarks/vnncomp2024_counts.py`` runs its instances with it too."""
    with open(log, "wb") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        killed = False
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            killed = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        wall = time.monotonic() - t0
    try:  # workers left behind by the tool (its own process group only)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return wall, killed


def read_word(path: Path) -> tuple[str, str]:
    """(first line of a result file, its whole text); ('none', '') when there is none."""
    if not path.exists():
        return "none", ""
    text = path.read_text(errors="replace")
    first = text.strip().partition("\n")[0].strip().lower()
    return (first or "none"), text


def judge_ours(row: Row, word: str, text: str, checker: CounterexampleChecker) -> tuple[str, str]:
    """(status, note) of our answer."""
    if word == "sat":
        ok, why = checker.check(row.onnx, row.vnnlib, text)
        return ("correct", "") if ok else ("wrong", f"invalid counterexample: {why}")
    if word == "unsat":
        if row.expected == "sat":
            return "wrong", "unsat where expected says sat"
        return ("correct", "") if row.expected == "unsat" else ("unconfirmed", "")
    return "unsolved", ""


def judge_nnenum(row: Row, word: str) -> tuple[str, str]:
    if word in ("sat", "unsat"):
        if row.expected == word:
            return "correct", ""
        if row.expected in ("sat", "unsat"):
            return "wrong", f"{word} where expected says {row.expected}"
        return "unconfirmed", ""
    return "unsolved", ""


def run_ours(row: Row, plain: Path, work: Path, idx: int, grace: float, checker: CounterexampleChecker) -> Run:
    res, log = work / f"{idx:04d}_ours.txt", work / f"{idx:04d}_ours.log"
    cmd = ours_command() + [str(plain / row.onnx), str(plain / row.vnnlib), "--timeout", f"{row.timeout:g}",
                            "--result-file", str(res)]
    wall, killed = timed_process(cmd, ours_env(), log, row.timeout + grace)
    word, text = read_word(res)
    status, note = judge_ours(row, word, text, checker)
    return finish(Run(word, status, wall, note), row, killed, log)


def run_nnenum(row: Row, plain: Path, work: Path, idx: int, grace: float, nnenum_dir: Path, python: str) -> Run:
    res, log = work / f"{idx:04d}_nnenum.txt", work / f"{idx:04d}_nnenum.log"
    cmd = [python, "-m", "nnenum.nnenum", str(plain / row.onnx), str(plain / row.vnnlib), f"{row.timeout:g}",
           str(res)]
    wall, killed = timed_process(cmd, nnenum_env(nnenum_dir), log, row.timeout + grace)
    raw, _ = read_word(res)
    word = NNENUM_WORDS.get(raw, "unknown" if raw != "none" else "none")
    status, note = judge_nnenum(row, word)
    return finish(Run(word, status, wall, note), row, killed, log)


def finish(run: Run, row: Row, killed: bool, log: Path) -> Run:
    if killed:
        run.verdict, run.status, run.note = "killed", "unsolved", f"killed at T+grace; log {log}"
    elif run.wall > row.timeout and run.status in ("correct", "unconfirmed"):
        run.status, run.note = "late", f"answered after {run.wall:.1f}s > T={row.timeout:g}s"
    elif run.verdict in ("none", "error"):
        run.note = f"no answer; log {log}"
    return run


def plain_copy(bench: Path, rel: str, plain: Path) -> None:
    """Make plain/rel a plain file: a link to bench/rel, or bench/rel.gz unpacked."""
    dst = plain / rel
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    src = bench / rel
    if src.exists():
        with open(src, "rb") as f:
            magic = f.read(2)
        if magic != b"\x1f\x8b":
            os.symlink(src.resolve(), dst)
            return
    else:
        src = Path(str(src) + ".gz")
        if not src.exists():
            raise SystemExit(f"error: {bench / rel} not found (nor {src.name})")
    with gzip.open(src, "rb") as f_in, open(dst, "wb") as f_out:
        shutil.copyfileobj(f_in, f_out)


def load_rows(bench: Path, args) -> list[Row]:
    expected = {}
    if (bench / "expected.csv").exists():
        for r in csv.DictReader(open(bench / "expected.csv")):
            expected[(r["onnx"], r["vnnlib"])] = r["expected"]
    inst = bench / "instances.csv"
    if not inst.exists():
        inst = next(bench.glob("*instances.csv"), None)
        if inst is None:
            raise SystemExit(f"error: no instances.csv in {bench}")
    lines = [r for r in csv.reader(open(inst)) if r and args.filter.search(",".join(r))]
    lines = lines[:: max(1, args.every)]
    if args.limit:
        lines = lines[: args.limit]
    norm = lambda p: re.sub(r"^\./", "", p.strip())  # noqa: E731
    return [Row(norm(o), norm(v), float(t) * args.timeout_scale, expected.get((norm(o), norm(v)), "?"))
            for o, v, t in lines]


def counts(runs: list[Run]) -> str:
    c = {k: sum(r.status == k for r in runs) for k in ("correct", "wrong", "unconfirmed", "late")}
    return (f"{c['correct']}/{len(runs)} correct, {c['wrong']} wrong"
            + (f", {c['unconfirmed']} unconfirmed" if c["unconfirmed"] else "")
            + (f", {c['late']} late" if c["late"] else ""))


def short(name: str) -> str:
    return Path(name).name.replace("ACASXU_run2a_", "").replace("_batch_2000.onnx", "").replace(".vnnlib", "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bench", nargs="?", default=str(DEFAULT_BENCH), help="benchmark folder (with instances.csv)")
    ap.add_argument("--every", type=int, default=1, help="only every K-th instance (the 1st, the K+1-th, ...)")
    ap.add_argument("--filter", default="", type=re.compile, help="only instances whose csv line matches this")
    ap.add_argument("--limit", type=int, default=0, help="only the first N selected instances")
    ap.add_argument("--timeout-scale", type=float, default=1.0, help="scale the instances.csv timeouts")
    ap.add_argument("--grace", type=float, default=30.0, help="kill a process this many seconds after its T")
    ap.add_argument("--jobs", type=int, default=1, help="instances run at once (1: sequential, the default)")
    ap.add_argument("--csv", default="", help="write the per-instance table here")
    ap.add_argument("--top", type=int, default=10, help="how many slowest instances to list")
    ap.add_argument("--work-dir", default="", help="keep result files and logs here (default: a temporary folder)")
    ap.add_argument("--nnenum", default=os.environ.get("NNENUM_DIR", DEFAULT_NNENUM), help="nnenum's checkout")
    ap.add_argument("--nnenum-python", default=os.environ.get("NNENUM_PYTHON", DEFAULT_NNENUM_PY),
                    help="the python of nnenum's virtualenv")
    args = ap.parse_args(argv)

    bench, nnenum_dir = Path(args.bench), Path(args.nnenum)
    try:
        check_nnenum(nnenum_dir, args.nnenum_python)
    except NnenumMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = load_rows(bench, args)
    if not rows:
        print("error: no instance selected", file=sys.stderr)
        return 2
    tmp = None if args.work_dir else tempfile.mkdtemp(prefix="nnenum_compare_")
    work = Path(args.work_dir or tmp)
    plain = work / "plain"
    for r in rows:
        plain_copy(bench, r.onnx, plain)
        plain_copy(bench, r.vnnlib, plain)
    checker = CounterexampleChecker(plain)

    load0 = os.getloadavg()
    print(f"{len(rows)} instances of {bench}; ours: {' '.join(ours_command())}; nnenum: {nnenum_dir} "
          f"({args.nnenum_python}); jobs {args.jobs}; load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    print(f"{'#':>3} {'instance':<22} {'T':>5} {'expected':<8} | {'ours':<8} {'wall':>7} | "
          f"{'nnenum':<8} {'wall':>7} | ratio")

    def one(i: int) -> Row:
        r = rows[i]
        r.ours = run_ours(r, plain, work, i, args.grace, checker)
        r.nnenum = run_nnenum(r, plain, work, i, args.grace, nnenum_dir, args.nnenum_python)
        mark = lambda run: run.verdict + ("!" if run.status == "wrong" else "*" if run.status == "late" else "")  # noqa: E731
        print(f"{i + 1:>3} {short(r.onnx) + ' ' + short(r.vnnlib):<22} {r.timeout:>5g} {r.expected:<8} | "
              f"{mark(r.ours):<8} {r.ours.wall:>6.2f}s | {mark(r.nnenum):<8} {r.nnenum.wall:>6.2f}s | "
              f"{r.ratio:5.2f}", flush=True)
        for who, run in (("ours", r.ours), ("nnenum", r.nnenum)):
            if run.note:
                print(f"      {who}: {run.status}: {run.note}", flush=True)
        return r

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(one, range(len(rows))))
    load1 = os.getloadavg()

    ours_total = sum(r.ours.wall for r in done)
    nn_total = sum(r.nnenum.wall for r in done)
    print(f"\nload average after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print(f"ours:   {counts([r.ours for r in done])}; total wall {ours_total:.1f}s")
    print(f"nnenum: {counts([r.nnenum for r in done])}; total wall {nn_total:.1f}s")
    print(f"ratio ours/nnenum (total wall): {ours_total / nn_total:.2f}" if nn_total > 0 else "ratio: -")
    k = max(0, args.top)
    print(f"\nhighest per-instance ratios ours/nnenum (top {k}):")
    for r in sorted(done, key=lambda r: -r.ratio)[:k]:
        print(f"  {short(r.onnx)} {short(r.vnnlib):<8} ours {r.ours.wall:6.2f}s  nnenum {r.nnenum.wall:6.2f}s  "
              f"ratio {r.ratio:5.2f}")
    print(f"slowest of ours (top {k}):")
    for r in sorted(done, key=lambda r: -r.ours.wall)[:k]:
        print(f"  {short(r.onnx)} {short(r.vnnlib):<8} ours {r.ours.wall:6.2f}s  nnenum {r.nnenum.wall:6.2f}s  "
              f"ratio {r.ratio:5.2f}")

    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["onnx", "vnnlib", "timeout_s", "expected", "ours_verdict", "ours_status", "ours_wall_s",
                        "nnenum_verdict", "nnenum_status", "nnenum_wall_s", "ratio"])
            for r in done:
                w.writerow([r.onnx, r.vnnlib, f"{r.timeout:g}", r.expected, r.ours.verdict, r.ours.status,
                            f"{r.ours.wall:.3f}", r.nnenum.verdict, r.nnenum.status, f"{r.nnenum.wall:.3f}",
                            f"{r.ratio:.3f}"])
    failed = any(run.note and "log" in run.note for r in done for run in (r.ours, r.nnenum))
    if tmp and not failed:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"result files and logs kept in {work}")
    wrong = sum(r.ours.status == "wrong" for r in done)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
