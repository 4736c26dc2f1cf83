"""stdout carries the verdict and nothing before it; solver output goes to stderr (the log).

The solver libraries print from C on file descriptor 1 (HiGHS's banner when a process makes its
first ``Highs()``, every solver's log with ``-v``, Gurobi's licence line), where redirecting Python's
``sys.stdout`` does not help. These tests capture the descriptors themselves: ``capfd`` in-process
with ``-v`` (the solvers' logs are on, so each solve prints whatever ran before it in this process),
and a fresh subprocess where only the once-per-process HiGHS banner would show.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from verifier.cli.guard import clean_stdout, internal_error, report_internal_error
from verifier.cli.main import main
from verifier.cli.vnnlib_solver import main as vnnlib_main

SPECS = ROOT / "vnnlib_specs"
SMALL = (SPECS / "test_small.onnx", SPECS / "test_small.vnnlib")  # unsat; lp solves an LP, milp stops at CROWN
SAT = (SPECS / "test_sat.onnx", SPECS / "test_prop.vnnlib")  # sat; lp and milp both run the solver
VERDICTS = {"sat", "unsat", "unknown", "timeout", "error"}
HAVE_GUROBI = importlib.util.find_spec("gurobipy") is not None


def _run(*args, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "verifier.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, env=env)


def test_a_fresh_process_prints_the_highs_banner_on_stderr_only():
    """`verify --method lp -q` in a new process: the banner of its first Highs() is not on stdout."""
    p = _run(*SMALL, "--method", "lp", "-q", "--threads", "1")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "unsat\n", p.stdout
    assert "Running HiGHS" in p.stderr, p.stderr  # the solver did print: the redirection is what kept stdout clean


def test_compare_prints_its_table_first_and_no_banner():
    p = subprocess.run([sys.executable, "-m", "verifier.cli", "compare", *map(str, SAT), "--timeout", "20",
                        "--methods", "crown,lp,milp"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["method", "verdict", "bound", "time", "(s)"], p.stdout
    assert "HiGHS" not in p.stdout and "Running HiGHS" in p.stderr
    rows = {ln.split()[0]: ln.split()[1] for ln in lines[2:] if ln.strip() and not ln.startswith(" ")}
    assert rows.get("milp") == "sat" and rows.get("lp") in ("sat", "unknown"), p.stdout


@pytest.mark.parametrize("method,instance,want", [("milp", SAT, "sat"), ("lp", SAT, "sat"), ("lp", SMALL, "unsat"),
                                                  ("dual", SMALL, "unsat"), ("milp", SMALL, "unsat")],
                         ids=["milp-sat", "lp-sat", "lp-unsat", "dual", "milp-unsat"])
@pytest.mark.parametrize("flag", ["-q", "-v", None])
def test_first_line_of_stdout_is_the_verdict(method, instance, want, flag, capfd):
    rc = main([*map(str, instance), "--method", method, "--timeout", "30", *([flag] if flag else [])])
    out, err = capfd.readouterr()
    assert rc == 0, err
    assert out.splitlines()[0] == want, out
    assert "HiGHS" not in out and "Gurobi" not in out
    if flag == "-v" and method in ("milp", "lp") and instance is SAT:
        assert "HiGHS" in err, err  # the solver's log was on: it went to stderr
    if want == "sat":
        assert out.splitlines()[1].startswith("((X_0 ")


@pytest.mark.parametrize("solver", ["highs", "cbc", "gurobi"])
def test_solver_logs_go_to_stderr(solver, capfd):
    """With -v every solver logs; none of it reaches stdout (Gurobi: its licence banner neither)."""
    if solver == "gurobi" and not HAVE_GUROBI:
        pytest.skip("gurobipy is not importable (pip install -e '.[solvers]'): the Gurobi output is not tested")
    rc = main([*map(str, SAT), "--method", "milp", "--solver", solver, "--timeout", "30", "-v"])
    out, err = capfd.readouterr()
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "sat" and all(ln.startswith(("((", " (")) for ln in lines[1:]), out
    logged = {"highs": "HiGHS", "cbc": "CBC", "gurobi": "Gurobi"}[solver]
    assert logged in err, err
    assert "Restricted license" not in out and "HiGHS" not in out and "Welcome to the CBC" not in out


def test_vnnlib_solver_prints_the_answer_first(capfd):
    rc = vnnlib_main(["verify", str(SAT[1]), "--network", f"N={SAT[0]}", "--method", "milp", "--timeout", "30",
                      "-v"])
    out, err = capfd.readouterr()
    assert rc == 0, err
    assert out.splitlines()[0] == "sat" and out.splitlines()[1] == "X Real [5]", out
    assert "HiGHS" not in out and "HiGHS" in err


def test_clean_stdout_sends_c_level_writes_to_stderr(capfd):
    """What is written on descriptor 1 inside the block (as a C library would) lands on stderr; print() does not."""
    with clean_stdout():
        os.write(1, b"from C\n")
        print("verdict", flush=True)
    os.write(1, b"after\n")
    out, err = capfd.readouterr()
    assert out == "verdict\nafter\n" and err == "from C\n", (out, err)


# --------------------------------------------------------------------------- the last-resort guard
def _raise(exc):
    raise exc


def test_internal_error_message_names_the_exception_and_where():
    try:
        _raise(ZeroDivisionError("float division by zero"))
    except ZeroDivisionError as e:
        msg = internal_error(e)
    assert msg.startswith("internal error: ZeroDivisionError: float division by zero (at tests/test_stdout.py:")
    assert msg.endswith("; rerun with -v for the traceback)")
    try:
        _raise(MemoryError())
    except MemoryError as e:
        assert internal_error(e).startswith("out of memory (at tests/test_stdout.py:")
    try:
        _raise(RecursionError("maximum recursion depth exceeded"))
    except RecursionError as e:
        assert internal_error(e).startswith("recursion too deep")


@pytest.mark.parametrize("verbose", [False, True])
def test_a_bug_in_the_run_is_the_verdict_error(verbose, tmp_path, capfd, monkeypatch):
    """A method that raises (standing in for a bug) still gives `error` first on stdout, exit 2, one stderr line."""
    import verifier.cli.verify as cli_verify

    def broken(*args, **kwargs):
        return {}["no such key"]

    monkeypatch.setattr(cli_verify, "verify", broken)
    result = tmp_path / "r.txt"
    args = [*map(str, SMALL), "--method", "crown", "--result-file", str(result), "-q"] + (["-v"] if verbose else [])
    rc = main(args)
    out, err = capfd.readouterr()
    assert rc == 2 and out == "error\n", (rc, out, err)
    assert result.read_text() == "error\n"
    line = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(line) == 1 and "internal error: KeyError: 'no such key' (at tests/test_stdout.py:" in line[0], err
    if verbose:
        assert "Traceback (most recent call last)" in err
    else:
        assert err.strip().splitlines() == line, err


def test_a_bug_outside_the_run_is_still_error_first(tmp_path, capfd, monkeypatch):
    """The guard of main.py: an exception before the verdict was printed (here: the run module itself) -> `error`."""
    import verifier.cli.main as cli_main

    monkeypatch.setattr(cli_main, "VERIFY_MODULE", "verifier.cli.no_such_module")
    rc = main([*map(str, SMALL), "--method", "crown", "--result-file", str(tmp_path / "r.txt")])
    out, err = capfd.readouterr()
    assert rc == 2 and out == "error\n", (rc, out, err)
    assert err.count("\n") == 1 and "internal error: ModuleNotFoundError" in err, err
    assert (tmp_path / "r.txt").read_text() == "error\n"


def test_report_internal_error_prints_the_traceback_only_when_verbose(capfd):
    try:
        _raise(ValueError("bad"))
    except ValueError as e:
        assert report_internal_error(e, verbose=True).startswith("internal error: ValueError: bad")
    assert "Traceback" in capfd.readouterr().err
    try:
        _raise(ValueError("bad"))
    except ValueError as e:
        report_internal_error(e, verbose=False)
    assert capfd.readouterr().err == ""


def test_a_bug_in_the_vnnlib_solver_is_an_error_line(capfd, monkeypatch):
    """vnnlib-solver's convention for errors: nothing on stdout, exit 1, one line on stderr."""
    import verifier.cli.vnnlib_commands as commands

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(commands, "verify_problem", broken)
    rc = vnnlib_main(["verify", str(SAT[1]), "--network", f"N={SAT[0]}", "--timeout", "30"])
    out, err = capfd.readouterr()
    assert rc == 1 and out == "", (rc, out, err)
    assert err.count("\n") == 1 and "error: internal error: RuntimeError: a bug (at tests/test_stdout.py:" in err, err
