"""Fuzz suite (issue 20): nothing a user hands ``verify`` may crash it, hang it, exhaust the machine or get a
verdict it has not earned.

``test_fuzz_no_*``: a seeded set of mutated VNN-LIB and ONNX files (every mutation kind of ``tests/fuzzing.py``;
the shipped examples, and a small sample of ``../shared/benchmarks`` when it is there), each run through
``verifier.cli.main.main`` in a forked child of this process, and one test per failure class asserting that no
case fell into it (the failing cases are listed with kind, seed, what was mutated and a reproducer command).
Then named regression cases, one per bug the issue lists, and tests of the harness itself (a traceback, a
hang, a verdict on an invalid file and a bad counterexample are each caught).

``NNVERIFY_FUZZ_CASES`` / ``NNVERIFY_FUZZ_SEED`` change the size and the seed of the seeded set;
``benchmarks/fuzz.py`` runs the same engine at scale.
"""
from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import fuzzing
import numpy as np
import onnx
import pytest
from conftest import BENCH
from onnx import TensorProto, helper, numpy_helper

N_CASES = int(os.environ.get("NNVERIFY_FUZZ_CASES", "300"))
SEED = int(os.environ.get("NNVERIFY_FUZZ_SEED", "20"))
TIMEOUT = 1.5  # most cases are errors that end at once; the valid ones are small nets
MEM_CAP_MB = 2000
S = fuzzing.SPECS


def listing(runs, limit: int = 40) -> str:
    bad = [r for r in runs if r.failures]
    lines = [f"{len(bad)} of {len(runs)} cases failed:"]
    for r in bad[:limit]:
        c = r.case
        lines.append(f"- {c.kind} seed={c.seed} expect={c.expect} -> {r.first_line or '(no stdout)'} rc={r.rc} "
                     f"{r.wall:.1f}s: {'; '.join(f'{k}: {v}' for k, v in r.failures)}")
        lines.append(f"    mutation: {c.note[:160]}")
        lines.append(f"    reproduce: {c.command()}")
    if len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more")
    return "\n".join(lines)


# =========================================================================== the seeded set
@pytest.fixture(scope="module")
def fuzz_runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzz")
    t0 = time.monotonic()
    cases = fuzzing.generate(N_CASES, SEED, work, timeout=TIMEOUT, per_benchmark=2, max_model_bytes=400_000,
                             heavy_timeout=5.0)
    runs = fuzzing.run_cases(cases, jobs=2, mem_cap_mb=MEM_CAP_MB, hang_grace=3.0)
    print(f"\nfuzz: {len(runs)} cases in {time.monotonic() - t0:.1f}s "
          f"({sum(1 for r in runs if r.failures)} failing)")
    for r in runs:  # the mutated files of passing cases (some are tens of MB); failing ones stay for the reproducers
        if not r.failures:
            for p in (r.case.spec, r.case.model):
                if Path(p).name.startswith(r.case.id + "_"):
                    Path(p).unlink(missing_ok=True)
    return runs


def test_fuzz_set_covers_every_kind(fuzz_runs):
    kinds = {r.case.kind for r in fuzz_runs}
    if N_CASES >= 200:
        expected = set(fuzzing.ALL_KINDS)
        assert kinds == expected, sorted(expected - kinds)
    expects = {r.case.expect for r in fuzz_runs}
    assert {"error", "any", "sat"} <= expects, expects
    # the oracle both accepts and refuses some mutated models, so "onnxruntime refuses" is a real test
    model_expects = {r.case.expect for r in fuzz_runs if r.case.kind.startswith("model:")}
    assert {"error", "any"} <= model_expects, model_expects
    # equivalent rewrites of pairs whose answer is known
    assert any(e.startswith("same:") for e in expects), expects


@pytest.mark.parametrize("cls", fuzzing.CLASSES)
def test_fuzz_no(fuzz_runs, cls):
    bad = [r for r in fuzz_runs if any(k == cls for k, _ in r.failures)]
    assert not bad, f"{cls}: " + listing(bad)


