"""Solved counts of this verifier on the VNN-COMP 2024 benchmarks, beside the tools of VNN-COMP 2024 on the same
instances and within the same time limit.

Usage:
    python benchmarks/vnncomp2024_counts.py [BENCH ...] [--root DIR] [--every K|auto] [--limit N]
        [--timeout-scale S] [--max-timeout T] [--grace G] [--threads 1] [--csv OUT.csv] [--work-dir DIR]
        [--results-dir DIR] [--no-recheck] [--set KEY=VALUE ...] [--dry-run]

    # about 4 instances per benchmark spread over each instances.csv, at most 30 s each:
    python benchmarks/vnncomp2024_counts.py --limit 4 --max-timeout 30 --csv /tmp/counts.csv

BENCH names folders under ``--root`` (default ``../shared/benchmarks/vnncomp2024`` beside the checkout); without
any, every folder there that holds an ``instances.csv`` is run, in name order. For each benchmark:

* ``instances.csv`` (model, spec, timeout; paths relative to the folder) gives the instances; ``--every K`` keeps
  every K-th row (``auto``, the default: ``len // limit`` so that the ``--limit`` rows spread over the file),
  ``--limit N`` the first N of those. A selected instance whose model or spec is missing from the public copy
  (neither the file nor ``.gz``), or is a Git LFS pointer, is not run and counts as *absent*; it is left out of
  every count, the 2024 tools' included.
* Each other selected instance runs in a fresh process, as the competition runs a tool:
  ``python -m verifier.cli MODEL SPEC --timeout T' --result-file F --threads 1`` with the repository root as the
  working directory (so this checkout's code runs), where T' = min(timeout * ``--timeout-scale``,
  ``--max-timeout``). Gzipped files are unpacked once into ``--work-dir`` before any timing. The wall time runs
  from the start of the process to its exit (start-up included); the process group is killed at T' +
  ``--grace``. An answer given after T' counts as *late* (unsolved).
* Our answer is judged against ``expected.csv`` (columns onnx, vnnlib, expected, sat_votes, unsat_votes; expected
  is the 2024 consensus: sat, unsat or unknown): a ``sat`` or ``unsat`` equal to expected is *correct*; one that
  contradicts it is *WRONG* (must never happen); a ``sat`` where expected is unknown is correct (the CLI prints
  sat only after its counterexample is validated with onnxruntime, and unless ``--no-recheck`` this script checks
  the result file's counterexample again with the competition's rules: an invalid one is WRONG); an ``unsat``
  where expected is unknown is *unconfirmed*. Solved = correct + unconfirmed (the rule the 2024 tools get too).
* The 2024 tools' answers come from ``--results-dir``/2024_<benchmark>.csv (columns
  tool,onnx,vnnlib,result,time_s,raw_result,prepare_s). On exactly the instances we ran, a tool solved an
  instance when its result is sat or unsat and does not contradict expected; counted at the competition's full
  timeout and within T' (time_s <= T'; time_s is the tool's wall time on its own hardware, GPU or 64 vCPUs, start-up
  included). A tool with no row for an instance did not solve it. The median is over the tools that took part in
  the benchmark (that have rows in its file).

Per benchmark it prints one row per instance (index in instances.csv, model, spec, T', expected, our verdict, our
status, wall seconds, how many 2024 tools solved it within T' and at the full timeout) and each tool's counts.
The summary has one row per benchmark:

    benchmark      the folder name
    run            instances run (selected and present)
    absent         selected instances not run: a file missing from the public copy or an LFS pointer
    ours (s/u)     our solved count (correct + unconfirmed), and of it how many sat / unsat
    unconf         of our solved, the unsat where expected is unknown
    wrong          our answers contradicting expected or with an invalid counterexample (must be 0)
    late           our sat / unsat given after T' (not counted as solved)
    median@T'      the median over the 2024 tools of their solved count within T'
    best@T'        the highest solved count of a 2024 tool within T', and the tool
    nnenum@T'      nnenum's solved count within T' ("-" where it did not take part)
    median@full    the median over the 2024 tools of their solved count at the competition's full timeout
    wall           the sum of our wall times on the benchmark

``--csv OUT`` writes one row per selected instance (absent ones included) with the same fields and the names of
the tools that solved it within T' and at the full timeout.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.nnenum_compare import timed_process  # noqa: E402  (one process per instance, killed when late)
from verifier.bench.scoring import CounterexampleChecker  # noqa: E402

DEFAULT_ROOT = ROOT.parent / "shared" / "benchmarks" / "vnncomp2024"
DEFAULT_RESULTS = ROOT.parent / "shared" / "vnncomp_results"
SOLVED_WORDS = ("sat", "unsat")


@dataclass
class Instance:
    """One row of instances.csv and what happened to it."""

    index: int  # row number in instances.csv, from 0
    onnx: str  # as written there (relative to the benchmark folder), without a leading ./
    vnnlib: str
    timeout_csv: float  # the competition's timeout
    t_used: float  # T' = min(timeout_csv * scale, max_timeout)
    expected: str  # sat | unsat | unknown (missing rows are unknown)
    absent: str = ""  # why the instance is not run ("" when it is)
    verdict: str = "-"  # our first result-file line: sat, unsat, unknown, timeout, error, none, killed
    status: str = "-"  # correct | unconfirmed | WRONG | late | unsolved | absent
    wall: float = 0.0
    note: str = ""
    tools_at_t: list[str] = field(default_factory=list)  # 2024 tools that solved it within T'
    tools_full: list[str] = field(default_factory=list)  # ... at the full timeout

    @property
    def key(self) -> tuple[str, str]:
        return key_of(self.onnx, self.vnnlib)


def key_of(onnx: str, vnnlib: str) -> tuple[str, str]:
    """Instance key shared by instances.csv, expected.csv and the results CSVs: no ./, no .gz."""
    def norm(p: str) -> str:
        p = p.strip().replace("\\", "/")
        while p.startswith("./"):
            p = p[2:]
        return p[:-3] if p.endswith(".gz") else p
    return norm(onnx), norm(vnnlib)


# ----------------------------------------------------------------------------- reading the benchmark
def read_expected(bench: Path) -> dict[tuple[str, str], str]:
    path = bench / "expected.csv"
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {key_of(r["onnx"], r["vnnlib"]): (r.get("expected") or "unknown").strip().lower()
                for r in csv.DictReader(f)}


def select_rows(rows: list[list[str]], every: str, limit: int) -> list[tuple[int, list[str]]]:
    """(index, row) pairs kept by --every / --limit; ``auto`` spreads ``limit`` rows over the whole file."""
    if every == "auto":
        k = max(1, len(rows) // limit) if limit else 1
    else:
        k = max(1, int(every))
    picked = list(enumerate(rows))[::k]
    return picked[:limit] if limit else picked


def read_instances(bench: Path, args) -> list[Instance]:
    expected = read_expected(bench)
    with open(bench / "instances.csv", newline="") as f:
        rows = [r for r in csv.reader(f) if len(r) >= 3 and r[0].strip()]
    out = []
    for i, r in select_rows(rows, args.every, args.limit):
        onnx, vnnlib = key_of(r[0], r[1])
        t_csv = float(r[2])
        t_used = min(t_csv * args.timeout_scale, args.max_timeout)
        out.append(Instance(i, onnx, vnnlib, t_csv, t_used, expected.get((onnx, vnnlib), "unknown")))
    return out


def source_of(bench: Path, rel: str) -> Path | None:
    """The file for ``rel`` in the benchmark folder: itself or ``rel.gz``; None when neither exists."""
    for p in (bench / rel, bench / (rel + ".gz")):
        if p.is_file():
            return p
    return None


def is_lfs_pointer(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(200)
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as g:
                head = g.read(200)
        except (OSError, EOFError):
            return True  # not a readable gzip file: as good as absent
    return head.startswith(b"version https://git-lfs")


def plain_copy(bench: Path, rel: str, plain: Path) -> str:
    """Make plain/rel a plain file (a link, or the .gz unpacked); return why not ("" when done)."""
    dst = plain / rel
    if dst.exists():
        return ""
    src = source_of(bench, rel)
    if src is None:
        return f"{rel} not in the public copy"
    if is_lfs_pointer(src):
        return f"{src.name} is a Git LFS pointer"
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if not gz:
        os.symlink(src.resolve(), dst)
        return ""
    tmp = dst.with_name(dst.name + ".part")
    with gzip.open(src, "rb") as f_in, open(tmp, "wb") as f_out:
        shutil.copyfileobj(f_in, f_out)
    tmp.rename(dst)
    return ""


# ----------------------------------------------------------------------------- running ours
def verify_command(inst: Instance, plain: Path, result: Path, args) -> list[str]:
    cmd = [sys.executable, "-m", "verifier.cli", str(plain / inst.onnx), str(plain / inst.vnnlib),
           "--timeout", f"{inst.t_used:g}", "--result-file", str(result), "--threads", str(args.threads)]
    for s in args.set or []:
        cmd += ["--set", s]
    return cmd


def repo_env() -> dict[str, str]:
    """The environment of a run: this checkout's code first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def first_word(result: Path, log: Path) -> tuple[str, str]:
    """(verdict word, result-file text): the result file's first line, else the first line of stdout."""
    if result.exists():
        text = result.read_text(errors="replace")
        word = text.strip().partition("\n")[0].strip().lower()
        if word:
            return word, text
    if log.exists():
        first = log.read_text(errors="replace").strip().partition("\n")[0].strip().lower()
        if first in ("unsat", "unknown", "timeout", "error"):  # a sat needs the result file's counterexample
            return first, ""
    return "none", ""


