"""Tests of the benchmark runner (verifier/bench/), scoring and plots (verifier/bench/scoring.py), `verify bench`.

Every instance runs in a real verifier process (forked from a warm worker, or a fresh `python -m verifier.cli`
with --worker fresh), so these tests use the tiny `test` benchmark, one ACAS Xu instance and fast methods
(crown, attack). The warm worker's crash, kill and worker-death paths are driven by its fault hook.
"""
from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import box_vnnlib, make_fc, save

from frontends.result_file import parse_result_text
from verifier.bench import scoring
from verifier.bench.instances import BenchError, find_instances_csv, instance_key, read_instances, select
from verifier.bench.job import Job, run_job
from verifier.bench.runner import BenchConfig, plan, run_bench
from verifier.bench.warm_client import WarmPool

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BENCH = SHARED / "benchmarks"
TEST_BENCH = BENCH / "test"
ACAS = BENCH / "acasxu"
needs_bench = pytest.mark.skipif(not TEST_BENCH.is_dir(), reason=f"benchmarks not found at {BENCH}")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def expected_of(folder: Path) -> dict:
    return {instance_key(r["onnx"], r["vnnlib"]): r["expected"] for r in read_csv(folder / "expected.csv")}


def verify_bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "verifier.cli", "bench", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


# --------------------------------------------------------------------------- instances.csv
def test_read_instances_skips_header_comments_and_selects(tmp_path):
    (tmp_path / "instances.csv").write_text(
        "onnx,vnnlib,timeout\n# a comment\n\nonnx/a.onnx,vnnlib/p1.vnnlib,60\n"
        "./onnx/b.onnx.gz,vnnlib/p2.vnnlib.gz,30.5\nonnx/c.onnx,vnnlib/p1.vnnlib,10\n")
    inst = read_instances(find_instances_csv(tmp_path))
    assert [(i.onnx, i.vnnlib, i.timeout_s) for i in inst] == [
        ("onnx/a.onnx", "vnnlib/p1.vnnlib", 60.0), ("./onnx/b.onnx.gz", "vnnlib/p2.vnnlib.gz", 30.5),
        ("onnx/c.onnx", "vnnlib/p1.vnnlib", 10.0)]
    assert inst[1].key == ("onnx/b.onnx", "vnnlib/p2.vnnlib")  # keys as instances.csv names them
    assert [i.onnx for i in select(inst, "p1")] == ["onnx/a.onnx", "onnx/c.onnx"]
    assert [i.onnx for i in select(inst, "p1", first=1)] == ["onnx/a.onnx"]
    (tmp_path / "instances.csv").write_text("a.onnx,b.vnnlib,60\nc.onnx,d.vnnlib,soon\n")
    with pytest.raises(BenchError, match=r"instances.csv:2: timeout 'soon'"):
        read_instances(tmp_path / "instances.csv")
    with pytest.raises(BenchError, match="not found"):
        find_instances_csv(tmp_path / "nowhere")