# =========================================================================== regression cases (the list)
def case(tmp_path: Path, kind: str, model: str | Path, spec: str | Path | None = None, *, spec_data=None,
         model_data=None, expect: str | None = None, timeout: float = 3.0, args=(), note: str = "") -> fuzzing.Case:
    """A case from explicit files; ``model_data`` bytes are judged by onnxruntime when ``expect`` is None."""
    name = kind.replace(":", "_")
    if spec_data is not None:
        spec = tmp_path / f"{name}.vnnlib"
        spec.write_bytes(spec_data.encode() if isinstance(spec_data, str) else spec_data)
    if model_data is not None:
        model = tmp_path / f"{name}.onnx"
        model.write_bytes(model_data)
        if expect is None:
            ok, why = fuzzing.ort_accepts(model_data)
            expect, note = ("any" if ok else "error"), f"{note}; onnxruntime: {why}"
    return fuzzing.Case(name, kind, 0, str(spec if spec_data is not None else model), str(model), str(spec),
                        expect or "any", note, timeout, list(args))


def run_clean(*cases: fuzzing.Case, cap: float = MEM_CAP_MB):
    runs = fuzzing.run_cases(list(cases), jobs=2, mem_cap_mb=cap, hang_grace=3.0)
    assert not any(r.failures for r in runs), listing(runs)
    return runs


def text_of(path: Path) -> str:
    return fuzzing.read_bytes(path).decode()


PROP = S / "test_prop.vnnlib"
PROP_OUTPUTS_GONE = fuzzing._drop_output_asserts(text_of(PROP), fuzzing.spec_info(text_of(PROP)))


@pytest.mark.parametrize("method", ["auto", "crown", "ibp", "alpha-crown"])
def test_trivially_true_output_row_is_sat(tmp_path, method):
    spec = PROP_OUTPUTS_GONE + "(assert (<= Y_0 Y_0))\n"
    [r] = run_clean(case(tmp_path, "spec:trivially_true", S / "test_sat.onnx", spec_data=spec, expect="sat",
                         args=["--method", method]))
    assert r.first_line == "sat" and r.cex == "ok", (r.stdout, r.cex)


@pytest.mark.parametrize("method", ["auto", "crown"])
def test_spec_truncated_after_its_input_box_is_sat(tmp_path, method):
    text = text_of(PROP)
    box_end = text.index("\n", text.index("(assert (>= X_4 0.3))"))
    [r] = run_clean(case(tmp_path, "spec:truncate", S / "test_unsat.onnx", spec_data=text[:box_end + 1],
                         expect="sat", args=["--method", method]))
    assert r.first_line == "sat" and r.cex == "ok", (r.stdout, r.cex)


def test_or_and_nested_500_deep_is_no_traceback(tmp_path):
    spec = fuzzing.nest(text_of(PROP), 500)
    run_clean(case(tmp_path, "spec:deep_nesting", S / "test_sat.onnx", spec_data=spec))


def _model(path) -> onnx.ModelProto:
    return onnx.load_from_string(fuzzing.read_bytes(path))


def _refused(tmp_path, kind, model: onnx.ModelProto, spec, note=""):
    c = case(tmp_path, kind, "", spec, model_data=model.SerializeToString(), note=note)
    assert c.expect == "error", f"onnxruntime accepts this model, so it tests nothing: {c.note}"
    [r] = run_clean(c)
    assert r.first_line == "error"


def test_missing_bias_initializer_is_error(tmp_path):
    m = _model(S / "test_small.onnx")
    bias = next(i for i in m.graph.initializer if i.name.startswith("B"))
    m.graph.initializer.remove(bias)
    _refused(tmp_path, "model:remove_initializer", m, S / "test_small.vnnlib", f"removed {bias.name}")


