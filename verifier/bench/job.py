"""One benchmark instance = one verifier process.

With ``--worker fresh`` (and for Ray) each instance runs as ``python -m verifier.cli MODEL SPEC
--timeout T --method M --result-file F`` in a fresh subprocess (its own process group, an optional
address-space limit), hard-killed at ``T + grace``. Whatever happens to that process (a crash, an
out-of-memory kill, a hang) becomes the row of that one instance only: ``timeout`` when it had to be
killed, ``error`` with a reason otherwise. :func:`kill_live_processes` kills every running one (an
interrupted run). The warm worker (``warm_client.py``) runs the same arguments in a forked child and
makes its row with the same :func:`row_from_outcome`.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from frontends.result_file import parse_result_text
from verifier.bench.instances import existing_file
from verifier.bench.warm_protocol import Fault

try:
    import resource
except ImportError:  # not on every platform
    resource = None

DEFAULT_GRACE = 20.0
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# the summary line cli.py prints on stderr: "<verdict>  method=M  time=T s  [bound=B]  [message]"
_SUMMARY = re.compile(r"^(sat|unsat|unknown|timeout|error)  method=(\S+)  time=([0-9.]+)s"
                      r"(?:  bound=\S+)?(?:  (.*))?$")


@dataclass
class Job:
    """Everything one worker needs to run one instance (picklable, absolute paths)."""

    onnx: str  # key form (as in the CSV)
    vnnlib: str
    model_path: str  # absolute
    spec_path: str
    timeout_s: float  # the verifier's own timeout (already scaled)
    method: str
    grace_s: float = DEFAULT_GRACE
    extra_args: tuple[str, ...] = ()
    memory_limit_mb: int | None = None
    threads: int | None = None
    command: tuple[str, ...] | None = None  # default: (sys.executable, "-m", "verifier.cli")
    fault: Fault | None = None  # test hook of the warm worker (warm_protocol.py); a fresh process ignores it


def error_row(job: Job, reason: str, wall: float = 0.0, exit_code="") -> dict:
    """The ``error`` row of ``job`` (the CSV fields plus ``_result_text`` None)."""
    return {"onnx": job.onnx, "vnnlib": job.vnnlib, "verdict": "error", "time_s": round(wall, 3),
            "method": job.method, "timeout_s": job.timeout_s, "reason": reason, "solve_s": "",
            "method_used": "", "exit_code": exit_code, "_result_text": None}


_LIVE: dict[int, subprocess.Popen] = {}  # pid -> process, so an interrupted run can kill them
_LIVE_LOCK = threading.Lock()


def kill_live_processes() -> int:
    """Kill the process groups of every running instance; returns how many."""
    with _LIVE_LOCK:
        procs = list(_LIVE.values())
    for p in procs:
        _kill_group(p)
    return len(procs)


def _kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            p.kill()
        except ProcessLookupError:
            pass


def _signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def _tail_reason(stderr: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return ""
    last = lines[-1]
    return last if len(last) <= limit else last[:limit - 3] + "..."


def verify_args(job: Job, res_path: str) -> list[str]:
    """The arguments of ``verify`` for ``job`` (after the program), writing its result file to ``res_path``."""
    return [job.model_path, job.spec_path, "--timeout", repr(float(job.timeout_s)), "--method", job.method,
            "--result-file", res_path, *job.extra_args]


def verifier_env(threads: int | None) -> dict:
    """The environment of a verifier process: the project on ``PYTHONPATH``, the BLAS / OpenMP threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env.setdefault(var, str(threads))
    return env


def _command_and_env(job: Job, res_path: str) -> tuple[list[str], dict]:
    cmd = list(job.command or (sys.executable, "-m", "verifier.cli")) + verify_args(job, res_path)
    return cmd, verifier_env(job.threads)


def missing_file_row(job: Job) -> dict | None:
    """The ``error`` row of a job whose model or spec file does not exist; None when both do."""
    for what, p in (("model", job.model_path), ("spec", job.spec_path)):
        if existing_file(Path(p)) is None:
            return error_row(job, f"{what} file not found: {p} (nor {Path(p).name}.gz)")
    return None


def run_job(job: Job) -> dict:
    """Run one instance in a fresh subprocess; always returns a row (never raises for the instance).

    The row has the CSV fields plus ``_result_text`` (the result file's text or None).
    """
    missing = missing_file_row(job)
    if missing is not None:
        return missing
    with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
        res_path = os.path.join(tmp, "result.txt")
        err_path = os.path.join(tmp, "stderr.txt")
        cmd, env = _command_and_env(job, res_path)
        t0 = time.monotonic()
        with open(err_path, "wb") as errf:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                                        env=env, start_new_session=True)
            except OSError as e:
                return error_row(job, f"cannot start the verifier: {e}")
            with _LIVE_LOCK:
                _LIVE[proc.pid] = proc
            try:
                if job.memory_limit_mb:
                    _limit_memory(proc.pid, job.memory_limit_mb)
                killed = False
                try:
                    rc = proc.wait(timeout=job.timeout_s + job.grace_s)
                except subprocess.TimeoutExpired:
                    killed = True
                    _kill_group(proc)
                    rc = proc.wait()
            finally:
                with _LIVE_LOCK:
                    _LIVE.pop(proc.pid, None)
        wall = time.monotonic() - t0
        stderr = Path(err_path).read_text(errors="replace")
        text = Path(res_path).read_text(errors="replace") if os.path.exists(res_path) else None
    return row_from_outcome(job, rc, killed, wall, stderr, text)


def _limit_memory(pid: int, mb: int) -> None:
    if resource is None:
        return
    lim = int(mb) * 1024 * 1024
    try:
        resource.prlimit(pid, resource.RLIMIT_AS, (lim, lim))
    except (OSError, ValueError, AttributeError):
        pass  # the process may already be gone, or the platform lacks prlimit


def row_from_outcome(job: Job, rc: int, killed: bool, wall: float, stderr: str, text: str | None) -> dict:
    """The row of an instance from how its process ended (``rc`` as ``subprocess`` gives it), its stderr and the
    text of its result file (None when it wrote none)."""
    row = error_row(job, "", wall, rc)
    summary = None
    for line in reversed(stderr.splitlines()):
        summary = _SUMMARY.match(line.strip())
        if summary:
            break
    if summary:
        row["method_used"] = summary.group(2)
        row["solve_s"] = float(summary.group(3))
        message = (summary.group(4) or "").strip()
    else:
        message = ""
    if killed:
        row.update(verdict="timeout", reason=f"killed after {wall:.1f}s (timeout {job.timeout_s:g}s + grace "
                                             f"{job.grace_s:g}s)")
        return row
    if text is not None:
        try:
            word, _, _ = parse_result_text(text)
        except ValueError as e:
            row["reason"] = f"unreadable result file: {e}"
            return row
        row["verdict"] = word
        row["_result_text"] = text
        if word == "error":
            row["reason"] = message or _tail_reason(stderr) or f"verifier exited with code {rc}"
        else:
            row["reason"] = message
        return row
    if rc < 0:
        sig = _signal_name(-rc)
        hint = " (out of memory?)" if -rc == signal.SIGKILL else ""
        row["reason"] = f"verifier killed by {sig}{hint}"
    elif rc != 0:
        row["reason"] = f"verifier exited with code {rc} without a result: {_tail_reason(stderr) or 'no output'}"
    else:
        row["reason"] = "verifier exited without writing a result file"
    return row
