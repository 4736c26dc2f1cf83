"""The runner's side of the warm workers: :class:`WarmPool` runs jobs on long-lived worker processes.

A worker (``python -m verifier.cli.bench_worker``, its own session) imports the verifier once and
forks a child per instance (``warm_server.py``), so an instance costs a fork instead of a Python start
and torch's import. The row of an instance is made exactly as for a fresh process (``job.py``: the
same ``verify`` arguments, the result file, the summary line on stderr, the exit status), so the CSV
rows, verdicts and counterexample files are the same. A child that crashes, is killed by a signal or
runs out of memory is that row's ``error``; the worker goes on. A worker that dies itself, or stops
answering past the instance's kill time plus ``slack_s``, is killed with its child; that instance is
``error`` (it is not retried: a worker killed by the out-of-memory killer would likely die again) and
the next job starts a new worker. :func:`kill_live_workers` kills every worker and child (an
interrupted run).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from verifier.bench.job import Job, error_row, missing_file_row, row_from_outcome, verifier_env, verify_args
from verifier.bench.warm_protocol import WORKER_MODULE, LineReader, Request, encode
from verifier.settings.bench import WarmWorkerSettings


class WorkerError(Exception):
    """The worker itself failed (did not start, died, stopped answering): not the instance's own outcome."""


_LIVE: set["WarmWorker"] = set()
_LIVE_LOCK = threading.Lock()


def kill_live_workers() -> int:
    """Kill every warm worker and its running child; returns how many instances were running."""
    with _LIVE_LOCK:
        workers = list(_LIVE)
    return sum(w.kill() for w in workers)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _torch_threads(threads: int | None) -> int | None:
    """The threads a fresh process would run torch with: ``OMP_NUM_THREADS`` of its environment (the user's
    own value, else the job's)."""
    try:
        return int(verifier_env(threads).get("OMP_NUM_THREADS", ""))
    except ValueError:
        return threads


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def _tail(f, limit: int = 300) -> str:
    try:
        f.seek(0)
        lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except (OSError, ValueError):
        return ""
    return lines[-1][:limit] if lines else ""


class WarmWorker:
    """One worker process; :meth:`run` one request at a time."""

    def __init__(self, threads: int | None, settings: WarmWorkerSettings):
        self.settings = settings
        self.child: int | None = None  # the pid of the running instance's child
        self._child_killed = False
        self.stderr = tempfile.TemporaryFile(prefix="bench_worker_")
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", WORKER_MODULE], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self.stderr, env=verifier_env(threads),
                                         start_new_session=True)
        except OSError as e:
            self.stderr.close()
            raise WorkerError(f"cannot start the bench worker: {e}") from None
        with _LIVE_LOCK:
            _LIVE.add(self)
        self.reader = LineReader(self.proc.stdout.fileno())
        try:
            msg = self.reader.read_message(settings.start_timeout_s)
        except TimeoutError:
            msg = "timeout"
        except ValueError:
            msg = None
        if not isinstance(msg, dict) or "ready" not in msg:
            why = self._death(f"not ready within {settings.start_timeout_s:g}s" if msg == "timeout" else "")
            self.kill()
            self.close()
            raise WorkerError(f"the bench worker did not start: {why}")

    def _death(self, default: str = "") -> str:
        """Why the worker ended: its exit status and the last line of its stderr."""
        try:
            rc = self.proc.wait(timeout=2)  # its stdout has ended: its status follows at once
        except subprocess.TimeoutExpired:
            rc = None
        if rc is None:
            status = default or "it stopped answering"
        elif rc < 0:
            status = f"killed by {_signal_name(-rc)}"
        else:
            status = f"exit code {rc}"
        tail = _tail(self.stderr)
        return f"{status}: {tail}" if tail else status

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, req: Request) -> tuple[int, bool]:
        """(exit status, killed at its time) of the instance; raises :class:`WorkerError` if the worker fails."""
        give_up = time.monotonic() + req.kill_after_s + self.settings.slack_s
        try:
            self.proc.stdin.write(encode(req.to_message()))
            self.proc.stdin.flush()
            while True:
                msg = self.reader.read_message(max(0.0, give_up - time.monotonic()))
                if msg is None:
                    raise WorkerError(f"the bench worker died ({self._death()}); the instance is not retried")
                if "started" in msg:
                    self.child, self._child_killed = int(msg["started"]), False
                elif "done" in msg:
                    self.child = None
                    return int(msg["done"]["rc"]), bool(msg["done"]["killed"])
        except TimeoutError:
            raise WorkerError(f"the bench worker stopped answering {self.settings.slack_s:g}s after the kill time "
                              f"of its instance; the instance is not retried") from None
        except (OSError, ValueError) as e:  # a broken pipe, a garbled reply
            raise WorkerError(f"the bench worker failed ({self._death(str(e))}); the instance is not retried") \
                from None

    def kill(self) -> int:
        """Kill the worker's group and its child's (once); returns 1 if an instance was running."""
        if self.child is not None and not self._child_killed:
            self._child_killed = True
            _kill_group(self.child)
        if self.proc.poll() is None:
            _kill_group(self.proc.pid)
        return int(self.child is not None)

    def close(self) -> None:
        """End the worker (its stdin closed; killed if it does not end at once) and forget it."""
        with _LIVE_LOCK:
            _LIVE.discard(self)
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        self.kill()  # an orphaned child of a worker that died (killed once only)
        self.proc.stdout.close()
        self.stderr.close()


class WarmPool:
    """Warm workers shared by the runner's threads: each job takes an idle worker (or starts one)."""

    def __init__(self, settings: WarmWorkerSettings | None = None):
        self.settings = settings or WarmWorkerSettings()
        self._idle: list[WarmWorker] = []
        self._lock = threading.Lock()
        self._closed = False

    def _take(self, threads: int | None) -> WarmWorker:
        with self._lock:
            while self._idle:
                w = self._idle.pop()
                if w.alive():
                    return w
                w.close()
        return WarmWorker(threads, self.settings)

    def _give_back(self, w: WarmWorker) -> None:
        with self._lock:
            if not self._closed and w.alive():
                self._idle.append(w)
                return
        w.close()

    def run_job(self, job: Job) -> dict:
        """The row of ``job`` run in a warm worker's child; always a row (never raises for the instance)."""
        missing = missing_file_row(job)
        if missing is not None:
            return missing
        t0 = time.monotonic()
        try:
            worker = self._take(job.threads)
        except WorkerError as e:
            return error_row(job, str(e), time.monotonic() - t0)
        with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
            res_path = os.path.join(tmp, "result.txt")
            err_path = os.path.join(tmp, "stderr.txt")
            req = Request(argv=tuple(verify_args(job, res_path)), stderr_path=err_path,
                          kill_after_s=job.timeout_s + job.grace_s, memory_limit_mb=job.memory_limit_mb,
                          threads=_torch_threads(job.threads), fault=job.fault)
            t0 = time.monotonic()
            try:
                rc, killed = worker.run(req)
            except WorkerError as e:
                worker.kill()
                worker.close()
                return error_row(job, str(e), time.monotonic() - t0)
            wall = time.monotonic() - t0
            self._give_back(worker)
            stderr = Path(err_path).read_text(errors="replace") if os.path.exists(err_path) else ""
            text = Path(res_path).read_text(errors="replace") if os.path.exists(res_path) else None
        return row_from_outcome(job, rc, killed, wall, stderr, text)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for w in idle:
            w.close()