def test_graph_output_that_no_node_produces_is_error(tmp_path):
    m = _model(S / "test_tiny.onnx")
    m.graph.output[0].name = "nobody_makes_this"
    _refused(tmp_path, "model:output_unproduced", m, S / "test_tiny.vnnlib")


def test_maxpool_without_kernel_shape_is_error(tmp_path):
    pair = fuzzing.gen_pool_model(tmp_path / "src")
    m = _model(pair.model)
    pool = next(n for n in m.graph.node if n.op_type == "MaxPool")
    keep = [a for a in pool.attribute if a.name != "kernel_shape"]
    del pool.attribute[:]
    pool.attribute.extend(keep)
    _refused(tmp_path, "model:remove_attribute", m, pair.spec)


@pytest.mark.parametrize("dtype", ["int64", "float16", "float64"])
def test_weights_of_another_dtype_are_error(tmp_path, dtype):
    m = _model(S / "test_small.onnx")
    w = next(i for i in m.graph.initializer if i.name == "W1")
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w).astype(dtype), w.name))
    _refused(tmp_path, "model:init_dtype", m, S / "test_small.vnnlib")


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_or_inf_weights_are_no_traceback(tmp_path, value):
    m = _model(S / "test_small.onnx")
    w = next(i for i in m.graph.initializer if i.name == "W0")
    arr = numpy_helper.to_array(w).copy()
    arr[...] = value
    w.CopyFrom(numpy_helper.from_array(arr, w.name))
    c = case(tmp_path, "model:nan_weight", "", S / "test_small.vnnlib", model_data=m.SerializeToString())
    run_clean(c)


def test_spec_with_more_inputs_than_the_model_is_error(tmp_path):
    spec = text_of(PROP) + "\n(declare-const X_5 Real)\n(assert (<= X_5 1))\n(assert (>= X_5 0))\n"
    [r] = run_clean(case(tmp_path, "spec:shape_mismatch", S / "test_sat.onnx", spec_data=spec, expect="error"))
    assert r.first_line == "error"


def test_model_input_shape_that_does_not_match_the_spec_is_error(tmp_path):
    m = _model(S / "test_sat.onnx")
    inp = fuzzing.real_inputs(m)[0]
    inp.type.tensor_type.shape.dim[-1].dim_value = 6
    _refused(tmp_path, "model:input_dim", m, PROP)


def test_model_input_of_a_huge_declared_shape_is_a_plain_error(tmp_path):
    """Found by the fuzz set: an input dim of 99999999999 (onnxruntime cannot run it) made the loader allocate
    12.8 TB ("internal error: RuntimeError: ... DefaultCPUAllocator: can't allocate memory")."""
    pair = fuzzing.gen_pool_model(tmp_path / "src")
    m = _model(pair.model)
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 99999999999
    _refused(tmp_path, "model:input_dim", m, pair.spec)


@pytest.mark.parametrize("mutation", ["STRING input", "BOOL input", "opset 99", "custom domain",
                                      "two nodes write one output"])
def test_models_onnxruntime_refuses_are_error(tmp_path, mutation):
    m = _model(S / "test_small.onnx")
    if mutation.endswith("input"):
        m.graph.input[0].type.tensor_type.elem_type = getattr(TensorProto, mutation.split()[0])
    elif mutation == "opset 99":
        m.opset_import[0].version = 99
    elif mutation == "custom domain":
        m.graph.node[2].domain = "com.example.custom"
        m.opset_import.append(helper.make_opsetid("com.example.custom", 1))
    else:
        m.graph.node[1].output[0] = m.graph.node[0].output[0]
    _refused(tmp_path, "model:" + mutation.replace(" ", "_"), m, S / "test_small.vnnlib", mutation)


