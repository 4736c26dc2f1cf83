"""Benchmark runner: every instance of a VNN-COMP ``instances.csv`` in its own process.

Each instance runs as ``python -m verifier.cli MODEL SPEC --timeout T --method M --result-file F``
in a fresh subprocess (its own process group), hard-killed at ``T + grace``. Whatever happens to
that process (a crash, an out-of-memory kill, a hang) becomes the verdict of that one instance
only: ``timeout`` when it had to be killed, ``error`` with a reason otherwise.

Rows are appended to ``OUT/results.csv`` (and flushed) as instances finish; on start the rows
already there are read and their instances skipped, so an interrupted run resumes where it
stopped. The result file of every instance is kept under ``OUT/results/`` so that ``sat`` answers
can be re-checked by :mod:`verifier.scoring`.

Instances run on a pool of ``workers`` local processes, or as tasks on a Ray cluster
(``ray_address``; ``ray`` is an optional dependency) with the same CSV and resume semantics.
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from frontends.result_file import VERDICT_WORDS, parse_result_text

try:
    import resource
except ImportError:  # not on every platform
    resource = None

CSV_FIELDS = ["onnx", "vnnlib", "verdict", "time_s", "method", "timeout_s", "reason", "solve_s",
              "method_used", "exit_code", "result_file"]
VERDICTS = ("sat", "unsat", "unknown", "timeout", "error")
DEFAULT_GRACE = 20.0
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# the summary line cli.py prints on stderr: "<verdict>  method=M  time=T s  [bound=B]  [message]"
_SUMMARY = re.compile(r"^(sat|unsat|unknown|timeout|error)  method=(\S+)  time=([0-9.]+)s"
                      r"(?:  bound=\S+)?(?:  (.*))?$")


class BenchError(Exception):
    """A problem with the benchmark folder or the run's options (not with one instance)."""


# ----------------------------------------------------------------------------- instances
def norm_path(p: str) -> str:
    """Path as a key: forward slashes, no leading ./, no trailing .gz."""
    p = p.strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p[:-3] if p.endswith(".gz") else p


def instance_key(onnx: str, vnnlib: str) -> tuple[str, str]:
    return norm_path(onnx), norm_path(vnnlib)


@dataclass(frozen=True)
class Instance:
    onnx: str  # as written in instances.csv (relative to the benchmark folder)
    vnnlib: str
    timeout_s: float

    @property
    def key(self) -> tuple[str, str]:
        return instance_key(self.onnx, self.vnnlib)


