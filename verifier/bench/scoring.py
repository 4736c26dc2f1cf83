"""VNN-COMP scoring of benchmark results, summary tables (text and Markdown), cactus plots.

Rules (VNN-COMP 2022 onwards, without the early time bonuses):

* +10 for a correct ``sat`` or ``unsat``, -150 for a wrong one, 0 for anything else.
* A ``sat`` whose result file is kept is checked like the competition's checker does
  (:func:`frontends.result_file.check_counterexample`, the model re-run with onnxruntime): a valid
  counterexample makes the answer correct whatever the reference says (it is a proof), an invalid
  one makes it wrong.
* Otherwise the answer is compared with the reference (``expected.csv``, or another tool's
  results): ``sat`` where the reference says ``unsat``, or ``unsat`` where it says ``sat``, is
  wrong. Where the reference has no answer (``unknown``, ``tie``, missing) an answer counts
  +10 as *unconfirmed*, as the competition does when no tool disputes it.

Inputs are our results CSVs (columns ``onnx,vnnlib,verdict,time_s,method,...``, see
:mod:`verifier.bench.results`), ``expected.csv`` (``onnx,vnnlib,expected,...``) and the competition's
per-tool CSVs (``tool,onnx,vnnlib,result,time_s,...``).
"""
from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from frontends.onnx.reference import OnnxReference
from frontends.result_file import check_counterexample, parse_result_text
from frontends.vnnlib.v2 import load_spec
from verifier.bench.instances import instance_key, norm_path
from verifier.bench.results import VERDICTS
from verifier.ir.errors import VerifierError

CORRECT, WRONG, UNCONFIRMED, UNSOLVED = "correct", "wrong", "unconfirmed", "unsolved"
POINTS = {CORRECT: 10, WRONG: -150, UNCONFIRMED: 10, UNSOLVED: 0}
_RAW = {"holds": "unsat", "violated": "sat", "sat": "sat", "unsat": "unsat", "timeout": "timeout",
        "unknown": "unknown", "error": "error"}


def normalize_verdict(word: str) -> str:
    w = (word or "").strip().lower()
    if w in _RAW:
        return _RAW[w]
    if "timeout" in w:
        return "timeout"
    return "error" if w.startswith("error") or w else "unknown"


# ----------------------------------------------------------------------------- reading CSVs
@dataclass
class Series:
    """One method's or tool's answers: key -> row with at least verdict and time_s."""

    label: str
    rows: dict[tuple[str, str], dict] = field(default_factory=dict)
    base_dir: Path | None = None  # where relative result_file paths start (our CSVs)
    ours: bool = False


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        return list(r.fieldnames or []), list(r)


def load_series(path: str | os.PathLike, tools: list[str] | None = None) -> list[Series]:
    """Series in a results CSV: ours (one per ``method``) or a competition file (one per ``tool``)."""
    path = Path(path)
    fields, rows = _read_csv(path)
    year = re.match(r"(\d{4})_", path.name)
    suffix = f" ({year.group(1)})" if year else ""
    out: dict[str, Series] = {}
    if "tool" in fields and "result" in fields:
        for r in rows:
            tool = r["tool"]
            if tools and tool not in tools:
                continue
            s = out.setdefault(tool, Series(tool + suffix))
            s.rows[instance_key(r["onnx"], r["vnnlib"])] = {
                "verdict": normalize_verdict(r["result"]), "time_s": _float(r.get("time_s")), "reason": "",
                "onnx": r["onnx"], "vnnlib": r["vnnlib"]}
        if tools:
            missing = [t for t in tools if t not in out]
            if missing:
                raise ValueError(f"{path}: no rows for tool(s) {', '.join(missing)}; tools there: "
                                 f"{', '.join(sorted({r['tool'] for r in rows}))}")
    elif "verdict" in fields:
        for r in rows:
            if r.get("verdict") not in VERDICTS:
                continue
            method = r.get("method") or path.parent.name
            s = out.setdefault(method, Series(method, base_dir=path.parent, ours=True))
            s.rows[instance_key(r["onnx"], r["vnnlib"])] = dict(r, time_s=_float(r.get("time_s")))
    else:
        raise ValueError(f"{path}: not a results CSV (needs verdict, or tool and result, columns)")
    return list(out.values())