@pytest.mark.parametrize("shape", ["[99999999999]", "[99999,99999,99999]"])
def test_huge_vnnlib2_declaration_is_a_quick_error(tmp_path, shape):
    spec = text_of(S / "v2" / "acasxu_prop_1.vnnlib").replace("[1,1,1,5]", shape, 1)
    [r] = run_clean(case(tmp_path, "spec:huge_decl", S / "ACASXU_run2a_1_1_batch_2000.onnx.gz", spec_data=spec,
                         expect="error"), cap=1000)
    assert r.first_line == "error" and r.cpu < 3.0


def test_90000_disjuncts_stay_within_memory_and_time(tmp_path):
    text = text_of(PROP)
    spec = fuzzing.many_disjuncts(text, fuzzing.spec_info(text), 90_000, random.Random(0))
    # a budget that reading the spec does not use up, so that what comes after it runs too
    run_clean(case(tmp_path, "spec:many_disjuncts", S / "test_sat.onnx", spec_data=spec, timeout=6.0), cap=1500)


def test_50mb_spec_honours_the_timeout(tmp_path):
    spec = fuzzing.huge_spec(text_of(PROP), 50)
    assert len(spec) > 49e6
    c = case(tmp_path, "spec:huge_file", S / "test_sat.onnx", spec_data=spec, timeout=3.0)
    run_clean(c)
    Path(c.spec).unlink()


@pytest.mark.parametrize("bad", ["\u0663", "\uff13", "1e400", "nan", "inf", "1..2", "--1", "0x10"])
def test_bad_number_is_error_with_its_line(tmp_path, bad):
    spec = text_of(PROP).replace("(assert (<= X_3 0.5))", f"(assert (<= X_3 {bad}))")
    assert bad in spec
    [r] = run_clean(case(tmp_path, "spec:bad_number", S / "test_sat.onnx", spec_data=spec.encode(),
                         expect="error"))
    line = 1 + spec[:spec.index(bad)].count("\n")
    assert f":{line}" in r.stderr or f"line {line}" in r.stderr, r.stderr


def test_strict_inequality_is_not_read_as_its_closure(tmp_path):
    spec = PROP_OUTPUTS_GONE + "(assert (< Y_0 Y_0))\n"  # no output is below itself: never sat
    [r] = run_clean(case(tmp_path, "spec:strict_trivial", S / "test_sat.onnx", spec_data=spec))
    assert r.first_line != "sat", r.stdout


# =========================================================================== the harness itself
def _harness_case(tmp_path, expect="any", timeout=1.0):
    return case(tmp_path, "spec:harness", S / "test_tiny.onnx", S / "test_tiny.vnnlib", expect=expect,
                timeout=timeout)


def test_runner_catches_a_traceback(tmp_path):
    def entry(argv):
        raise KeyError("B0")
    [r] = fuzzing.run_cases([_harness_case(tmp_path)], entry=entry)
    assert r.rc == 1 and "KeyError" in dict(r.failures).get("traceback", ""), r.failures


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_runner_catches_a_hang_and_an_overrun(tmp_path):
    def spin_forever(argv):
        _spin(1e9)

    def deadlock(argv):
        time.sleep(1e9)

    def late(argv):
        _spin(1.8)
        print("timeout")
        return 0
    # killed once its CPU time passes timeout + 1 s (a busy machine slows that, hence the loose wall bounds) ...
    [hung] = fuzzing.run_cases([_harness_case(tmp_path, timeout=0.5)], entry=spin_forever, hang_grace=1.0)
    assert hung.hung and hung.wall < 8 and "overrun" in dict(hung.failures), hung.failures
    # ... or, using no CPU, at 4 x (timeout + hang_grace)
    [stuck] = fuzzing.run_cases([_harness_case(tmp_path, timeout=0.2)], entry=deadlock, hang_grace=0.3)
    assert stuck.hung and 1.9 < stuck.wall < 6 and stuck.cpu < 1 and "overrun" in dict(stuck.failures), stuck
    [slow] = fuzzing.run_cases([_harness_case(tmp_path, timeout=0.5)], entry=late, hang_grace=60.0)
    assert not slow.hung and slow.first_line == "timeout" and "overrun" in dict(slow.failures), slow.failures