def find_instances_csv(bench: str | os.PathLike) -> Path:
    """``BENCH/instances.csv``, the one ``*instances.csv`` in BENCH, or BENCH itself if it is a file."""
    p = Path(bench)
    if p.is_file():
        return p
    if not p.is_dir():
        raise BenchError(f"benchmark folder not found: {p}")
    if (p / "instances.csv").is_file():
        return p / "instances.csv"
    found = sorted(p.glob("*instances.csv"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise BenchError(f"no instances.csv in {p}")
    raise BenchError(f"several *instances.csv in {p}: {', '.join(f.name for f in found)}; name one")


def read_instances(path: str | os.PathLike) -> list[Instance]:
    """Rows ``onnx,vnnlib,timeout_s``; blank lines, ``#`` comments and a header row are skipped."""
    path = Path(path)
    out = []
    with open(path, newline="") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row]
            if not row or not any(row) or row[0].startswith("#"):
                continue
            if len(row) < 3:
                raise BenchError(f"{path}:{lineno}: expected onnx,vnnlib,timeout_s; got {','.join(row)!r}")
            try:
                t = float(row[2])
            except ValueError:
                if lineno == 1:  # header
                    continue
                raise BenchError(f"{path}:{lineno}: timeout {row[2]!r} is not a number") from None
            out.append(Instance(row[0], row[1], t))
    if not out:
        raise BenchError(f"{path}: no instances")
    return out


def select(instances: list[Instance], pattern: str | None = None, first: int | None = None) -> list[Instance]:
    """Instances whose ``onnx,vnnlib`` matches the regular expression ``pattern``; then the first ``first``."""
    if pattern:
        rx = re.compile(pattern)
        instances = [i for i in instances if rx.search(f"{i.onnx},{i.vnnlib}")]
    if first is not None:
        instances = instances[:max(0, first)]
    return instances


def existing_file(p: Path) -> Path | None:
    """``p`` or ``p.gz`` if either exists (instances.csv names files without .gz)."""
    if p.exists():
        return p
    gz = Path(str(p) + ".gz")
    return gz if gz.exists() else None


# ----------------------------------------------------------------------------- one instance
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


def _error(job: Job, reason: str, wall: float = 0.0, exit_code="") -> dict:
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


def run_job(job: Job) -> dict:
    """Run one instance in a fresh subprocess; always returns a row (never raises for the instance).

    The row has the CSV fields plus ``_result_text`` (the result file's text or None).
    """
    for what, p in (("model", job.model_path), ("spec", job.spec_path)):
        if existing_file(Path(p)) is None:
            return _error(job, f"{what} file not found: {p} (nor {Path(p).name}.gz)")
    with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
        res_path = os.path.join(tmp, "result.txt")
        err_path = os.path.join(tmp, "stderr.txt")
        cmd = list(job.command or (sys.executable, "-m", "verifier.cli"))
        cmd += [job.model_path, job.spec_path, "--timeout", repr(float(job.timeout_s)), "--method", job.method,
                "--result-file", res_path, *job.extra_args]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        if job.threads:
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env.setdefault(var, str(job.threads))
        t0 = time.monotonic()
        with open(err_path, "wb") as errf:
            try:
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errf,
                                        env=env, start_new_session=True)
            except OSError as e:
                return _error(job, f"cannot start the verifier: {e}")
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
    return _row_from_outcome(job, rc, killed, wall, stderr, text)


def _limit_memory(pid: int, mb: int) -> None:
    if resource is None:
        return
    lim = int(mb) * 1024 * 1024
    try:
        resource.prlimit(pid, resource.RLIMIT_AS, (lim, lim))
    except (OSError, ValueError, AttributeError):
        pass  # the process may already be gone, or the platform lacks prlimit


def _row_from_outcome(job: Job, rc: int, killed: bool, wall: float, stderr: str, text: str | None) -> dict:
    row = _error(job, "", wall, rc)
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


# ----------------------------------------------------------------------------- result CSV
def read_results(path: str | os.PathLike) -> list[dict]:
    """Rows of a results CSV (ours); a missing file gives []. A truncated last line is dropped."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if r.get("onnx") and r.get("vnnlib") and r.get("verdict") in VERDICTS
            and _is_number(r.get("time_s"))]


def _is_number(s) -> bool:
    try:
        float(s)
        return True
    except (TypeError, ValueError):
        return False


class ResultsCSV:
    """Append-only results file: a row is written and flushed (and fsynced) as soon as it is known."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fields = CSV_FIELDS
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), None)
            if header:
                fields = header
            self._repair_last_line()
        self.fields = fields
        self.f = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.f, fieldnames=fields, extrasaction="ignore")
        if new:
            self.writer.writeheader()
            self._sync()

    def _repair_last_line(self) -> None:
        """A run killed mid-write can leave a partial last line: end it so the next row starts clean."""
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
        if last not in (b"\n", b"\r"):
            with open(self.path, "a") as f:
                f.write("\n")

    def _sync(self) -> None:
        self.f.flush()
        try:
            os.fsync(self.f.fileno())
        except OSError:
            pass

    def append(self, row: dict) -> None:
        self.writer.writerow({k: row.get(k, "") for k in self.fields})
        self._sync()

    def close(self) -> None:
        self.f.close()


def result_file_name(onnx: str, vnnlib: str) -> str:
    stem = lambda p: re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(norm_path(p)).stem)[:60]  # noqa: E731
    h = hashlib.sha1(f"{norm_path(onnx)},{norm_path(vnnlib)}".encode()).hexdigest()[:8]
    return f"{stem(onnx)}__{stem(vnnlib)}_{h}.txt"


