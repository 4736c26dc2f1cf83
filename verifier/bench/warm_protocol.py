"""The messages between the bench runner and a warm worker (``python -m verifier.cli.bench_worker``).

One JSON object per line: requests on the worker's stdin, replies on its stdout. The worker says
``{"ready": PID}`` once its imports are done; for each request (:class:`Request`) it forks a child,
says ``{"started": CHILD_PID}``, and when the child has ended (or was killed at ``kill_after_s``)
``{"done": {"rc": RC, "killed": BOOL}}`` (``rc`` as ``subprocess`` gives it: minus the signal of a
killed process). :class:`LineReader` reads lines from a descriptor with a timeout.

``fault`` is a test hook: the child commits that fault instead of (or before) running its instance,
so the tests drive the real crash, kill and worker-death paths on purpose (:data:`FAULTS`).
"""
from __future__ import annotations

import json
import os
import select
import time
from dataclasses import asdict, dataclass
from typing import Literal, get_args

# abort: os.abort() (SIGABRT, as a C library's failed assertion); sigkill: SIGKILL to itself (what the
# kernel's out-of-memory killer sends); hang: sleeps past every deadline; exit-worker: SIGKILL to its
# worker (the parent), then hangs as an orphan
Fault = Literal["abort", "sigkill", "hang", "exit-worker"]
FAULTS: tuple[str, ...] = get_args(Fault)
WORKER_MODULE = "verifier.cli.bench_worker"


@dataclass(frozen=True)
class Request:
    argv: tuple[str, ...]  # the arguments of `verify` (MODEL SPEC --timeout T ...)
    stderr_path: str  # the child's stderr goes here (its stdout to /dev/null)
    kill_after_s: float  # from the fork: the child's process group is killed then
    memory_limit_mb: int | None = None  # RLIMIT_AS of the child
    threads: int | None = None  # torch.set_num_threads in the child
    fault: Fault | None = None

    def to_message(self) -> dict:
        return {"run": asdict(self)}

    @classmethod
    def from_message(cls, msg: dict) -> "Request":
        d = dict(msg["run"])
        d["argv"] = tuple(d["argv"])
        if d.get("fault") is not None and d["fault"] not in FAULTS:
            raise ValueError(f"unknown fault {d['fault']!r}")
        return cls(**d)


def encode(msg: dict) -> bytes:
    return (json.dumps(msg, separators=(",", ":")) + "\n").encode()


def write_message(fd: int, msg: dict) -> None:
    data = encode(msg)
    while data:
        n = os.write(fd, data)
        data = data[n:]


class LineReader:
    """Lines from a descriptor, with a timeout; :meth:`feed` puts back what was read elsewhere."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = b""
        self.eof = False

    def feed(self, data: bytes) -> None:
        if data:
            self.buf += data
        else:
            self.eof = True

    def read_message(self, timeout: float | None = None) -> dict | None:
        """The next message; None at the end of the stream. Raises ``TimeoutError`` after ``timeout`` seconds."""
        end = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.eof:
                return None
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                self.feed(os.read(self.fd, 65536))
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)