def judge(inst: Instance, word: str, text: str, checker: CounterexampleChecker | None) -> tuple[str, str]:
    """(status, note) of our answer ``word`` to ``inst``."""
    if word not in SOLVED_WORDS:
        return "unsolved", ""
    if inst.expected in SOLVED_WORDS and word != inst.expected:
        return "WRONG", f"{word} where expected says {inst.expected}"
    if word == "sat":
        if checker is not None:
            ok, why = checker.check(inst.onnx, inst.vnnlib, text)
            if not ok:
                return "WRONG", f"counterexample not valid: {why}"
        return "correct", ""
    return ("correct", "") if inst.expected == "unsat" else ("unconfirmed", "")


def run_ours(inst: Instance, plain: Path, work: Path, bench_name: str, args,
             checker: CounterexampleChecker | None) -> None:
    stem = work / f"{bench_name}_{inst.index:04d}"
    result, log = Path(f"{stem}.txt"), Path(f"{stem}.log")
    result.unlink(missing_ok=True)
    inst.wall, killed = timed_process(verify_command(inst, plain, result, args), repo_env(), log,
                                      inst.t_used + args.grace, cwd=ROOT)
    word, text = first_word(result, log)
    if killed:
        inst.verdict, inst.status, inst.note = "killed", "unsolved", f"killed at T'+{args.grace:g}s; log {log}"
        return
    inst.verdict = word
    inst.status, inst.note = judge(inst, word, text, checker)
    if inst.status in ("correct", "unconfirmed") and inst.wall > inst.t_used:
        inst.status, inst.note = "late", f"answered after {inst.wall:.1f}s > T'={inst.t_used:g}s"
    elif word in ("none", "error") and not inst.note:
        inst.note = f"log {log}"