# ----------------------------------------------------------------------------- progress
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


# ----------------------------------------------------------------------------- the run
@dataclass
class BenchConfig:
    bench: str  # folder with instances.csv (or the CSV itself)
    out: str  # output folder: results.csv, results/, summary.md, cactus.png
    method: str = "auto"
    workers: int = 0  # 0 = number of cores
    timeout_scale: float = 1.0
    timeout: float | None = None  # override every instance's timeout (before scaling)
    grace: float = DEFAULT_GRACE
    first: int | None = None
    pattern: str | None = None
    extra_args: tuple[str, ...] = ()
    memory_limit_mb: int | None = None
    retry_errors: bool = False
    ray_address: str | None = None
    progress: bool = True
    command: tuple[str, ...] | None = None  # replaces `python -m verifier.cli` (wrappers, other tools)
    csv_name: str = "results.csv"
    on_row: Callable[[dict], None] | None = field(default=None, repr=False)

    @property
    def csv_path(self) -> Path:
        return Path(self.out) / self.csv_name

    @property
    def results_dir(self) -> Path:
        return Path(self.out) / "results"


@dataclass
class BenchRun:
    rows: list[dict]  # every row of the CSV for the selected instances and method (old and new)
    new_rows: list[dict]
    skipped: int
    interrupted: bool
    csv_path: Path


class Interrupted(Exception):
    pass


