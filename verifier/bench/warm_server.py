"""The loop of a warm bench worker: one forked child per instance, killed at its time.

:func:`serve` runs in a process that has already imported what the instances need (torch, onnx,
onnxruntime, the methods: ``verifier/cli/bench_worker.py``) and has run no torch operation, so that
no OpenMP thread pool exists to be lost in the fork (a child of a parent whose pool had started hangs
in its first parallel operation). For each request it forks; the child starts a session of its own
(its process group is what gets killed, solver subprocesses included), points stdin and stdout at
``/dev/null`` and stderr at the request's file, takes the memory limit (``RLIMIT_AS``) and runs
``entry(request)``, whose return value is its exit code; it never comes back into the loop
(``os._exit``). The parent waits for the child (a pidfd) and for the end of its stdin (the runner
gone: the child is killed and the worker ends); at ``kill_after_s`` it kills the child's group.
Whatever the child does (a crash, a signal, an exit), the worker reports its status and goes on.
"""
from __future__ import annotations

import os
import select
import signal
import sys
import time
import traceback
from typing import Callable

from verifier.bench.warm_protocol import LineReader, Request, write_message

try:
    import resource
except ImportError:  # not on every platform
    resource = None

HANG_S = 3600.0


def serve(entry: Callable[[Request], int]) -> int:
    """Answer requests on stdin until it ends; returns the worker's exit code."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # whatever is printed (a library's banner) goes to stderr, never into the replies
    reader = LineReader(proto_in)
    write_message(proto_out, {"ready": os.getpid()})
    while True:
        msg = reader.read_message()
        if msg is None:
            return 0
        req = Request.from_message(msg)
        done = _run_one(req, entry, reader, proto_out, closing=(proto_in, proto_out, devnull))
        if done is None:  # the runner is gone
            return 0
        write_message(proto_out, {"done": done})


def _run_one(req: Request, entry: Callable[[Request], int], reader: LineReader, proto_out: int,
             closing: tuple[int, ...]) -> dict | None:
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # nothing buffered here is written twice by the child
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(req, entry, closing)  # never returns
    write_message(proto_out, {"started": pid})
    status, killed = _wait(pid, t0 + req.kill_after_s, reader)
    if status is None:
        return None
    return {"rc": os.waitstatus_to_exitcode(status), "killed": killed}


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # not yet its own group leader, or gone
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait(pid: int, kill_at: float, reader: LineReader) -> tuple[int | None, bool]:
    """(wait status, killed at its time); (None, True) when the runner went away (the child is killed)."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel or platform): poll
        pidfd = None
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status, False
            left = kill_at - time.monotonic()
            if left <= 0:
                _kill_group(pid)
                return os.waitpid(pid, 0)[1], True
            fds = [reader.fd] + ([pidfd] if pidfd is not None else [])
            ready, _, _ = select.select(fds, [], [], left if pidfd is not None else min(left, 0.02))
            if reader.fd in ready:
                reader.feed(os.read(reader.fd, 65536))
                if reader.eof:
                    _kill_group(pid)
                    os.waitpid(pid, 0)
                    return None, True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _child(req: Request, entry: Callable[[Request], int], closing: tuple[int, ...]) -> None:
    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        err = os.open(req.stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(err, 2)
        for fd in (*closing, err, devnull):
            os.close(fd)
        if req.memory_limit_mb and resource is not None:
            lim = int(req.memory_limit_mb) * 1024 * 1024
            try:
                resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
            except (OSError, ValueError):
                pass
        _commit(req.fault)
        code = int(entry(req) or 0)
    except SystemExit as e:  # argparse and sys.exit, as a process would end
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(code)


def _commit(fault: str | None) -> None:
    if fault is None:
        return
    if fault == "abort":
        os.abort()
    if fault == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "exit-worker":
        os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(HANG_S)  # hang (and the orphan of exit-worker)