# ----------------------------------------------------------------------------- the 2024 tools
def read_tools(path: Path) -> dict[str, dict[tuple[str, str], tuple[str, float]]]:
    """tool -> instance key -> (result, time_s)."""
    tools: dict[str, dict[tuple[str, str], tuple[str, float]]] = {}
    if not path.exists():
        return tools
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            try:
                t = float(r.get("time_s") or "nan")
            except ValueError:
                t = math.nan
            tools.setdefault(r["tool"], {})[key_of(r["onnx"], r["vnnlib"])] = ((r["result"] or "").strip().lower(), t)
    return tools


def tool_solved(answer: tuple[str, float] | None, expected: str, limit: float | None) -> bool:
    """Whether a tool's (result, time_s) solves an instance: sat/unsat, not contradicting expected, within
    ``limit`` seconds when given."""
    if answer is None:
        return False
    word, t = answer
    if word not in SOLVED_WORDS or (expected in SOLVED_WORDS and word != expected):
        return False
    return limit is None or (not math.isnan(t) and t <= limit)


def median_text(values: list[int]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):g}"


# ----------------------------------------------------------------------------- one benchmark
@dataclass
class Summary:
    bench: str
    run: int
    absent: int
    solved: int
    sat: int
    unsat: int
    unconfirmed: int
    wrong: int
    late: int
    tools_at_t: dict[str, int]
    tools_full: dict[str, int]
    wall: float

    def cells(self) -> list[str]:
        best = max(self.tools_at_t.items(), key=lambda kv: (kv[1], kv[0] == "nnenum"), default=None)
        best_names = [t for t, n in self.tools_at_t.items() if best and n == best[1]]
        best_text = "-" if best is None else f"{best[1]} ({', '.join(sorted(best_names))})" if best[1] else "0"
        nnenum = str(self.tools_at_t["nnenum"]) if "nnenum" in self.tools_at_t else "-"
        return [self.bench, str(self.run), str(self.absent), f"{self.solved} ({self.sat}/{self.unsat})",
                str(self.unconfirmed), str(self.wrong), str(self.late), median_text(list(self.tools_at_t.values())),
                best_text, nnenum, median_text(list(self.tools_full.values())), f"{self.wall:.0f}s"]