def plan(cfg: BenchConfig) -> tuple[Path, list[Instance], list[dict], list[Job]]:
    """(instances.csv, selected instances, rows already done, jobs to run)."""
    inst_csv = find_instances_csv(cfg.bench)
    bench_dir = inst_csv.parent.resolve()
    instances = select(read_instances(inst_csv), cfg.pattern, cfg.first)
    if cfg.timeout_scale <= 0:
        raise BenchError("--timeout-scale must be positive")
    existing = read_results(cfg.csv_path)
    done: dict[tuple, dict] = {}
    for r in existing:
        if r.get("method", cfg.method) == cfg.method:
            done[instance_key(r["onnx"], r["vnnlib"])] = r  # the last row of an instance wins
    wanted = {i.key for i in instances}
    old_rows = [r for k, r in done.items() if k in wanted and not (cfg.retry_errors and r["verdict"] == "error")]
    old_keys = {instance_key(r["onnx"], r["vnnlib"]) for r in old_rows}
    workers = cfg.workers or os.cpu_count() or 1
    threads = max(1, (os.cpu_count() or 1) // workers)
    jobs, seen = [], set()
    for inst in instances:
        if inst.key in old_keys or inst.key in seen:
            continue
        seen.add(inst.key)
        t = (cfg.timeout if cfg.timeout is not None else inst.timeout_s) * cfg.timeout_scale
        jobs.append(Job(onnx=inst.key[0], vnnlib=inst.key[1], model_path=str(bench_dir / inst.onnx),
                        spec_path=str(bench_dir / inst.vnnlib), timeout_s=round(t, 3), method=cfg.method,
                        grace_s=cfg.grace, extra_args=tuple(cfg.extra_args), memory_limit_mb=cfg.memory_limit_mb,
                        threads=threads, command=cfg.command))
    return inst_csv, instances, old_rows, jobs


def run_bench(cfg: BenchConfig) -> BenchRun:
    """Run the pending instances of ``cfg``; rows go to ``cfg.csv_path`` as they finish."""
    _, instances, old_rows, jobs = plan(cfg)
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    out = ResultsCSV(cfg.csv_path)
    progress = Progress(len(jobs), len(old_rows), enabled=cfg.progress)
    new_rows: list[dict] = []

    def record(row: dict) -> None:
        text = row.pop("_result_text", None)
        if text is not None:
            name = result_file_name(row["onnx"], row["vnnlib"])
            (cfg.results_dir / name).write_text(text)
            row["result_file"] = f"results/{name}"
        else:
            row["result_file"] = ""
        out.append(row)
        new_rows.append(row)
        progress.update(row)
        if cfg.on_row:
            cfg.on_row(row)

    interrupted = False
    old_handler = None
    if threading.current_thread() is threading.main_thread():
        def on_term(signum, frame):
            raise Interrupted()
        old_handler = signal.signal(signal.SIGTERM, on_term)
    progress.start()
    try:
        if jobs:
            if cfg.ray_address:
                _run_ray(cfg, jobs, record, progress.tick)
            else:
                _run_local(cfg, jobs, record, progress.tick)
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
        n = kill_live_processes()
        print(f"\nbench: interrupted ({n} running instance(s) killed, not recorded); "
              f"run the same command again to resume", file=sys.stderr)
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
        out.close()
        progress.finish()
    rows = _ordered(instances, old_rows + new_rows)
    return BenchRun(rows=rows, new_rows=new_rows, skipped=len(old_rows), interrupted=interrupted,
                    csv_path=cfg.csv_path)


def _ordered(instances: list[Instance], rows: list[dict]) -> list[dict]:
    by_key = {instance_key(r["onnx"], r["vnnlib"]): r for r in rows}
    return [by_key[i.key] for i in instances if i.key in by_key]


def _run_local(cfg: BenchConfig, jobs: list[Job], record: Callable[[dict], None],
               tick: Callable[[], None] = lambda: None) -> None:
    workers = max(1, cfg.workers or os.cpu_count() or 1)
    stop = threading.Event()

    def guarded(job: Job) -> dict | None:
        if stop.is_set():
            return None
        return run_job(job)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench")
    try:
        pending = {pool.submit(guarded, j): j for j in jobs}
        while pending:
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            if not done:
                tick()
            for fut in done:
                job = pending.pop(fut)
                try:
                    row = fut.result()
                except Exception as e:  # a bug in the runner itself: keep the run going
                    row = _error(job, f"runner error: {type(e).__name__}: {e}")
                if row is not None and not stop.is_set():
                    record(row)
    except BaseException:
        stop.set()
        kill_live_processes()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _run_ray(cfg: BenchConfig, jobs: list[Job], record: Callable[[dict], None],
             tick: Callable[[], None] = lambda: None) -> None:
    """Dispatch jobs as Ray tasks (one CPU each); the files must be at the same paths on every node."""
    try:
        import ray
    except ImportError:
        raise BenchError("--ray needs the optional dependency ray (pip install 'ray>=2.9')") from None
    init_kw = {"ignore_reinit_error": True, "log_to_driver": False}
    if cfg.ray_address in ("local", "local:"):
        init_kw.update(num_cpus=cfg.workers or os.cpu_count() or 1, include_dashboard=False)
    else:
        init_kw["address"] = cfg.ray_address
    if not ray.is_initialized():
        ray.init(**init_kw)
    task = ray.remote(num_cpus=1, max_retries=0)(run_job)
    limit = cfg.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    queue = list(jobs)
    inflight: dict = {}
    try:
        while queue or inflight:
            while queue and len(inflight) < limit:
                job = queue.pop(0)
                inflight[task.remote(job)] = job
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=1.0)
            if not ready:
                tick()
            for ref in ready:
                job = inflight.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as e:  # worker died, node lost, ...
                    row = _error(job, f"ray task failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                record(row)
    except BaseException:
        for ref in inflight:
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        raise


def default_out_dir(bench: str, method: str) -> Path:
    p = Path(bench)
    name = p.parent.name if p.is_file() else p.resolve().name
    return Path("bench_results") / f"{name}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', method)}"


def split_extra(args: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for a in args:
        out += shlex.split(a)
    return tuple(out)


__all__ = ["BenchConfig", "BenchError", "BenchRun", "CSV_FIELDS", "Instance", "Job", "ResultsCSV", "find_instances_csv",
           "instance_key", "norm_path", "plan", "read_instances", "read_results", "run_bench", "run_job", "select",
           "VERDICT_WORDS"]
