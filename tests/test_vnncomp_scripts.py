"""The VNN-COMP scripts (benchmarks/vnncomp/*.sh) run end to end, as the competition's harness calls them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from frontends.onnx.reference import OnnxReference
from frontends.result_file import check_counterexample, parse_result_text
from frontends.vnnlib.v1 import load_vnnlib

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "benchmarks" / "vnncomp"
ACAS = ROOT.parent / "shared" / "benchmarks" / "acasxu"
needs_acas = pytest.mark.skipif(not ACAS.is_dir(), reason=f"acasxu benchmark not found at {ACAS}")
needs_bash = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="needs bash and coreutils timeout")
# names as instances.csv gives them (the files on disk are .gz)
ONNX = ACAS / "onnx" / "ACASXU_run2a_2_1_batch_2000.onnx"
SAT_SPEC = ACAS / "vnnlib" / "prop_2.vnnlib"


def script(name: str, *args, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    e = dict(os.environ, VERIFY_PYTHON=sys.executable)
    e.update(env or {})
    return subprocess.run(["bash", str(SCRIPTS / name), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=e, cwd="/")


@needs_bash
@pytest.mark.parametrize("name", ["install_tool.sh", "prepare_instance.sh", "run_instance.sh"])
def test_scripts_parse_and_reject_a_wrong_version_string(name, tmp_path):
    assert subprocess.run(["bash", "-n", str(SCRIPTS / name)]).returncode == 0
    assert os.access(SCRIPTS / name, os.X_OK), f"{name} is not executable"
    args = {"install_tool.sh": ["v2"], "prepare_instance.sh": ["v2", "acasxu", "a.onnx", "b.vnnlib"],
            "run_instance.sh": ["v2", "acasxu", "a.onnx", "b.vnnlib", tmp_path / "r.txt", "10"]}[name]
    res = script(name, *args)
    assert res.returncode != 0 and "expected version string v1" in res.stderr
    assert not (tmp_path / "r.txt").exists()


@needs_bash
@needs_acas
def test_prepare_instance_checks_the_files():
    ok = script("prepare_instance.sh", "v1", "acasxu", ONNX, SAT_SPEC)
    assert ok.returncode == 0, ok.stderr
    missing = script("prepare_instance.sh", "v1", "acasxu", ONNX.with_name("nope.onnx"), SAT_SPEC)
    assert missing.returncode == 1 and "nope.onnx not found" in missing.stderr


@needs_bash
@needs_acas
def test_run_instance_writes_a_counterexample_the_checker_accepts(tmp_path):
    """One ACAS Xu instance end to end: prepare, run (gzipped files named without .gz), check like VNN-COMP."""
    assert script("prepare_instance.sh", "v1", "acasxu", ONNX, SAT_SPEC).returncode == 0
    result = tmp_path / "out" / "result.txt"
    res = script("run_instance.sh", "v1", "acasxu", ONNX, SAT_SPEC, result, 60, env={"VERIFY_METHOD": "attack"})
    assert res.returncode == 0, res.stderr
    word, x, y = parse_result_text(result.read_text())
    assert word == "sat", res.stderr
    ok, why = check_counterexample(OnnxReference(ONNX).run, load_vnnlib(SAT_SPEC), x, y)
    assert ok, why
    assert not result.with_name("result.txt.tmp").exists()


@needs_bash
@needs_acas
def test_run_instance_reports_timeout_when_killed_and_error_when_crashed(tmp_path):
    """Stand-in interpreters: one hangs past TIMEOUT + slack (killed -> timeout), one dies (-> error)."""
    hang = tmp_path / "hang.sh"
    hang.write_text("#!/bin/sh\nexec sleep 60\n")
    crash = tmp_path / "crash.sh"
    crash.write_text("#!/bin/sh\necho 'Segmentation fault' >&2\nexit 139\n")
    for f in (hang, crash):
        f.chmod(0o755)
    res = script("run_instance.sh", "v1", "acasxu", ONNX, SAT_SPEC, tmp_path / "t.txt", 1,
                 env={"VERIFY_PYTHON": str(hang), "VERIFY_KILL_SLACK": "1"}, timeout=30)
    assert res.returncode == 0 and (tmp_path / "t.txt").read_text().strip() == "timeout", res.stderr
    res = script("run_instance.sh", "v1", "acasxu", ONNX, SAT_SPEC, tmp_path / "e.txt", 5,
                 env={"VERIFY_PYTHON": str(crash)})
    assert res.returncode == 0 and (tmp_path / "e.txt").read_text().strip() == "error"
    assert "exited with code 139" in res.stderr
    bad = script("run_instance.sh", "v1", "acasxu", ONNX, SAT_SPEC, tmp_path / "x.txt", "soon")
    assert bad.returncode == 1 and "TIMEOUT must be a number" in bad.stderr