SUMMARY_HEAD = ["benchmark", "run", "absent", "ours (s/u)", "unconf", "wrong", "late", "median@T'", "best@T'",
                "nnenum@T'", "median@full", "wall"]


def table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), "-+-".join("-" * w for w in widths)] + [line(r) for r in rows])


def short(p: str, n: int = 44) -> str:
    name = Path(p).name
    return name if len(name) <= n else name[: n - 3] + "..."


def run_benchmark(bench: Path, args, work: Path) -> tuple[Summary, list[Instance]]:
    name = bench.name
    plain = work / "plain" / name
    insts = read_instances(bench, args)
    for inst in insts:
        inst.absent = plain_copy(bench, inst.onnx, plain) or plain_copy(bench, inst.vnnlib, plain)
        if inst.absent:
            inst.status, inst.note = "absent", inst.absent
    checker = None if args.no_recheck else CounterexampleChecker(plain)
    ran = [i for i in insts if not i.absent]
    print(f"\n== {name}: {len(ran)} to run, {len(insts) - len(ran)} absent (of {len(insts)} selected)", flush=True)
    for inst in ran:
        if args.dry_run:
            inst.verdict, inst.status = "-", "not run"
            continue
        run_ours(inst, plain, work, name, args, checker)
        print(f"  [{inst.index:3d}] {short(inst.vnnlib):44s} T'={inst.t_used:<4g} exp={inst.expected:7s} "
              f"ours={inst.verdict:8s} {inst.status:11s} {inst.wall:6.1f}s {inst.note}", flush=True)
        if inst.status == "WRONG":
            print(f"  !!! WRONG: {name} {inst.onnx} {inst.vnnlib}: {inst.note}", flush=True)
    tools = read_tools(args.results_dir / f"2024_{name}.csv")
    at_t = {t: 0 for t in tools}
    full = {t: 0 for t in tools}
    for inst in ran:
        for tool, answers in tools.items():
            a = answers.get(inst.key)
            if tool_solved(a, inst.expected, inst.t_used):
                at_t[tool] += 1
                inst.tools_at_t.append(tool)
            if tool_solved(a, inst.expected, None):
                full[tool] += 1
                inst.tools_full.append(tool)
    rows = [[str(i.index), short(i.onnx, 36), short(i.vnnlib), f"{i.t_used:g}", i.expected, i.verdict, i.status,
             f"{i.wall:.1f}", f"{len(i.tools_at_t)}/{len(tools)}", f"{len(i.tools_full)}/{len(tools)}"]
            for i in insts]
    print(table(["#", "model", "spec", "T'", "expected", "ours", "status", "wall", "tools@T'", "tools@full"], rows))
    if tools:
        print("  2024 tools solved (within T' / at full timeout): "
              + ", ".join(f"{t} {at_t[t]}/{full[t]}" for t in sorted(tools)))
    else:
        print(f"  no 2024 results file {args.results_dir / f'2024_{name}.csv'}")
    count = lambda *st: sum(i.status in st for i in ran)  # noqa: E731
    solved = [i for i in ran if i.status in ("correct", "unconfirmed")]
    s = Summary(name, len(ran), len(insts) - len(ran), len(solved), sum(i.verdict == "sat" for i in solved),
                sum(i.verdict == "unsat" for i in solved), count("unconfirmed"), count("WRONG"), count("late"),
                at_t, full, sum(i.wall for i in ran))
    return s, insts