def load_reference(path: str | os.PathLike, tool: str | None = None) -> dict[tuple[str, str], str]:
    """key -> sat | unsat | unknown | tie, from expected.csv, a competition CSV (one ``tool``) or ours."""
    path = Path(path)
    fields, rows = _read_csv(path)
    if "expected" in fields:
        return {instance_key(r["onnx"], r["vnnlib"]): (r["expected"] or "unknown").strip().lower() for r in rows}
    series = load_series(path, [tool] if tool else None)
    if len(series) != 1:
        raise ValueError(f"{path} holds {len(series)} tools/methods ({', '.join(s.label for s in series)}); "
                         "name one")
    return {k: r["verdict"] for k, r in series[0].rows.items()}


def _float(s) -> float:
    try:
        v = float(s)
        return v if math.isfinite(v) else float("nan")
    except (TypeError, ValueError):
        return float("nan")


# ----------------------------------------------------------------------------- scoring
@dataclass
class Outcome:
    onnx: str
    vnnlib: str
    verdict: str
    expected: str
    status: str  # correct | wrong | unconfirmed | unsolved
    points: int
    time_s: float
    note: str = ""


@dataclass
class Score:
    label: str
    outcomes: list[Outcome]

    def count(self, **kw) -> int:
        return sum(all(getattr(o, k) == v for k, v in kw.items()) for o in self.outcomes)

    @property
    def n(self) -> int:
        return len(self.outcomes)

    @property
    def score(self) -> int:
        return sum(o.points for o in self.outcomes)

    @property
    def max_score(self) -> int:
        """10 per instance whose reference answer is sat or unsat."""
        return 10 * sum(o.expected in ("sat", "unsat") for o in self.outcomes)

    @property
    def solved(self) -> int:
        return sum(o.verdict in ("sat", "unsat") for o in self.outcomes)

    @property
    def solved_time(self) -> float:
        return sum(o.time_s for o in self.outcomes if o.verdict in ("sat", "unsat") and math.isfinite(o.time_s))

    def wrong(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == WRONG]

    def notes(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.note]


class CounterexampleChecker:
    """Checks ``sat`` result files with the competition's rules (cached models and specs)."""

    def __init__(self, bench_dir: str | os.PathLike):
        self.bench_dir = Path(bench_dir)
        self._models: dict[str, object] = {}
        self._specs: dict[str, object] = {}

    def check(self, onnx: str, vnnlib: str, result_text: str) -> tuple[bool, str]:
        try:
            word, x, y = parse_result_text(result_text)
        except ValueError as e:
            return False, f"result file: {e}"
        if word != "sat":
            return False, f"result file says {word}, not sat"
        try:
            if onnx not in self._models:
                self._models[onnx] = OnnxReference(self.bench_dir / onnx)
            if vnnlib not in self._specs:
                self._specs[vnnlib] = load_spec(self.bench_dir / vnnlib)
            ref, spec = self._models[onnx], self._specs[vnnlib]
            return check_counterexample(ref.run, spec, x, y)
        except VerifierError as e:
            return False, f"cannot check: {e}"
        except Exception as e:  # onnxruntime failures: report, do not crash the report
            return False, f"cannot check: {type(e).__name__}: {e}"


