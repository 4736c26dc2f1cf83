"""Settings end to end: TOML files, ``--set`` overrides, ``--print-config``, and the one deadline of a run."""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import pytest

from verifier.api import verify
from verifier.cli.main import main
from verifier.ir.deadline import Deadline, process_start
from verifier.settings import BaBSettings, VerifyOptions
from verifier.settings.config import ConfigError, apply_override, build_options, read_config, to_toml

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "vnnlib_specs"


def test_toml_round_trip_of_every_setting(tmp_path):
    opts = build_options(overrides=["bab.relu_branching=babsr", "bab.relu_fsb=3", "timeout=12.5", "attack.seed=4",
                                    'bab.input_portfolio=[["best", 2, true, 0.5], ["smear", 3, false, 1.0]]'])
    assert opts.bab.relu_branching == "babsr" and opts.bab.relu_fsb == 3 and opts.timeout == 12.5
    assert opts.bab.input_portfolio == (("best", 2, True, 0.5), ("smear", 3, False, 1.0))
    path = tmp_path / "run.toml"
    path.write_text(to_toml(opts))
    assert build_options(config=path) == opts
    # every field of every settings group appears in the file
    table = read_config(path)
    for group in ("attack", "bounds", "bab"):
        assert set(table[group]) == {f.name for f in fields(getattr(opts, group))}
    assert to_toml(VerifyOptions()) == to_toml(build_options())


def test_auto_fields_read_and_write_as_auto():
    assert VerifyOptions().bab.relu_alpha_iters is None
    assert 'relu_alpha_iters = "auto"' in to_toml(VerifyOptions())
    opts = apply_override(VerifyOptions(), "bab.relu_alpha_iters=16")
    assert opts.bab.relu_alpha_iters == 16
    assert apply_override(opts, "bab.relu_alpha_iters=auto").bab.relu_alpha_iters is None


@pytest.mark.parametrize("override, words", [
    ("bab.relu_branching=fsb", ["bab.relu_branching", "'gradient'", "'babsr'", "'auto'"]),
    ("bab.no_such_key=1", ["unknown setting 'bab.no_such_key'", "relu_branching"]),
    ("no_such_group.x=1", ["unknown setting 'no_such_group'", "bab"]),
    ("bab.batch=1.5", ["bab.batch", "integer"]),
    ("bab.root_alpha=1", ["bab.root_alpha", "true or false"]),
    ("dtype=float16", ["dtype", "'float32'", "'float64'"]),
    ("bab.relu_refine_share=1.5", ["relu_refine_share", "[0, 1)"]),
    ('bab.input_portfolio=[["nope", 3, false, 1.0]]', ["input_portfolio", "nope", "smear-all"]),
    ("bab.relu_fsb_portfolio=[[4]]", ["relu_fsb_portfolio[0]", "2 items"]),
    ("bab", ["KEY=VALUE"]),
    ("bab=3", ["'bab' is a table", "relu_batch"]),
])
def test_bad_settings_name_the_key_and_what_is_allowed(override, words):
    with pytest.raises(ConfigError) as e:
        build_options(overrides=[override])
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[bab\nbatch = 3\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        build_options(config=bad)
    with pytest.raises(ConfigError, match="cannot read"):
        build_options(config=tmp_path / "missing.toml")


def test_order_defaults_file_flags_overrides(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('timeout = 10.0\nmethod = "crown"\n[bab]\nrelu_batch = 8\n')
    opts = build_options(cfg, ["bab.relu_batch=16"], timeout=20.0)
    assert (opts.method, opts.timeout, opts.bab.relu_batch) == ("crown", 20.0, 16)


def test_cli_print_config_reflects_flags_file_and_overrides(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text("[attack]\nrestarts = 7\n")
    rc = main(["--config", str(cfg), "--seed", "3", "--timeout", "9", "--set", "bab.relu_branching=babsr",
               "--print-config"])
    out = capsys.readouterr().out
    assert rc == 0
    path = tmp_path / "printed.toml"
    path.write_text(out)
    opts = build_options(config=path)
    assert (opts.attack.restarts, opts.attack.seed, opts.timeout, opts.bab.relu_branching) == (7, 3, 9.0, "babsr")


def test_cli_bad_setting_is_the_verdict_error(capsys):
    rc = main([str(SPECS / "test_small.onnx"), str(SPECS / "test_small.vnnlib"), "--set", "bab.relu_branching=fsb"])
    out, err = capsys.readouterr()
    assert rc == 2 and out.splitlines()[0] == "error"
    assert "bab.relu_branching" in err and "babsr" in err and "Traceback" not in err


def test_print_config_needs_no_torch():
    code = ("import sys; from verifier.cli.main import main; main(['--print-config']); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "[bab]" in r.stdout and "relu_branching" in r.stdout


def test_bab_settings_reach_the_search():
    """``options.bab`` decides the strategy: the default takes input splitting for this small input, and
    input_split_max_dim=0 forces ReLU splitting on the same instance (CROWN does not decide it: it is sat)."""
    model, spec = SPECS / "test_sat.onnx", SPECS / "test_prop.vnnlib"
    base = VerifyOptions(bab=replace(BaBSettings(), attack_first=False))
    forced = replace(base, bab=replace(base.bab, input_split_max_dim=0))
    a = verify(model, spec, method="bab", timeout=30, options=base)
    b = verify(model, spec, method="bab", timeout=30, options=forced)
    assert str(a.verdict) == str(b.verdict) == "sat"
    assert (a.method, b.method) == ("bab:input-split", "bab:relu-split")
    assert a.stats["strategy"] == "input" and b.stats["strategy"] == "relu"


def test_deadline_carving():
    d = Deadline(10.0)
    assert d.total == 10.0 and 9.0 < d.left() <= 10.0
    s = d.sub(2.0)
    assert s.total == 2.0 and s.end <= d.end and 1.0 < s.left() <= 2.0
    assert d.sub(100.0).end == d.end  # never past the parent
    h = d.share(0.5)
    assert abs(h.left() - 0.5 * d.left()) < 0.1 and h.end <= d.end
    assert Deadline(-1.0).expired() and Deadline(0.0).sub(5.0).expired()


def test_process_start_is_before_now_and_counts():
    t = process_start()
    assert t <= time.monotonic()
    d = Deadline.since_process_start(1000.0)
    assert d.elapsed() >= 0.0 and d.left() <= 1000.0
