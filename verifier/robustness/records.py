"""CSV files of the robustness commands: one row per example and bracket (``verify radius``) or per example
and attack (``verify attack-blackbox``), and the summaries printed after them."""
from __future__ import annotations

import csv
import math
from typing import IO, Sequence

import numpy as np

from verifier.robustness.blackbox import AttackSummary
from verifier.robustness.radius import Bracket

BRACKET_FIELDS = ("idx", "label", "predict", "norm", "certified", "certified_by", "attacked", "attacked_by", "exact",
                  "lipschitz", "smoothing_radius", "verifier_calls", "time")
ATTACK_FIELDS = ("idx", "label", "attack", "success", "target", "distance", "queries")


def _num(v: float) -> str:
    return "" if isinstance(v, float) and math.isnan(v) else f"{v:.6g}"


def bracket_row(b: Bracket) -> list[str]:
    return [str(b.index), str(b.label), str(b.prediction), b.norm, _num(b.certified), b.certified_by,
            _num(b.attacked), b.attacked_by, str(int(b.exact)), _num(b.lipschitz), _num(b.smoothing), str(b.calls),
            f"{b.time_s:.3f}"]


def bracket_writer(out: IO) -> csv.writer:
    w = csv.writer(out)
    w.writerow(BRACKET_FIELDS)
    return w


def read_brackets(path) -> list[dict]:
    """The rows of a bracket CSV as dictionaries of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def bracket_summary(brackets: Sequence[Bracket]) -> dict:
    """Mean certified and attacked radius (over examples with a finite attacked end), fraction exact,
    fraction consistent (certified <= attacked)."""
    fin = [b for b in brackets if math.isfinite(b.attacked)]
    return {"examples": len(brackets),
            "mean_certified": float(np.mean([b.certified for b in brackets])) if brackets else math.nan,
            "mean_attacked": float(np.mean([b.attacked for b in fin])) if fin else math.nan,
            "attacked_found": len(fin),
            "exact": float(np.mean([b.exact for b in brackets])) if brackets else math.nan,
            "consistent": float(np.mean([b.consistent for b in brackets])) if brackets else math.nan}


def write_attack_rows(out: IO, outcomes: dict) -> None:
    w = csv.writer(out)
    w.writerow(ATTACK_FIELDS)
    for name, rows in outcomes.items():
        for o in rows:
            a = o.adversarial
            w.writerow([o.index, o.label, name, int(o.success), "" if a is None else a.target,
                        "" if a is None else f"{a.distance:.6g}", o.queries])


def format_summaries(summaries: Sequence[AttackSummary], eps: float, norm: str) -> str:
    lines = [f"# black-box attacks, {norm} budget {eps:g}",
             "attack\tattacked\tsuccess_rate\tqueries_per_example\tsetup_queries\tmean_perturbation\ttime_s"]
    for s in summaries:
        lines.append(f"{s.name}\t{s.attacked}\t{s.success_rate:.4f}\t{s.queries_per_example:.1f}\t{s.setup_queries}\t"
                     f"{_num(s.mean_perturbation) or '-'}\t{s.time_s:.2f}")
    return "\n".join(lines)