def score_series(series: Series, reference: dict[tuple[str, str], str], keys: list[tuple[str, str]] | None = None,
                 checker: CounterexampleChecker | None = None) -> Score:
    """Score ``series`` on ``keys`` (default: its own instances); missing instances count as unsolved."""
    keys = list(series.rows) if keys is None else keys
    outcomes = []
    for key in keys:
        row = series.rows.get(key)
        verdict = row["verdict"] if row else "unknown"
        t = row["time_s"] if row else float("nan")
        exp = reference.get(key, "unknown")
        status, note = UNSOLVED, "" if row else "no result"
        if verdict == "sat":
            checked = None
            rf = row.get("result_file") if series.ours else None
            if checker is not None and rf:
                p = Path(rf) if os.path.isabs(rf) else (series.base_dir or Path(".")) / rf
                if p.exists():
                    checked = checker.check(key[0], key[1], p.read_text(errors="replace"))
                else:
                    checked = (False, f"result file {rf} is missing")
            if checked is not None:
                ok, why = checked
                if ok:
                    status = CORRECT
                    if exp == "unsat":
                        note = "validated counterexample contradicts the reference (unsat)"
                else:
                    status, note = WRONG, f"counterexample rejected: {why}"
            else:
                status = WRONG if exp == "unsat" else CORRECT if exp == "sat" else UNCONFIRMED
        elif verdict == "unsat":
            status = WRONG if exp == "sat" else CORRECT if exp == "unsat" else UNCONFIRMED
        if status == WRONG and not note:
            note = f"answered {verdict}, reference says {exp}"
        outcomes.append(Outcome(key[0], key[1], verdict, exp, status, POINTS[status], t, note))
    return Score(series.label, outcomes)


# ----------------------------------------------------------------------------- tables
COLUMNS = ["method/tool", "n", "sat", "unsat", "unknown", "timeout", "error", "solved", "correct", "wrong",
           "unconf.", "score", "max", "solved time s"]


def _cells(s: Score) -> list[str]:
    return [s.label, str(s.n)] + [str(s.count(verdict=v)) for v in VERDICTS] + [
        str(s.solved), str(s.count(status=CORRECT)), str(s.count(status=WRONG)), str(s.count(status=UNCONFIRMED)),
        str(s.score), str(s.max_score), f"{s.solved_time:.1f}"]