# --------------------------------------------------------------------------- isolation
@needs_bench
def test_a_hung_or_crashing_verifier_affects_only_its_instance():
    """The runner's kill and crash handling, driven by stand-in processes (no torch import: fast)."""
    job = Job(onnx="test_nano.onnx", vnnlib="test_nano.vnnlib", model_path=str(TEST_BENCH / "test_nano.onnx"),
              spec_path=str(TEST_BENCH / "test_nano.vnnlib"), timeout_s=0.5, method="crown", grace_s=0.5)
    t0 = time.monotonic()
    hung = run_job(Job(**{**job.__dict__, "command": (sys.executable, "-c", "import time; time.sleep(60)")}))
    assert hung["verdict"] == "timeout" and "killed after" in hung["reason"]
    assert time.monotonic() - t0 < 10
    crash = run_job(Job(**{**job.__dict__, "command": (
        sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")}))
    assert crash["verdict"] == "error" and "SIGKILL" in crash["reason"] and "out of memory" in crash["reason"]
    failed = run_job(Job(**{**job.__dict__, "command": (
        sys.executable, "-c", "import sys; print('boom: bad weights', file=sys.stderr); sys.exit(3)")}))
    assert failed["verdict"] == "error" and "code 3" in failed["reason"] and "boom: bad weights" in failed["reason"]
    garbage = run_job(Job(**{**job.__dict__, "command": (
        sys.executable, "-c", "import sys; open(sys.argv[sys.argv.index('--result-file') + 1], 'w').write('maybe')",
    )}))
    assert garbage["verdict"] == "error" and "unreadable result file" in garbage["reason"]


@needs_bench
def test_memory_limit_turns_an_oversized_run_into_error():
    """A real verifier process under a 150 MB address-space limit cannot even load torch: error, not a crash."""
    job = Job(onnx="test_nano.onnx", vnnlib="test_nano.vnnlib", model_path=str(TEST_BENCH / "test_nano.onnx"),
              spec_path=str(TEST_BENCH / "test_nano.vnnlib"), timeout_s=20, method="crown", grace_s=10,
              memory_limit_mb=150)
    row = run_job(job)
    assert row["verdict"] == "error"
    # the verifier's last-resort guard may still write its `error` result file (torch failed to load)
    assert row["reason"] and row["_result_text"] in (None, "error\n")


# --------------------------------------------------------------------------- bad instances
def _unsupported_op_model(path: Path) -> str:
    import onnx
    from onnx import TensorProto, helper

    from frontends.onnx.loader import SUPPORTED

    op = next(o for o in ("Cos", "Sin", "Acosh", "Hardmax") if o not in SUPPORTED)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    g = helper.make_graph([helper.make_node(op, ["x"], ["y"], name="the_bad_node")], "bad", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(m, path)
    return op


@needs_bench
def test_bad_instances_become_error_rows_and_the_run_completes(tmp_path):
    b = tmp_path / "badbench"
    b.mkdir()
    shutil.copy(TEST_BENCH / "test_nano.onnx", b / "good.onnx")
    shutil.copy(TEST_BENCH / "test_nano.vnnlib", b / "good.vnnlib")
    (b / "broken.vnnlib").write_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
                                     "(assert (>= X_0 -1))\n(assert (<= X_0 1)\n(assert (<= Y_0 -1))\n")
    op = _unsupported_op_model(b / "unsupported.onnx")
    (b / "instances.csv").write_text("missing.onnx,good.vnnlib,20\ngood.onnx,broken.vnnlib,20\n"
                                     "unsupported.onnx,good.vnnlib,20\ngood.onnx,good.vnnlib,20\n")
    cfg = BenchConfig(bench=str(b), out=str(tmp_path / "out"), method="crown", workers=2, grace=20,
                      progress=False)
    run = run_bench(cfg)
    assert not run.interrupted and len(run.new_rows) == 4
    rows = {r["onnx"] + "," + r["vnnlib"]: r for r in read_csv(cfg.csv_path)}
    assert set(rows) == {"missing.onnx,good.vnnlib", "good.onnx,broken.vnnlib", "unsupported.onnx,good.vnnlib",
                         "good.onnx,good.vnnlib"}
    missing = rows["missing.onnx,good.vnnlib"]
    assert missing["verdict"] == "error" and "not found" in missing["reason"]
    broken = rows["good.onnx,broken.vnnlib"]
    assert broken["verdict"] == "error" and "broken.vnnlib:4" in broken["reason"], broken
    unsup = rows["unsupported.onnx,good.vnnlib"]
    assert unsup["verdict"] == "error" and op in unsup["reason"], unsup
    good = rows["good.onnx,good.vnnlib"]
    assert good["verdict"] == "unsat" and good["result_file"]
    assert parse_result_text((Path(cfg.out) / good["result_file"]).read_text())[0] == "unsat"


# --------------------------------------------------------------------------- interrupt and resume
SUBSET = r"test_(nano|sat|unsat)\.onnx"  # 3 of the 5 test instances (one sat), to keep the suite fast
N_SUBSET = 3


@pytest.fixture(scope="module")
def test_bench_run(tmp_path_factory):
    """`verify bench test --method crown` on 3 instances: interrupted (SIGTERM) after the first row, resumed."""
    if not TEST_BENCH.is_dir():
        pytest.skip(f"benchmarks not found at {BENCH}")
    out = tmp_path_factory.mktemp("bench") / "out"
    csv_path = out / "results.csv"
    args = [sys.executable, "-m", "verifier.cli", "bench", str(TEST_BENCH), "--method", "crown", "--out", str(out),
            "--workers", "1", "--no-report", "--filter", SUBSET]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if csv_path.exists() and len(read_csv(csv_path)) >= 1:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err1 = proc.communicate(timeout=30)
    first = read_csv(csv_path)
    second = verify_bench(str(TEST_BENCH), "--method", "crown", "--out", str(out), "--workers", "2", "--filter", SUBSET)
    return {"out": out, "first": first, "first_rc": proc.returncode, "first_err": err1, "second": second,
            "rows": read_csv(csv_path)}


def test_interrupted_run_resumes_without_redoing_instances(test_bench_run):
    first, rows = test_bench_run["first"], test_bench_run["rows"]
    assert 1 <= len(first) < N_SUBSET, "the run was stopped after its first instance"
    assert test_bench_run["first_rc"] == 130 and "interrupted" in test_bench_run["first_err"]
    second = test_bench_run["second"]
    assert second.returncode == 0, second.stderr
    assert f"({len(first)} already in the CSV, skipped)" in second.stderr
    keys = [(r["onnx"], r["vnnlib"]) for r in rows]
    assert len(rows) == N_SUBSET and len(set(keys)) == N_SUBSET
    assert rows[:len(first)] == first  # the rows from before are kept as they were
    instances = {i.key for i in select(read_instances(TEST_BENCH / "instances.csv"), SUBSET)}
    assert set(keys) == instances and len(instances) == N_SUBSET
    for r in rows:
        assert r["method"] == "crown" and float(r["timeout_s"]) == 60.0 and float(r["time_s"]) > 0
    # a third run has nothing left to do
    third = verify_bench(str(TEST_BENCH), "--method", "crown", "--out", str(test_bench_run["out"]), "--no-report",
                         "--filter", SUBSET)
    assert third.returncode == 0 and f"0 instances to run ({N_SUBSET} already in the CSV" in third.stderr
    assert len(read_csv(test_bench_run["out"] / "results.csv")) == N_SUBSET


def test_bench_summary_score_and_plot(test_bench_run):
    out, rows, second = test_bench_run["out"], test_bench_run["rows"], test_bench_run["second"]
    exp = expected_of(TEST_BENCH)
    # no wrong answers, and the printed score is +10 per sat/unsat that agrees with expected.csv
    for r in rows:
        e = exp[(r["onnx"], r["vnnlib"])]
        assert r["verdict"] in ("sat", "unsat", "unknown", "timeout"), r
        if r["verdict"] in ("sat", "unsat"):
            assert r["verdict"] == e, r
    score = 10 * sum(r["verdict"] in ("sat", "unsat") for r in rows)
    assert f"score {score} of {10 * N_SUBSET}" in second.stdout, second.stdout
    table = second.stdout.splitlines()
    assert table[0].split()[:3] == ["method/tool", "n", "sat"]
    assert table[2].split()[0] == "crown"
    md = (out / "summary.md").read_text()
    assert f"| crown | {N_SUBSET} |" in md and "test_sat.onnx" in md
    assert (out / "cactus.png").read_bytes()[:8] == PNG_MAGIC
    # every sat row kept its counterexample, and it passes the competition checker
    for r in rows:
        if r["verdict"] == "sat":
            assert parse_result_text((out / r["result_file"]).read_text())[0] == "sat"


def test_scoring_validates_counterexamples_and_applies_vnncomp_points(test_bench_run, tmp_path):
    out = test_bench_run["out"]
    series = scoring.load_series(out / "results.csv")
    assert [s.label for s in series] == ["crown"]
    ours = series[0]
    sat_key = ("test_sat.onnx", "test_prop.vnnlib")
    if ours.rows[sat_key]["verdict"] != "sat":
        pytest.skip("crown did not answer sat on test_sat (no counterexample to check)")
    checker = scoring.CounterexampleChecker(TEST_BENCH)
    ref = scoring.load_reference(TEST_BENCH / "expected.csv")
    sc = scoring.score_series(ours, ref, [sat_key], checker)
    assert sc.outcomes[0].status == scoring.CORRECT and sc.score == 10

    # the same counterexample with a wrong Y is rejected by the checker rules: a wrong answer
    text = (out / ours.rows[sat_key]["result_file"]).read_text()
    word, x, y = parse_result_text(text)
    bad = "sat\n(" + "\n ".join([f"(X_{i} {v!r})" for i, v in enumerate(x)]
                                + [f"(Y_{j} {v + 1.0!r})" for j, v in enumerate(y)]) + ")\n"
    (tmp_path / "bad.txt").write_text(bad)
    tampered = scoring.Series("tampered", {sat_key: dict(ours.rows[sat_key], result_file=str(tmp_path / "bad.txt"))},
                              ours=True)
    sc = scoring.score_series(tampered, ref, [sat_key], checker)
    assert sc.outcomes[0].status == scoring.WRONG and sc.score == -150
    assert "counterexample rejected" in sc.outcomes[0].note

    # verdict words against a reference: unsat where sat is expected is wrong; no reference -> unconfirmed
    words = scoring.Series("words", {("a", "p"): {"verdict": "unsat", "time_s": 1.0},
                                     ("b", "p"): {"verdict": "sat", "time_s": 2.0},
                                     ("c", "p"): {"verdict": "unsat", "time_s": 3.0},
                                     ("d", "p"): {"verdict": "timeout", "time_s": 9.0},
                                     ("e", "p"): {"verdict": "sat", "time_s": 1.0}})
    sc = scoring.score_series(words, {("a", "p"): "sat", ("b", "p"): "sat", ("c", "p"): "tie", ("d", "p"): "unsat",
                                      ("e", "p"): "unsat"})
    assert [o.status for o in sc.outcomes] == ["wrong", "correct", "unconfirmed", "unsolved", "wrong"]
    assert sc.score == -150 + 10 + 10 + 0 - 150 and sc.max_score == 40 and sc.solved == 4
    text = scoring.summary_text([sc])
    assert "WRONG  words: a p" in text and "WRONG  words: e p" in text


@needs_bench
@pytest.mark.skipif(not ACAS.is_dir(), reason="acasxu benchmark not present")
def test_acasxu_instance_scored_and_plotted_against_competition_tools(tmp_path):
    results = SHARED / "vnncomp_results" / "2023_acasxu.csv"
    out = tmp_path / "acas"
    args = [str(ACAS), "--method", "attack", "--out", str(out), "--filter", r"_2_1_batch.*prop_2\.", "--timeout", "30",
            "--grace", "20"]
    if results.exists():
        args += ["--compare", str(results), "--tools", "alpha_beta_crown,nnenum"]
    res = verify_bench(*args)
    assert res.returncode == 0, res.stderr
    rows = read_csv(out / "results.csv")
    assert [(r["onnx"], r["vnnlib"], r["verdict"]) for r in rows] == [
        ("onnx/ACASXU_run2a_2_1_batch_2000.onnx", "vnnlib/prop_2.vnnlib", "sat")]
    assert "score 10 of 10" in res.stdout
    if results.exists():
        labels = [ln.split()[0] for ln in res.stdout.splitlines()[2:5]]
        assert labels == ["attack", "alpha_beta_crown", "nnenum"]
        comp = {(r["tool"], r["onnx"], r["vnnlib"]): r["result"] for r in read_csv(results)}
        abc = comp[("alpha_beta_crown", rows[0]["onnx"], rows[0]["vnnlib"])]
        abc_score = res.stdout.splitlines()[3].split()[-3]  # columns end with score, max, solved time
        assert abc_score == {"sat": "10", "unsat": "-150"}.get(abc, "0")
    png = out / "cactus.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000


# --------------------------------------------------------------------------- ray
@needs_bench
def test_ray_dispatch_on_a_local_instance(tmp_path):
    ray = pytest.importorskip("ray", reason="ray is an optional dependency (pip install ray); not installed")
    cfg = BenchConfig(bench=str(TEST_BENCH), out=str(tmp_path / "ray"), method="crown", workers=1,
                      pattern="test_nano", ray_address="local", progress=False)
    try:
        run = run_bench(cfg)
    finally:
        ray.shutdown()
    rows = read_csv(cfg.csv_path)
    assert len(run.new_rows) == 1 and len(rows) == 1
    assert rows[0]["onnx"] == "test_nano.onnx" and rows[0]["verdict"] == "unsat"
    assert (Path(cfg.out) / rows[0]["result_file"]).read_text().startswith("unsat")
    # resume semantics are the same: nothing left to do, and ray is not even started
    again = run_bench(cfg)
    assert again.new_rows == [] and again.skipped == 1 and not ray.is_initialized()


@needs_bench
def test_run_suite_filters_by_regex_and_scores_against_expected(tmp_path):
    """benchmarks/run_suite.py (the script behind the branch-and-bound figures): a regular-expression filter
    selects exactly the matching instances, each answer is compared with expected.csv, the CSV and the
    summary agree."""
    out = tmp_path / "suite.csv"
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_suite.py"), str(TEST_BENCH), "--filter",
                        r"test_(sat|unsat)\.onnx", "--csv", str(out), "--threads", "1"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rows = read_csv(out)
    assert sorted(r["onnx"] for r in rows) == ["test_sat.onnx", "test_unsat.onnx"]
    assert {r["onnx"]: r["verdict"] for r in rows} == {"test_sat.onnx": "sat", "test_unsat.onnx": "unsat"}
    assert all(r["verdict"] == r["expected"] for r in rows)
    assert "test: solved 2/2" in p.stdout and "wrong 0" in p.stdout, p.stdout


# --------------------------------------------------------------------------- warm worker
ROW_FIELDS = ("onnx", "vnnlib", "verdict", "method", "timeout_s", "reason", "method_used", "exit_code", "result_file")


def test_warm_worker_gives_the_same_rows_and_files_as_fresh_processes(test_bench_run, tmp_path):
    """The fixture's run is warm (the default of `verify bench`); the same instances with `--worker fresh`."""
    out = tmp_path / "fresh"
    res = verify_bench(str(TEST_BENCH), "--method", "crown", "--out", str(out), "--worker", "fresh", "--no-report",
                       "--filter", SUBSET)
    assert res.returncode == 0, res.stderr
    fresh = {(r["onnx"], r["vnnlib"]): r for r in read_csv(out / "results.csv")}
    warm = {(r["onnx"], r["vnnlib"]): r for r in test_bench_run["rows"]}
    assert set(fresh) == set(warm) and len(warm) == N_SUBSET
    for key, w in warm.items():
        assert {k: w[k] for k in ROW_FIELDS} == {k: fresh[key][k] for k in ROW_FIELDS}
        assert (test_bench_run["out"] / w["result_file"]).read_bytes() == (out / w["result_file"]).read_bytes()
    # the warm instances do not pay the imports (about 1.3 s each); a fresh process does
    assert max(float(r["time_s"]) for r in warm.values()) < min(float(r["time_s"]) for r in fresh.values())
    with pytest.raises(BenchError, match="unknown worker 'lukewarm'"):
        plan(BenchConfig(bench=str(TEST_BENCH), out=str(tmp_path / "x"), worker="lukewarm"))


@pytest.fixture(scope="module")
def faulty_bench_run(tmp_path_factory):
    """One warm worker slot; instances whose children abort, are SIGKILLed, hang, or kill their worker, each
    followed by a normal instance."""
    if not TEST_BENCH.is_dir():
        pytest.skip(f"benchmarks not found at {BENCH}")
    b = tmp_path_factory.mktemp("faulty")
    shutil.copy(TEST_BENCH / "test_nano.onnx", b / "nano.onnx")
    names = ["abort", "ok1", "sigkill", "ok2", "hang", "ok3", "exit-worker", "ok4"]
    for n in names:
        shutil.copy(TEST_BENCH / "test_nano.vnnlib", b / f"{n}.vnnlib")
    (b / "instances.csv").write_text("".join(f"nano.onnx,{n}.vnnlib,2\n" for n in names))
    cfg = BenchConfig(bench=str(b), out=str(b / "out"), method="crown", workers=1, grace=0.5, progress=False,
                      faults=tuple((rf",{f}\.vnnlib$", f) for f in ("abort", "sigkill", "hang", "exit-worker")))
    mark = f"{os.getpid()}-{time.time_ns()}"  # inherited by the workers and their children: finds strays
    os.environ[MARK_VAR] = mark
    t0 = time.monotonic()
    try:
        run = run_bench(cfg)
    finally:
        del os.environ[MARK_VAR]
    return {"run": run, "wall": time.monotonic() - t0, "mark": mark,
            "rows": {r["vnnlib"].removesuffix(".vnnlib"): r for r in read_csv(cfg.csv_path)}}


def test_warm_child_crash_is_one_error_row_and_the_next_instance_runs(faulty_bench_run):
    rows = faulty_bench_run["rows"]
    assert len(rows) == 8 and not faulty_bench_run["run"].interrupted
    assert rows["abort"]["verdict"] == "error" and "SIGABRT" in rows["abort"]["reason"], rows["abort"]
    assert rows["sigkill"]["verdict"] == "error" and "SIGKILL (out of memory?)" in rows["sigkill"]["reason"]
    for ok in ("ok1", "ok2", "ok3"):
        assert rows[ok]["verdict"] == "unsat" and rows[ok]["result_file"], rows[ok]


def test_warm_timeout_kills_the_child_at_timeout_plus_grace(faulty_bench_run):
    hang = faulty_bench_run["rows"]["hang"]
    assert hang["verdict"] == "timeout" and "killed after" in hang["reason"], hang
    assert 2.5 <= float(hang["time_s"]) < 5.0  # timeout 2 s + grace 0.5 s
    assert faulty_bench_run["wall"] < 30


def test_a_dead_warm_worker_is_replaced_and_its_instance_is_error(faulty_bench_run):
    rows = faulty_bench_run["rows"]
    dead = rows["exit-worker"]
    assert dead["verdict"] == "error" and "bench worker died (killed by SIGKILL)" in dead["reason"], dead
    assert "not retried" in dead["reason"]
    assert rows["ok4"]["verdict"] == "unsat"  # on a new worker
    # the orphaned child of the dead worker (it sleeps for an hour) was killed; no worker of the run is left
    assert _live_processes_with(MARK_VAR, faulty_bench_run["mark"]) == []


MARK_VAR = "NNVERIFY_TEST_BENCH_MARK"


def _live_processes_with(var: str, value: str) -> list[int]:
    """Pids of the live (not zombie) processes whose environment has ``var=value``."""
    want = f"{var}={value}".encode()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if want in (d / "environ").read_bytes().split(b"\0") and \
                    (d / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(d.name))
        except (OSError, IndexError):
            continue
    return found


def test_warm_children_use_torch_threads_after_the_fork_and_keep_the_memory_limit(tmp_path):
    """Two threads in a child whose bounds run parallel kernels (a worker that had started torch's OpenMP
    pool before forking would hang them), twice on one worker; then a child under a 150 MB address-space
    limit is `error` and the worker still runs the next instance."""
    model = save(make_fc(3, sizes=(300, 300, 300, 2)), tmp_path / "wide.onnx")
    (tmp_path / "wide.vnnlib").write_text(box_vnnlib([0.0] * 300, [0.01] * 300))
    job = Job(onnx="wide.onnx", vnnlib="wide.vnnlib", model_path=str(model), spec_path=str(tmp_path / "wide.vnnlib"),
              timeout_s=20, method="crown", grace_s=5, threads=2)
    pool = WarmPool()
    try:
        rows = [pool.run_job(job), pool.run_job(job), pool.run_job(Job(**{**job.__dict__, "memory_limit_mb": 150})),
                pool.run_job(job)]
    finally:
        pool.close()
    for r in rows[:2] + rows[3:]:
        assert r["verdict"] in ("sat", "unsat", "unknown") and float(r["time_s"]) < 15, r
    assert rows[0]["verdict"] == rows[1]["verdict"] == rows[3]["verdict"]
    # out of memory wherever an allocation failed first: a MemoryError's message, or a result file cut short
    assert rows[2]["verdict"] == "error" and rows[2]["reason"], rows[2]
    assert rows[2]["_result_text"] in (None, "error\n")
