"""Two strategies side by side: one in this process, the other in a forked child; the first sound answer wins.

``race(local, remote, deadline)`` runs ``remote(deadline)`` in a child process (fork: the problem is shared
copy-on-write, nothing is pickled on the way in; the child's torch runs one thread) and ``local`` here with one
torch thread fewer, its deadline cancelled (``Deadline.cancel``) the moment the child reports ``sat`` or
``unsat``. Whichever decides first is returned, and the other is stopped at once (the child is killed; the local
search sees its deadline cancelled). A child's ``sat`` is validated again here against onnxruntime before it is
taken; a child that crashes or dies counts as no answer. ``stats["race"]`` says who answered and how long each
took.
"""
from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import signal
import threading
import time
import traceback
from typing import Callable

import torch

from verifier.attack.validate import validate_candidate
from verifier.ir.deadline import Deadline
from verifier.ir.problem import Problem
from verifier.ir.result import Result, Verdict

log = logging.getLogger("verifier.auto")

DECIDED = (Verdict.SAT, Verdict.UNSAT)
PR_SET_PDEATHSIG = 1  # prctl(2)
KILL_WAIT_S = 2.0  # seconds to wait for a killed child to be reaped


def _die_with_parent() -> None:
    """Linux: this process is killed when its parent dies (a run killed from outside leaves no racer behind)."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the child still ends at its deadline
        pass


def _child(remote: Callable[[Deadline], Result], seconds: float, conn) -> None:
    _die_with_parent()
    torch.set_num_threads(1)
    try:
        result = remote(Deadline(seconds))
        conn.send(("result", result))
    except BaseException as e:  # the parent must hear of it, whatever it is
        conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"))
    finally:
        conn.close()


class _Watcher(threading.Thread):
    """Waits for the child's answer; sets ``cancel`` when it decides."""

    def __init__(self, conn, cancel: threading.Event, until: float):
        super().__init__(daemon=True)
        self.conn, self.cancel, self.until = conn, cancel, until
        self.answer: Result | None = None
        self.error = ""
        self.at: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while time.monotonic() < self.until and not self.done.is_set():
                if self.conn.poll(0.05):
                    kind, value = self.conn.recv()
                    self.at = time.monotonic()
                    if kind == "result":
                        self.answer = value
                    else:
                        self.error = value
                    break
        except (EOFError, OSError) as e:  # the child died without a word
            self.error = f"the racing process ended without an answer ({type(e).__name__})"
        finally:
            if self.answer is not None and self.answer.verdict in DECIDED:
                self.cancel.set()
            self.done.set()


def race(problem: Problem, local: Callable[[Deadline], Result], remote: Callable[[Deadline], Result],
         deadline: Deadline, names: tuple[str, str], stats: dict) -> Result:
    """The first decided result of ``local`` (here) and ``remote`` (a child process), named ``names``."""
    t0 = time.monotonic()
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(remote, max(0.0, deadline.left()), send), daemon=True)
    child.start()
    send.close()
    cancel = threading.Event()
    watcher = _Watcher(recv, cancel, deadline.end)
    watcher.start()
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads - 1))
    try:
        try:
            mine = local(deadline.with_cancel(cancel))
        finally:
            torch.set_num_threads(threads)
        t_local = time.monotonic() - t0
        if mine.verdict not in DECIDED and not deadline.expired():  # the local search gave up early: wait
            watcher.join(max(0.0, deadline.left()))
    finally:  # whatever happened here, no racer outlives the race
        watcher.done.set()
        stopped = child.is_alive()  # still working: stopped by us (its pipe then reads as closed)
        if stopped:
            child.kill()
        child.join(KILL_WAIT_S)
        recv.close()
    theirs = watcher.answer
    error = watcher.error if watcher.at is not None or not stopped else ""  # a killed child's closed pipe: no error
    remote = str(theirs.verdict) if theirs is not None else (error.splitlines() or ["stopped"])[0]
    if theirs is not None and theirs.verdict is Verdict.SAT:
        cex = theirs.counterexample
        if validate_candidate(problem.reference, problem.spec, cex.x) is None:  # never taken on the child's word
            log.warning("the racing %s's counterexample did not validate here; ignored", names[1])
            theirs = None
    first_is_child = theirs is not None and theirs.verdict in DECIDED and (
        mine.verdict not in DECIDED or (watcher.at is not None and watcher.at - t0 < t_local))
    stats["race"] = {"local": names[0], "remote": names[1], "local_verdict": str(mine.verdict),
                     "local_s": round(t_local, 3),
                     "remote_verdict": remote,
                     "remote_s": round(watcher.at - t0, 3) if watcher.at is not None else None,
                     "winner": names[1] if first_is_child else (names[0] if mine.verdict in DECIDED else None)}
    if first_is_child:
        theirs.stats = {**theirs.stats, **stats}
        return theirs
    mine.stats = {**mine.stats, **stats}
    return mine