def summary_text(scores: list[Score]) -> str:
    rows = [COLUMNS] + [_cells(s) for s in scores]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa
    lines = [fmt(rows[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows[1:]]
    for s in scores:
        for o in s.wrong():
            lines.append(f"WRONG  {s.label}: {o.onnx} {o.vnnlib}: {o.note}")
        for o in s.notes():
            if o.status != WRONG and o.note != "no result":
                lines.append(f"note   {s.label}: {o.onnx} {o.vnnlib}: {o.note}")
    return "\n".join(lines) + "\n"


def summary_markdown(scores: list[Score], title: str = "Benchmark results", details: Score | None = None) -> str:
    out = [f"# {title}", "",
           "Scoring: +10 per correct sat/unsat, -150 per wrong one (VNN-COMP); sat answers with a kept result "
           "file are checked by re-running the counterexample with onnxruntime. *unconf.* = answered where the "
           "reference has no answer (counted +10).", "",
           "| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] + ["---:"] * (len(COLUMNS) - 1)) + "|"]
    out += ["| " + " | ".join(_cells(s)) + " |" for s in scores]
    wrong = [(s.label, o) for s in scores for o in s.wrong()]
    if wrong:
        out += ["", "## Wrong answers", "", "| method/tool | onnx | vnnlib | answer | reference | why |",
                "|---|---|---|---|---|---|"]
        out += [f"| {lab} | {o.onnx} | {o.vnnlib} | {o.verdict} | {o.expected} | {o.note} |" for lab, o in wrong]
    if details is not None:
        out += ["", f"## Instances ({details.label})", "", "| onnx | vnnlib | verdict | reference | status | time s |"
                " note |", "|---|---|---|---|---|---:|---|"]
        out += [f"| {o.onnx} | {o.vnnlib} | {o.verdict} | {o.expected} | {o.status} | {o.time_s:.2f} | {o.note} |"
                for o in details.outcomes]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- cactus plot
def cactus_plot(scores: list[Score], out_png: str | os.PathLike, title: str = "", timeout: float | None = None) -> Path:
    """Instances solved (correct or unconfirmed answers) against time, one line per method/tool."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    tmax = 0.0
    for s in scores:
        times = sorted(o.time_s for o in s.outcomes
                       if o.status in (CORRECT, UNCONFIRMED) and math.isfinite(o.time_s))
        if times:
            tmax = max(tmax, times[-1])
        xs = [max(t, 1e-3) for t in times]
        ax.step([1e-3] + xs, [0] + list(range(1, len(xs) + 1)), where="post",
                label=f"{s.label} ({len(xs)}/{s.n})")
    if timeout:
        ax.axvline(timeout, color="grey", linestyle=":", linewidth=1, label=f"timeout {timeout:g}s")
    ax.set_xscale("log")
    ax.set_xlim(left=min(0.1, tmax or 0.1) * 0.9)
    ax.set_xlabel("time per instance (s, log scale)")
    ax.set_ylabel("instances solved")
    ax.set_title(title or "Instances solved vs time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


# ----------------------------------------------------------------------------- one call
@dataclass
class ReportRequest:
    """What :func:`report` scores (our CSVs and ``compare`` CSVs of other tools), against what, where it writes."""

    our_csvs: list[str | os.PathLike]
    bench_dir: str | os.PathLike | None = None  # expected.csv and the files that sat answers are checked on
    method: str | None = None  # that method's series first (the details table is about it)
    reference: str | os.PathLike | None = None  # default: bench_dir/expected.csv
    reference_tool: str | None = None  # the tool to take from ``reference`` when it holds several
    compare: list[str | os.PathLike] = ()
    tools: list[str] | None = None  # only these tools of the ``compare`` CSVs
    keys: list[tuple[str, str]] | None = None  # default: the instances in our CSVs
    plot: str | os.PathLike | None = None  # cactus plot (PNG)
    markdown: str | os.PathLike | None = None  # summary (Markdown)
    validate: bool = True  # re-check sat counterexamples (needs bench_dir)
    title: str = ""


@dataclass
class Report:
    scores: list[Score]
    text: str
    markdown: str
    plot: Path | None


def _score_all(req: ReportRequest) -> tuple[list[Series], list[Score], dict]:
    """(our series, the scores of ours then of the others on the same instances, the reference answers)."""
    ours = [s for p in req.our_csvs for s in load_series(p)]
    if req.method is not None:  # that method's series first (the details table is about it)
        ours.sort(key=lambda s: s.label != req.method)
    others = [s for p in req.compare for s in load_series(p, req.tools)]
    reference = req.reference
    if reference is None and req.bench_dir is not None and (Path(req.bench_dir) / "expected.csv").exists():
        reference = Path(req.bench_dir) / "expected.csv"
    ref = load_reference(reference, req.reference_tool) if reference else {}
    keys = req.keys
    if keys is None:
        seen: dict = {}
        for s in ours or others:
            for k in s.rows:
                seen.setdefault(k, None)
        keys = list(seen)
    checker = CounterexampleChecker(req.bench_dir) if req.validate and req.bench_dir is not None else None
    scores = [score_series(s, ref, keys, checker) for s in ours] + [score_series(s, ref, keys) for s in others]
    return ours, scores, ref


def report(req: ReportRequest) -> Report:
    """Score our CSVs (and the ``compare`` CSVs of other tools) on the same instances; write MD and PNG."""
    ours, scores, ref = _score_all(req)
    title = req.title or (f"{Path(req.bench_dir).resolve().name}" if req.bench_dir else "benchmark")
    text = summary_text(scores)
    if not ref:
        text += "(no reference answers: every sat/unsat counts as unconfirmed)\n"
    md = summary_markdown(scores, f"Results: {title}", details=scores[0] if ours else None)
    if req.markdown:
        Path(req.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(req.markdown).write_text(md)
    png = None
    if req.plot and scores:
        timeouts = [_float(r.get("timeout_s")) for s in ours for r in s.rows.values()]
        tmo = max((t for t in timeouts if math.isfinite(t)), default=None)
        png = cactus_plot(scores, req.plot, title=f"{title}: instances solved vs time", timeout=tmo)
    return Report(scores, text, md, png)


__all__ = ["CORRECT", "WRONG", "UNCONFIRMED", "UNSOLVED", "POINTS", "Series", "Score", "Outcome", "Report",
           "CounterexampleChecker", "load_series", "load_reference", "score_series", "summary_text",
           "summary_markdown", "cactus_plot", "report", "ReportRequest", "normalize_verdict", "norm_path"]
