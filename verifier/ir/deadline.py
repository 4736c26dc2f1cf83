"""The wall-clock budget of one run: one ``Deadline`` made where the run starts, passed down once.

Phases carve their own shares out of it with :meth:`Deadline.sub` (at most so many seconds) and
:meth:`Deadline.share` (a fraction of what is left); a carved deadline never ends after its parent.
The command line starts its deadline when the process started (imports and loading count).

Each carved deadline remembers the end of the outermost one (``final_end``, the run's own). A loop
whose steps are long (an alpha-CROWN step on a big net, a batch of boxes) asks
:meth:`Deadline.step_would_overrun` with the length of its last step: a step that would end after
the run's end is not started, so the run answers at its budget, not one step after it (a phase's own
share may still be overrun by a step: only the whole run's end is kept to).

A deadline may also be cancelled before its end (``cancel``: anything with ``is_set()``, e.g. a
``threading.Event``, shared by every deadline carved from it): a strategy raced against another
(``verifier.methods.race``) stops as if its time had run out once the other has answered.
"""
from __future__ import annotations

import os
import time


def process_start() -> float:
    """``time.monotonic()`` at the moment this process started (Linux: from ``/proc``; elsewhere: now)."""
    now = time.monotonic()
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        age = uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start time in ticks
    except (OSError, ValueError, IndexError):
        return now
    return now - min(max(age, 0.0), 60.0)  # clamped: a clock oddity must not eat the budget


class Deadline:
    """Wall-clock budget shared by the phases of one run."""

    def __init__(self, seconds: float, start: float | None = None, end: float | None = None,
                 final_end: float | None = None, cancel=None):
        self.start = time.monotonic() if start is None else start
        self.total = max(0.0, seconds)  # the seconds this budget was made with
        self.end = self.start + self.total if end is None else min(end, self.start + self.total)
        self.final_end = self.end if final_end is None else final_end  # the end of the outermost budget
        self.cancel = cancel  # None, or an event whose ``is_set()`` ends this budget (and those carved from it)

    @classmethod
    def since_process_start(cls, seconds: float) -> "Deadline":
        """A budget of ``seconds`` counted from when the process started."""
        return cls(seconds, start=process_start())

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def left(self) -> float:
        return 0.0 if self.cancelled() else self.end - time.monotonic()

    def expired(self) -> bool:
        return time.monotonic() >= self.end or self.cancelled()

    def with_cancel(self, cancel) -> "Deadline":
        """This budget (same start and end), also ended by ``cancel``."""
        return Deadline(self.total, start=self.start, end=self.end, final_end=self.final_end, cancel=cancel)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def step_would_overrun(self, step_s: float) -> bool:
        """True when this budget has expired, or when a step of ``step_s`` seconds started now would end after
        the whole run's end (``final_end``): the loop should stop before it."""
        return self.expired() or time.monotonic() + step_s > self.final_end

    def sub(self, seconds: float) -> "Deadline":
        """A budget of at most ``seconds`` from now, ending no later than this one."""
        return Deadline(seconds, end=self.end, final_end=self.final_end, cancel=self.cancel)

    def share(self, fraction: float) -> "Deadline":
        """``fraction`` of the time left (ending no later than this one)."""
        return Deadline(max(0.0, self.left() * fraction), end=self.end, final_end=self.final_end, cancel=self.cancel)
