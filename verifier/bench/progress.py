"""Progress of a benchmark run on stderr: counts per verdict, a redrawn bar on a terminal, one line per
instance otherwise."""
from __future__ import annotations

import sys
import time

from verifier.bench.results import VERDICTS


class Progress:
    """Counts per verdict on stderr: a redrawn bar on a terminal, one line per instance otherwise."""

    def __init__(self, total: int, done_before: int = 0, stream=None, enabled: bool = True):
        self.total = total
        self.done = 0
        self.done_before = done_before
        self.counts = {v: 0 for v in VERDICTS}
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.monotonic()

    def line(self) -> str:
        width = 24
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(round(frac * width)) + "-" * (width - int(round(frac * width)))
        counts = " ".join(f"{k}={v}" for k, v in self.counts.items())
        el = time.monotonic() - self.t0
        eta = f" eta {_fmt_dur(el / self.done * (self.total - self.done))}" if 0 < self.done < self.total else ""
        return f"[{bar}] {self.done}/{self.total}  {counts}  {_fmt_dur(el)}{eta}"

    def start(self) -> None:
        if not self.enabled:
            return
        before = f" ({self.done_before} already in the CSV, skipped)" if self.done_before else ""
        print(f"bench: {self.total} instances to run{before}", file=self.stream, flush=True)
        if self.tty:
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def update(self, row: dict) -> None:
        self.done += 1
        self.counts[row["verdict"]] = self.counts.get(row["verdict"], 0) + 1
        if not self.enabled:
            return
        if self.tty:
            if row["verdict"] == "error":  # keep the reasons on screen, above the bar
                self.stream.write(f"\r\033[Kerror: {row['onnx']} {row['vnnlib']}: {row.get('reason', '')}\n")
            self.stream.write("\r\033[K" + self.line())
        else:
            reason = f"  ({row['reason']})" if row.get("reason") and row["verdict"] == "error" else ""
            self.stream.write(f"[{self.done}/{self.total}] {row['onnx']} {row['vnnlib']} -> {row['verdict']} "
                              f"{float(row['time_s'] or 0):.1f}s{reason}  | "
                              + " ".join(f"{k}={v}" for k, v in self.counts.items()) + "\n")
        self.stream.flush()

    def tick(self) -> None:
        """Redraw the bar (elapsed time) on a terminal."""
        if self.tty:
            self.stream.write("\r\033[K" + self.line())
            self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _fmt_dur(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
