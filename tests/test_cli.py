"""Command line (verifier/cli.py): ``verify MODEL SPEC``, ``verify --help``, ``verify methods``.

stdout's first line is the verdict; exit code 0 for a computed verdict and 2 for ``error``; user
mistakes (unsupported operators, malformed or missing files) give ``error`` with a one-line
message on stderr and no traceback. The console script itself is run in a subprocess for
these; the benchmark instances run in-process through ``verifier.cli.main``.
"""
from __future__ import annotations

import gzip
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import BENCH, ROOT, make_fc, make_unsupported, needs_bench, read_expected, read_instances, save

from frontends.onnx.reference import OnnxReference
from frontends.result_file import check_counterexample, parse_result_text
from frontends.vnnlib.v1 import load_vnnlib
from verifier.cli.main import main

CORE_METHODS = ("attack", "ibp", "crown", "alpha-crown")


def verify_cmd(*args) -> list[str]:
    """The installed console script, or the module when the script is not on PATH."""
    exe = shutil.which("verify")
    head = [exe] if exe else [sys.executable, "-m", "verifier.cli"]
    return head + [str(a) for a in args]


def run_cli(*args, timeout=120):
    return subprocess.run(verify_cmd(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


TEST_INSTANCES = read_instances(BENCH / "test") if (BENCH / "test").is_dir() else []
EXPECTED = read_expected(BENCH / "test") if (BENCH / "test").is_dir() else {}


# --------------------------------------------------------------------------- help and methods
def test_help_mentions_methods():
    p = run_cli("--help")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: verify")
    for word in ("--method", "--timeout", "--result-file", "methods", "crown", "attack", "unsat"):
        assert word in p.stdout, word
    assert "Traceback" not in p.stderr


def test_methods_lists_core_methods(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    names = [ln.split()[0] for ln in out.splitlines() if ln.strip()]
    assert set(CORE_METHODS) <= set(names), names
    assert names == sorted(names)
    for ln in out.splitlines():  # every method has a description
        assert len(ln.split(None, 1)) == 2, ln


def test_no_arguments_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "usage: verify" in capsys.readouterr().out


# --------------------------------------------------------------------------- errors
def _assert_error_output(p, *words):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    assert p.stdout.splitlines()[0] == "error"
    assert p.stdout == "error\n"
    err = p.stderr.strip().splitlines()
    assert len(err) == 1, p.stderr  # one line, no traceback
    assert "Traceback" not in p.stderr
    for w in words:
        assert w in err[0], (w, err[0])


@needs_bench
def test_cli_unsupported_operators(tmp_path):
    model = save(make_unsupported(), tmp_path / "bad_ops.onnx")
    p = run_cli(model, BENCH / "test" / "test_prop.vnnlib", "--method", "crown", "--result-file", tmp_path / "r.txt")
    _assert_error_output(p, "error", "hard_1", "Hardmax", "wave_2", "Asin", str(model))
    assert (tmp_path / "r.txt").read_text() == "error\n"


@needs_bench
def test_cli_malformed_model(tmp_path):
    model = tmp_path / "garbage.onnx"
    model.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    _assert_error_output(run_cli(model, BENCH / "test" / "test_prop.vnnlib"), str(model))


@needs_bench
def test_cli_missing_model(tmp_path, capsys):
    model = tmp_path / "missing.onnx"
    _in_process_error(capsys, [model, BENCH / "test" / "test_prop.vnnlib", "--method", "attack"], str(model),
                      "not found")


def _in_process_error(capsys, argv, *words):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "error\n", (rc, out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)


def test_truncated_gzip_model_is_an_error(tmp_path, capsys):
    model = tmp_path / "cut.onnx.gz"
    model.write_bytes(gzip.compress(make_fc().SerializeToString())[:60])
    spec = tmp_path / "p.vnnlib"
    spec.write_text("(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)"
                    "(declare-const Y_1 Real)(assert (>= X_0 0))(assert (<= X_0 1))(assert (>= X_1 0))"
                    "(assert (<= X_1 1))(assert (<= Y_0 Y_1))")
    _in_process_error(capsys, [model, spec, "--method", "ibp"], str(model))


def test_empty_input_box_and_undefined_initializer_are_errors(tmp_path, capsys):
    """An empty input set is the verdict error (the Lipschitz fast path answered unsat before), and so is a model
    whose Gemm bias no initializer defines (a KeyError traceback before)."""
    model = save(make_fc(0, sizes=(2, 4, 3)), tmp_path / "m.onnx")
    empty = tmp_path / "empty.vnnlib"
    empty.write_text("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
                     "(declare-const Y_1 Real)\n(declare-const Y_2 Real)\n(assert (>= X_0 0.5))\n"
                     "(assert (<= X_0 0.4))\n(assert (>= X_1 0))\n(assert (<= X_1 1))\n(assert (<= Y_0 Y_1))\n")
    _in_process_error(capsys, [model, empty], "empty.vnnlib:7: the input set is empty: X_0")
    broken = make_fc(0, sizes=(2, 4, 3))
    gemm = next(n for n in broken.graph.node if n.op_type == "Gemm")
    kept = [i for i in broken.graph.initializer if i.name != gemm.input[2]]
    del broken.graph.initializer[:]
    broken.graph.initializer.extend(kept)
    good = tmp_path / "good.vnnlib"
    good.write_text(empty.read_text().replace("(assert (<= X_0 0.4))", "(assert (<= X_0 0.6))"))
    # onnx.checker (the load-time check) names the tensor and the node first
    _in_process_error(capsys, [save(broken, tmp_path / "nobias.onnx"), good], f"input '{gemm.input[2]}'",
                      gemm.name)


def test_malformed_spec_and_size_mismatch_are_errors(tmp_path, capsys):
    model = save(make_fc(0, sizes=(2, 4, 3)), tmp_path / "m.onnx")
    bad = tmp_path / "bad.vnnlib"
    bad.write_text("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(assert (<= X_0 \n")
    _in_process_error(capsys, [model, bad, "--method", "crown"], str(bad))
    wrong = tmp_path / "wrong.vnnlib"  # 3 inputs for a 2-input network
    wrong.write_text("".join(f"(declare-const X_{i} Real)" for i in range(3)) +
                     "(declare-const Y_0 Real)(declare-const Y_1 Real)(declare-const Y_2 Real)"
                     "(assert (>= X_0 0))(assert (<= X_0 1))(assert (<= Y_0 Y_1))")
    _in_process_error(capsys, [model, wrong, "--method", "crown"], "wrong.vnnlib")
    _in_process_error(capsys, [model, tmp_path / "absent.vnnlib", "--method", "crown"], "absent.vnnlib")


def test_unknown_method_is_an_error(tmp_path, capsys):
    model = save(make_fc(0, sizes=(2, 4, 2)), tmp_path / "m.onnx")
    spec = tmp_path / "p.vnnlib"
    spec.write_text("(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)"
                    "(assert (>= X_0 0))(assert (<= X_0 1))(assert (>= X_1 0))(assert (<= X_1 1))(assert (<= Y_0 Y_1))")
    _in_process_error(capsys, [model, spec, "--method", "no-such-method"], "no-such-method")


# --------------------------------------------------------------------------- the `test` benchmark
@needs_bench
@pytest.mark.parametrize("onnx_rel,vnn_rel,timeout", TEST_INSTANCES, ids=[i[0] for i in TEST_INSTANCES])
def test_crown_verdicts_on_test_benchmark(onnx_rel, vnn_rel, timeout, tmp_path, capsys):
    model, prop = BENCH / "test" / onnx_rel, BENCH / "test" / vnn_rel
    result_file = tmp_path / "result.txt"
    rc = main([str(model), str(prop), "--method", "crown", "--timeout", str(timeout),
               "--result-file", str(result_file)])
    out, err = capsys.readouterr()
    expected = EXPECTED[(onnx_rel, vnn_rel)]
    assert rc == 0, err
    assert out.splitlines()[0] == expected, (out, err)
    assert result_file.read_text() == out
    word, x, y = parse_result_text(result_file.read_text())
    assert word == expected
    if word == "sat":
        ok, why = check_counterexample(OnnxReference(model).run, load_vnnlib(prop), x, y)
        assert ok, why


@needs_bench
@pytest.mark.parametrize("onnx_rel,vnn_rel", [k for k, v in EXPECTED.items() if v == "unsat"],
                         ids=[k[0] for k, v in EXPECTED.items() if v == "unsat"])
def test_attack_never_sat_on_unsat_instance(onnx_rel, vnn_rel, capsys):
    rc = main([str(BENCH / "test" / onnx_rel), str(BENCH / "test" / vnn_rel), "--method", "attack",
               "--timeout", "1", "-q"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.splitlines()[0] in ("unknown", "timeout"), out


# --------------------------------------------------------------------------- attack acceptance (sample)
ACAS_SAT_SAMPLE = [("1_2", "prop_2"), ("2_9", "prop_2"), ("4_4", "prop_2"), ("3_8", "prop_2"), ("1_7", "prop_3"),
                   ("1_9", "prop_3"), ("1_8", "prop_4"), ("1_9", "prop_4")]
ACAS_UNSAT_SAMPLE = [("1_1", "prop_1"), ("1_1", "prop_2"), ("2_2", "prop_3"), ("3_3", "prop_4"), ("1_1", "prop_5"),
                     ("1_1", "prop_6"), ("3_3", "prop_9"), ("4_5", "prop_10")]


def _acas(net, prop):
    return (f"onnx/ACASXU_run2a_{net}_batch_2000.onnx", f"vnnlib/{prop}.vnnlib")


@pytest.mark.slow
@needs_bench
def test_attack_acceptance_acasxu_sample(tmp_path, capsys):
    """A sample of the acceptance criterion (``benchmarks/bench_attack.py`` runs all 47 expected-sat
    instances): validated counterexamples within each instance's timeout, that pass the competition
    checker, and never ``sat`` on an expected-unsat instance (1 s each)."""
    import time

    acas = BENCH / "acasxu"
    expected = read_expected(acas)
    timeouts = {(o, v): t for o, v, t in read_instances(acas)}
    for net, prop in ACAS_SAT_SAMPLE + ACAS_UNSAT_SAMPLE:
        key = _acas(net, prop)
        want = expected[key]
        limit = timeouts[key] if want == "sat" else 1.0
        out_file = tmp_path / f"{net}_{prop}.txt"
        t0 = time.monotonic()
        rc = main([str(acas / key[0]), str(acas / key[1]), "--method", "attack", "--timeout", str(limit), "-q",
                   "--result-file", str(out_file)])
        elapsed = time.monotonic() - t0
        out = capsys.readouterr().out
        assert rc == 0
        verdict = out.splitlines()[0]
        if want == "unsat":
            assert verdict in ("unknown", "timeout"), (key, out)
            continue
        assert verdict == "sat", (key, out)
        assert elapsed <= timeouts[key]
        _, x, y = parse_result_text(out_file.read_text())
        ok, why = check_counterexample(OnnxReference(acas / key[0]).run, load_vnnlib(acas / key[1]), x, y)
        assert ok, (key, why)


# --------------------------------------------------------------------------- the budget of a run, the docs
def test_carved_budgets_keep_the_runs_end_for_long_steps():
    """``step_would_overrun`` stops a loop before a step that would end after the whole run (not the phase)."""
    from verifier.ir.deadline import Deadline

    run = Deadline(1000.0)
    assert not run.step_would_overrun(1.0) and run.step_would_overrun(5000.0)
    phase = run.sub(100.0).share(0.5)  # a 50 s phase of a long run
    assert phase.final_end == run.final_end == run.end and phase.end < run.end
    assert not phase.step_would_overrun(60.0)  # a step past the phase's own end is the phase's business
    assert phase.step_would_overrun(2000.0)  # one past the run's end is not started
    assert Deadline(0.0).step_would_overrun(0.0)  # an expired budget starts nothing


def test_methods_text_and_readme_agree_on_what_lp_and_dual_answer(capsys):
    """lp may answer sat (its optimum's input, validated), dual never: `verify methods` and the README say so."""
    assert main(["methods"]) == 0
    desc = {ln.split(None, 1)[0]: ln.split(None, 1)[1] for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    assert "sat" in desc["lp"].replace("unsat", "") and "validat" in desc["lp"]
    assert "unsat only" in desc["dual"] and "sat / unsat" in desc["milp"]
    readme = (ROOT / "README.md").read_text()
    row = next(ln for ln in readme.splitlines() if ln.startswith("| `milp`, `lp`, `dual` |"))
    assert "lp: unsat, or sat when the LP optimum's input is a validated counterexample" in row
    assert "dual: unsat" in row


def test_methods_catalogue_is_what_is_registered():
    """`verify methods` lists the catalogue (verifier.settings.methods) without importing the methods; the
    registry registers exactly those names."""
    from verifier.methods import available_methods
    from verifier.settings.methods import METHODS

    assert set(available_methods()) == set(METHODS)


def test_methods_and_help_do_not_import_torch():
    code = ("import sys\nfrom verifier.cli.main import run_subcommand, main\n"
            "run_subcommand(['methods'])\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH', 'torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "auto" in r.stdout and "milp" in r.stdout
    assert "TORCH False" in r.stdout, r.stdout[-500:]
