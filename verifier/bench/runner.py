"""Benchmark runner: every instance of a VNN-COMP ``instances.csv`` in its own process.

:func:`plan` reads and selects the instances (``instances.py``) and the rows already in
``OUT/results.csv``; :func:`run_bench` runs the others, each in a verifier process of its own
(hard-killed at its timeout + grace; a crash, an out-of-memory kill or a hang becomes the verdict of
that one instance only) on ``workers`` local worker slots, or as tasks on a Ray cluster
(``ray_address``; ``ray`` is an optional dependency) with the same CSV and resume semantics. Locally,
``worker="warm"`` (the default) forks each instance from a long-lived worker per slot that has
imported the verifier once (``warm_client.py``); ``worker="fresh"``, a job with its own ``command``
and Ray start a new ``python -m verifier.cli`` per instance (``job.py``).

Rows are appended to ``OUT/results.csv`` (and flushed) as instances finish (``results.py``); on start
the rows already there are read and their instances skipped, so an interrupted run resumes where it
stopped. The result file of every instance is kept under ``OUT/results/`` so that ``sat`` answers
can be re-checked by :mod:`verifier.bench.scoring`. Progress goes to stderr (``progress.py``).
"""
from __future__ import annotations

import os
import re
import shlex
import signal
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from verifier.bench.instances import BenchError, Instance, find_instances_csv, instance_key, read_instances, select
from verifier.bench.job import DEFAULT_GRACE, Job, error_row, kill_live_processes, run_job
from verifier.bench.progress import Progress
from verifier.bench.results import ResultsCSV, read_results, result_file_name
from verifier.bench.warm_client import WarmPool, kill_live_workers
from verifier.bench.warm_protocol import FAULTS, Fault
from verifier.settings.bench import BENCH_WORKERS, BenchWorker, WarmWorkerSettings


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
    worker: BenchWorker = "warm"  # warm: instances forked from a worker that imported the verifier once; fresh
    warm: WarmWorkerSettings = field(default_factory=WarmWorkerSettings)
    # test hook of the warm worker: (regex on 'onnx,vnnlib', fault): a matching instance's child commits the fault
    faults: tuple[tuple[str, Fault], ...] = ()

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
    if cfg.worker not in BENCH_WORKERS:
        raise BenchError(f"unknown worker {cfg.worker!r}; choose {' or '.join(BENCH_WORKERS)}")
    for rx, fault in cfg.faults:
        if fault not in FAULTS:
            raise BenchError(f"unknown fault {fault!r}; choose one of {', '.join(FAULTS)}")
        if cfg.worker != "warm" or cfg.ray_address or cfg.command:
            raise BenchError("faults are a test hook of the local warm worker")
    faults = [(re.compile(rx), fault) for rx, fault in cfg.faults]
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
        fault = next((f for rx, f in faults if rx.search(f"{inst.onnx},{inst.vnnlib}")), None)
        jobs.append(Job(onnx=inst.key[0], vnnlib=inst.key[1], model_path=str(bench_dir / inst.onnx),
                        spec_path=str(bench_dir / inst.vnnlib), timeout_s=round(t, 3), method=cfg.method,
                        grace_s=cfg.grace, extra_args=tuple(cfg.extra_args), memory_limit_mb=cfg.memory_limit_mb,
                        threads=threads, command=cfg.command, fault=fault))
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
        row["result_file"] = ""
        if text is not None:
            name = result_file_name(row["onnx"], row["vnnlib"])
            try:
                (cfg.results_dir / name).write_text(text)
                row["result_file"] = f"results/{name}"
            except OSError as e:  # the row keeps its verdict; only the kept copy of the result file is lost
                row["reason"] = "; ".join(x for x in (row.get("reason"), f"result file not kept: {e}") if x)
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
        n = kill_live_processes() + kill_live_workers()
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
    warm = WarmPool(cfg.warm) if cfg.worker == "warm" else None

    def guarded(job: Job) -> dict | None:
        if stop.is_set():
            return None
        if warm is not None and job.command is None:
            return warm.run_job(job)
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
                    row = error_row(job, f"runner error: {type(e).__name__}: {e}")
                if row is not None and not stop.is_set():
                    record(row)
    except BaseException:
        stop.set()
        kill_live_processes()
        kill_live_workers()
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if warm is not None:
            warm.close()


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
                    row = error_row(job, f"ray task failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
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