CSV_FIELDS = ["benchmark", "index", "onnx", "vnnlib", "timeout_csv", "t_used", "expected", "verdict", "status",
              "wall_s", "note", "tools_solved_within_t", "tools_solved_full"]


def write_csv(path: Path, per_bench: list[tuple[str, list[Instance]]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        for name, insts in per_bench:
            for i in insts:
                w.writerow([name, i.index, i.onnx, i.vnnlib, f"{i.timeout_csv:g}", f"{i.t_used:g}", i.expected,
                            i.verdict, i.status, f"{i.wall:.2f}", i.note, ";".join(i.tools_at_t),
                            ";".join(i.tools_full)])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="vnncomp2024_counts.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run this verifier on VNN-COMP 2024 benchmark instances (one fresh `verify` process each), "
                    "check the answers against expected.csv and count the solved instances beside the 2024 tools "
                    "on the same instances, at their full timeout and within the same time limit T'.",
        epilog="summary columns:" + __doc__.split("The summary has one row per benchmark:", 1)[1].split("``--csv")[0]
        + "solved = correct + unconfirmed; an unsat where expected.csv says unknown is unconfirmed; a late answer "
          "(after T') is unsolved.")
    p.add_argument("benchmarks", nargs="*", help="benchmark folder names under --root (default: all that have an "
                   "instances.csv)")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"benchmarks folder (default {DEFAULT_ROOT})")
    p.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS,
                   help=f"folder of 2024_<benchmark>.csv competition results (default {DEFAULT_RESULTS})")
    p.add_argument("--every", default="auto", help="keep every K-th row of instances.csv; auto (default): "
                   "rows // limit, so the --limit rows spread over the file (1 without --limit)")
    p.add_argument("--limit", type=int, default=0, help="at most N instances per benchmark (0: all kept)")
    p.add_argument("--timeout-scale", type=float, default=1.0, help="T' = timeout * S (default 1) ...")
    p.add_argument("--max-timeout", type=float, default=math.inf, help="... capped at this many seconds")
    p.add_argument("--grace", type=float, default=5.0, help="kill a run at T' + G seconds (default 5)")
    p.add_argument("--threads", type=int, default=1, help="verify --threads (default 1)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="passed on to verify --set (repeatable)")
    p.add_argument("--no-recheck", action="store_true", help="trust the CLI's sat without checking the result "
                   "file's counterexample again")
    p.add_argument("--dry-run", action="store_true", help="select the instances and count the 2024 tools on them "
                   "without running this verifier")
    p.add_argument("--csv", type=Path, help="write one row per selected instance here")
    p.add_argument("--work-dir", type=Path, help="unpacked files, result files and logs (default: a new temp dir)")
    args = p.parse_args(argv)
    if args.every != "auto" and not args.every.isdigit():
        p.error("--every takes a positive integer or auto")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.benchmarks or sorted(d.name for d in args.root.iterdir() if (d / "instances.csv").is_file())
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="vnncomp2024_counts_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work dir {work}; load average {os.getloadavg()[0]:.2f}", flush=True)
    t0 = time.monotonic()
    summaries, per_bench = [], []
    for name in names:
        bench = args.root / name
        if not (bench / "instances.csv").is_file():
            print(f"\n== {name}: no {bench / 'instances.csv'}; skipped")
            continue
        s, insts = run_benchmark(bench, args, work)
        summaries.append(s)
        per_bench.append((name, insts))
        if args.csv:
            write_csv(args.csv, per_bench)
    total = time.monotonic() - t0
    print("\nSummary (solved = correct + unconfirmed; 2024 tools on the same instances; T' = "
          f"min(timeout * {args.timeout_scale:g}, {args.max_timeout:g}) s)")
    print(table(SUMMARY_HEAD, [s.cells() for s in summaries]))
    wrong = [(n, i) for n, insts in per_bench for i in insts if i.status == "WRONG"]
    print(f"total: {sum(s.run for s in summaries)} run, {sum(s.solved for s in summaries)} solved, "
          f"{len(wrong)} wrong; {total:.0f} s; load average {os.getloadavg()[0]:.2f}")
    for n, i in wrong:
        print(f"WRONG: {n} {i.onnx} {i.vnnlib}: {i.note}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