def test_runner_catches_a_verdict_on_an_invalid_file_and_a_bad_reason(tmp_path):
    def unsat(argv):
        print("unsat")
        return 0

    def vague_error(argv):
        print("error")
        print("error: something went wrong", file=sys.stderr)
        return 2
    [r] = fuzzing.run_cases([_harness_case(tmp_path, expect="error")], entry=unsat)
    assert "verdict-on-invalid" in dict(r.failures), r.failures
    [r] = fuzzing.run_cases([_harness_case(tmp_path, expect="error")], entry=vague_error)
    assert dict(r.failures).keys() == {"bad-reason"}, r.failures


def test_runner_catches_memory_use(tmp_path):
    def hog(argv):
        block = np.ones(400 * 2**20 // 8)  # 400 MB, touched
        print("error")
        print(f"error: {argv[1]}: nothing {block[0]}", file=sys.stderr)
        return 2
    [r] = fuzzing.run_cases([_harness_case(tmp_path)], entry=hog, mem_cap_mb=200)
    assert "memory" in dict(r.failures), (r.rss_extra_mb, r.failures)


def test_counterexample_check_is_independent_and_exact(tmp_path):
    """The checker runs onnxruntime itself and reads the spec with its own evaluator."""
    from conftest import ort_run_batch, ort_session
    sess = ort_session(S / "test_sat.onnx")
    spec = tmp_path / "true.vnnlib"
    spec.write_text(PROP_OUTPUTS_GONE + "(assert (<= Y_0 Y_0))\n")
    x = np.array([-0.3, 0.0, 0.495, 0.4, 0.4])
    y = ort_run_batch(sess, x[None])[0]

    def out(xv, yv):
        return "sat\n(" + "\n ".join([f"(X_{i} {float(v)!r})" for i, v in enumerate(xv)] +
                                     [f"(Y_{j} {float(v)!r})" for j, v in enumerate(yv)]) + ")\n"
    model = str(S / "test_sat.onnx")
    assert fuzzing.check_sat_output(out(x, y), model, str(spec)) == [True, "ok"]
    ok, msg = fuzzing.check_sat_output(out(x + [1, 0, 0, 0, 0], y), model, str(spec))
    assert not ok  # X outside the box (and Y no longer the model's output)
    assert not fuzzing.check_sat_output(out(x, y + 1), model, str(spec))[0]  # printed Y is not the model's
    spec.write_text(PROP_OUTPUTS_GONE + "(assert (< Y_0 Y_0))\n")
    assert not fuzzing.check_sat_output(out(x, y), model, str(spec))[0]  # strict: never holds
    assert not fuzzing.check_sat_output("sat\n", model, str(spec))[0]  # no counterexample at all


def test_mutations_are_deterministic(tmp_path):
    a = fuzzing.generate(len(fuzzing.ALL_KINDS), 3, tmp_path / "a", per_benchmark=1)
    b = fuzzing.generate(len(fuzzing.ALL_KINDS), 3, tmp_path / "b", per_benchmark=1)
    assert [(c.kind, c.seed, c.note, c.expect) for c in a] == [(c.kind, c.seed, c.note, c.expect) for c in b]
    for ca, cb in zip(a, b):
        for pa, pb in ((ca.spec, cb.spec), (ca.model, cb.model)):
            assert Path(pa).read_bytes() == Path(pb).read_bytes(), (ca.kind, pa)


def test_benchmark_sources_are_sampled_when_present():
    pairs = fuzzing.spec_sources(0, per_benchmark=2)
    if BENCH.is_dir():
        assert any(str(BENCH) in p.spec for p in pairs)
    for p in pairs:
        assert Path(p.model).exists() and Path(p.spec).exists(), p
        assert len(fuzzing.read_bytes(p.spec)) <= fuzzing.MAX_SOURCE_BYTES
