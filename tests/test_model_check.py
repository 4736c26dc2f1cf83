"""The load-time model check (frontends/onnx/check.py, compare.py): a model that onnx.checker or onnxruntime
refuses, or whose weights are not finite, is the verdict ``error`` with a one-line reason; the loaded graph's
forward pass is compared with onnxruntime on points of the spec, and a difference names the first ONNX node
whose output differs. Real ONNX files (edits of the shipped test_small.onnx, models built with onnx.helper),
onnxruntime as the reference.
"""
from __future__ import annotations

import copy
import logging

import numpy as np
import onnx
import onnx.numpy_helper as nh
import pytest
import torch
from conftest import BENCH, ROOT, Builder, bench_networks, make_fc, needs_bench
from onnx import TensorProto, helper

from frontends.load import check_model_on_spec, load_model, load_problem
from frontends.onnx.compare import excess, finite_box, sample_points
from frontends.onnx.loader import graph_from_onnx
from frontends.onnx.reference import OnnxReference, condense
from verifier.cli.main import main
from verifier.cli.vnnlib_solver import main as solver_main
from verifier.ir.errors import ModelError, SpecError
from verifier.ir.spec import Disjunct, Spec
from verifier.settings.inputs import ModelCheckSettings

SMALL = ROOT / "vnnlib_specs" / "test_small.onnx"
SMALL_SPEC = ROOT / "vnnlib_specs" / "test_small.vnnlib"


# --------------------------------------------------------------------------- reproducer models
def _small() -> onnx.ModelProto:
    return onnx.load(str(SMALL))


def _set_init(m: onnx.ModelProto, name: str, arr: np.ndarray) -> None:
    init = next(i for i in m.graph.initializer if i.name == name)
    init.CopyFrom(nh.from_array(arr, name))


def _edit(kind: str) -> onnx.ModelProto:
    m = _small()
    g = m.graph
    if kind == "bool_input":
        g.input[0].type.tensor_type.elem_type = TensorProto.BOOL
    elif kind == "string_input":
        g.input[0].type.tensor_type.elem_type = TensorProto.STRING
    elif kind == "opset_99":
        m.opset_import[0].version = 99
    elif kind == "custom_domain":
        g.node[0].domain = "com.custom"
    elif kind == "duplicate_output":  # 'H0' renamed 'M0' and read as 'M0': every input still defined
        g.node[1].output[0] = "M0"
        g.node[2].input[0] = "M0"
    elif kind in ("int64_weight", "float16_weight"):
        w = nh.to_array(next(i for i in g.initializer if i.name == "W0"))
        _set_init(m, "W0", w.astype(np.int64 if kind == "int64_weight" else np.float16))
    elif kind in ("nan_weight", "inf_weight"):
        w = nh.to_array(next(i for i in g.initializer if i.name == "W0")).copy()
        w.flat[0] = np.nan if kind == "nan_weight" else -np.inf
        _set_init(m, "W0", w)
    elif kind == "float16_io":  # a consistent float16 model: onnxruntime runs it, the verifier does not
        for v in (g.input[0], g.output[0]):
            v.type.tensor_type.elem_type = TensorProto.FLOAT16
        for i in list(g.initializer):
            _set_init(m, i.name, nh.to_array(i).astype(np.float16))
    else:
        raise KeyError(kind)
    return m


# kind -> words the one-line reason must hold
REFUSED = {
    "bool_input": ["bool"],
    "string_input": ["string"],
    "opset_99": ["onnxruntime", "Opset 99"],
    "custom_domain": ["com.custom"],
    "duplicate_output": ["M0"],
    "int64_weight": ["MatMul"],
    "float16_weight": ["MatMul"],
    "nan_weight": ["'W0'", "NaN", "'M0' (MatMul)"],
    "inf_weight": ["'W0'", "inf", "'M0' (MatMul)"],
    "float16_io": ["FLOAT16"],
}


def _cli_error(capsys, argv, *words) -> str:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "error\n", (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)
    return lines[0]


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_refused_models_are_errors(kind, tmp_path, capsys):
    path = tmp_path / f"{kind}.onnx"
    onnx.save(_edit(kind), str(path))
    _cli_error(capsys, [path, SMALL_SPEC, "--timeout", "5"], str(path), *REFUSED[kind])


@pytest.mark.parametrize("kind", ["bool_input", "opset_99", "duplicate_output", "nan_weight", "float16_io"])
def test_refused_without_the_forward_check_too(kind, tmp_path, capsys):
    """model_check.enabled = false skips onnx.checker and the forward comparison; onnxruntime's session (the
    judge of counterexamples), the element types and the finite-weights check stay."""
    path = tmp_path / f"{kind}.onnx"
    onnx.save(_edit(kind), str(path))
    _cli_error(capsys, [path, SMALL_SPEC, "--timeout", "5", "--set", "model_check.enabled=false"], str(path))


def test_onnxruntime_prints_nothing_of_its_own(tmp_path, capfd):
    """A refused model is one stderr line even where onnxruntime's C++ logger would add its own (it writes to
    file descriptor 2, which capsys does not see)."""
    m = _small()
    init = next(i for i in m.graph.initializer if i.name == "B0")
    init.raw_data = b""  # 0 bytes for 2 floats
    del init.float_data[:]
    path = tmp_path / "short.onnx"
    onnx.save(m, str(path))
    rc = main([str(path), str(SMALL_SPEC), "--timeout", "5", "--set", "model_check.enabled=false"])
    out, err = capfd.readouterr()
    assert rc == 2 and out == "error\n" and len(err.strip().splitlines()) == 1, (out, err)
    assert "B0" in err and "onnxruntime" in err.lower(), err


def test_duplicate_initializer_names_are_refused_by_the_loader():
    m = _small()
    w = nh.to_array(next(i for i in m.graph.initializer if i.name == "W0"))
    m.graph.initializer.append(nh.from_array(w * 2, "W0"))  # onnxruntime would run one of the two
    with pytest.raises(ModelError, match="two initializers are named 'W0'"):
        load_model(m.SerializeToString(), "dup.onnx", model_check=ModelCheckSettings(enabled=False))


def test_bad_model_files_name_the_file(tmp_path, capsys):
    data = SMALL.read_bytes()
    for name, content in (("empty.onnx", b""), ("cut.onnx", data[: len(data) // 2]), ("text.onnx", b"not onnx")):
        path = tmp_path / name
        path.write_bytes(content)
        _cli_error(capsys, [path, SMALL_SPEC, "--timeout", "5"], str(path), "not a valid ONNX model")


def test_the_vnnlib_solver_interface_gets_the_same_check(tmp_path, capsys):
    path = tmp_path / "nan.onnx"
    onnx.save(_edit("nan_weight"), str(path))
    rc = solver_main(["verify", str(SMALL_SPEC), "--network", f"any={path}", "--method", "crown"])
    cap = capsys.readouterr()
    assert rc == 1 and cap.out == "" and "'W0'" in cap.err and "NaN" in cap.err, (rc, cap)
    rc = solver_main(["verify", str(SMALL_SPEC), "--network", f"any={SMALL}", "--method", "crown"])
    assert rc == 0 and capsys.readouterr().out.splitlines()[0] == "unsat"


# --------------------------------------------------------------------------- the loader on malformed nodes
def _maxpool_model(keep_kernel: bool) -> onnx.ModelProto:
    b = Builder(3, [1, 1, 4, 4])
    x = b.node("MaxPool", [b.in_name], node_name="pool_1", kernel_shape=[2, 2], strides=[2, 2])
    x = b.gemm(b.flatten(x), 4, 2, relu=False)
    m = b.model(x)
    if not keep_kernel:
        pool = next(n for n in m.graph.node if n.name == "pool_1")
        kept = [a for a in pool.attribute if a.name != "kernel_shape"]
        del pool.attribute[:]
        pool.attribute.extend(kept)
    return m


def test_maxpool_without_kernel_shape_names_the_node(tmp_path, capsys):
    m = _maxpool_model(keep_kernel=False)
    with pytest.raises(ModelError, match=r"node 'pool_1' \(MaxPool\): .*kernel_shape") as ei:
        graph_from_onnx(m, "pool.onnx")  # our handler, without the checker in front
    assert ei.value.nodes == ["'pool_1' (MaxPool)"]
    path = tmp_path / "pool.onnx"
    onnx.save(m, str(path))
    spec = tmp_path / "pool.vnnlib"
    spec.write_text("".join(f"(declare-const X_{i} Real)(assert (>= X_{i} 0))(assert (<= X_{i} 1))"
                            for i in range(16)) + "(declare-const Y_0 Real)(declare-const Y_1 Real)"
                    "(assert (<= Y_0 Y_1))")
    _cli_error(capsys, [path, spec, "--timeout", "5"], "pool_1", "kernel_shape")
    _cli_error(capsys, [path, spec, "--timeout", "5", "--set", "model_check.enabled=false"], "pool_1",
               "kernel_shape")


def test_malformed_node_is_a_model_error_not_a_traceback():
    """A handler that hits a missing input (IndexError inside) reports the node."""
    m = make_fc(0, sizes=(2, 4, 3))
    bn_less = copy.deepcopy(m)
    relu = next(n for n in bn_less.graph.node if n.op_type == "Relu")
    relu.op_type = "BatchNormalization"  # a BatchNormalization with one input of its five
    with pytest.raises(ModelError, match=r"BatchNormalization\): malformed node") as ei:
        graph_from_onnx(bn_less, "bn.onnx")
    assert "\n" not in str(ei.value)


def test_nan_in_a_constant_node_names_it():
    b = Builder(1, [1, 2])
    x = b.gemm(b.in_name, 2, 3, relu=False)
    b.nodes.append(helper.make_node("Constant", [], ["shift"], name="const_nan",
                                    value=nh.from_array(np.array([0.0, np.nan, 1.0], dtype=np.float32))))
    m = b.model(b.node("Add", [x, "shift"], node_name="add_shift"))
    with pytest.raises(ModelError, match=r"'const_nan' \(Constant\).*NaN.*'add_shift' \(Add\)"):
        load_model(m.SerializeToString(), "c.onnx")


def test_input_count_that_does_not_match_the_spec_is_a_spec_error(tmp_path):
    spec = tmp_path / "two.vnnlib"
    spec.write_text("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
                    "(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (>= Y_0 1))\n")
    with pytest.raises(SpecError, match="2 inputs but the network has 1"):
        load_problem(SMALL, spec)


# --------------------------------------------------------------------------- the reference executor
def test_reference_failures_are_model_errors():
    ref = OnnxReference.open(SMALL.read_bytes(), "small.onnx")
    assert ref.run(np.array([0.5], dtype=np.float32)).shape == (1,)
    with pytest.raises(ModelError, match="small.onnx: onnxruntime cannot run") as ei:
        ref.run(np.zeros(3, dtype=np.float32))  # 3 values for a 1-input model
    assert "\n" not in str(ei.value)
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        OnnxReference(b"\x08\x07garbage", "g.onnx").session


def test_condense_makes_one_line():
    msg = ("[ONNXRuntimeError] : 1 : FAIL : /src/core/graph/utils.h:46 void ns::Validate(const std::string&, int) "
           "Opset 99 is\n\nunder development")
    assert condense(msg) == "Opset 99 is under development"
    assert len(condense("x" * 1000)) == 300


# --------------------------------------------------------------------------- the forward comparison
def _box_spec(n_in: int, n_out: int, lo=-1.0, hi=1.0) -> Spec:
    C = np.zeros((1, n_out))
    C[0, 0], C[0, 1] = 1.0, -1.0
    dj = Disjunct(np.full(n_in, lo), np.full(n_in, hi), C, np.zeros(1))
    return Spec(n_in, n_out, (dj,))


def _gemm_nodes(graph):
    return [n for n in graph.nodes if "(Gemm)" in n.onnx_node]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_faithful_graph_passes(dtype):
    model = load_model(make_fc(0, sizes=(2, 4, 3)).SerializeToString(), "fc.onnx", dtype=dtype)
    check_model_on_spec(model, _box_spec(2, 3), ModelCheckSettings(points=8))


def test_a_corrupted_weight_names_the_first_differing_node():
    proto = make_fc(0, sizes=(2, 4, 4, 3))
    model = load_model(proto.SerializeToString(), "fc.onnx")
    first, middle, last = _gemm_nodes(model.graph)
    middle.op.bias.add_(5.0)  # the middle Gemm and, through the ReLU, everything after it differ
    with pytest.raises(ModelError) as ei:
        check_model_on_spec(model, _box_spec(2, 3))
    msg = str(ei.value)
    assert msg.startswith("fc.onnx: forward pass differs from onnxruntime at node " + middle.onnx_node), msg
    assert ei.value.nodes == [middle.onnx_node] and "max |diff| = 5" in msg and "\n" not in msg
    assert middle.onnx_node != last.onnx_node and middle.onnx_node != first.onnx_node


def test_a_difference_at_the_output_names_the_last_node():
    model = load_model(make_fc(1, sizes=(3, 5, 2)).SerializeToString(), "fc.onnx")
    last = _gemm_nodes(model.graph)[-1]
    last.op.weight.mul_(1.01)
    with pytest.raises(ModelError, match="at node " + last.onnx_node.replace("(", r"\(").replace(")", r"\)")):
        check_model_on_spec(model, _box_spec(3, 2, lo=1.0, hi=2.0))


def test_within_tolerance_and_disabled_are_not_errors(caplog):
    model = load_model(make_fc(2, sizes=(2, 4, 3)).SerializeToString(), "fc.onnx")
    last = _gemm_nodes(model.graph)[-1]
    last.op.weight.mul_(1 + 1e-5)  # float rounding scale: inside rtol 1e-3
    check_model_on_spec(model, _box_spec(2, 3))
    last.op.weight.mul_(1.1)
    with pytest.raises(ModelError, match="forward pass differs"):
        check_model_on_spec(model, _box_spec(2, 3))
    with caplog.at_level(logging.INFO, logger="frontends.onnx"):
        check_model_on_spec(model, _box_spec(2, 3), ModelCheckSettings(enabled=False))
    assert "skipped" in caplog.text


def test_points_and_tolerance_helpers():
    lo, hi = finite_box(np.array([-np.inf, 2.0, -np.inf, 3.0]), np.array([5.0, np.inf, np.inf, 4.0]))
    assert lo.tolist() == [0.0, 2.0, -1.0, 3.0] and hi.tolist() == [5.0, 4.0, 1.0, 4.0]
    xs, what = sample_points(_box_spec(2, 3, lo=1.0, hi=3.0), 5)
    assert xs.dtype == np.float32 and xs.shape == (6, 2) and xs[0].tolist() == [2.0, 2.0]
    assert np.all((xs >= 1.0) & (xs <= 3.0)) and what[0] == "the centre of input box 0"
    many = Spec(2, 3, tuple(Disjunct(np.full(2, k), np.full(2, k + 1.0), np.ones((1, 3)), np.zeros(1))
                            for k in range(5000)))
    xs, what = sample_points(many, 2)  # 16 centres (of boxes spread over the spec) and 2 random points
    assert xs.shape == (18, 2) and len(set(map(tuple, xs[:16].tolist()))) == 16 and xs.max() <= 5000
    s = ModelCheckSettings()
    assert excess(np.array([100.0005]), np.array([100.0]), s)[0] <= 0  # 5e-4 <= 1e-2 + 0.1
    assert excess(np.array([100.2]), np.array([100.0]), s)[0] > 0
    assert excess(np.array([np.nan]), np.array([1.0]), s)[0] > 0


# --------------------------------------------------------------------------- the shared benchmarks
BENCH_NETS = bench_networks()


@needs_bench
@pytest.mark.parametrize("folder,onnx_rel,vnn_rel", BENCH_NETS, ids=[f"{f}/{o}" for f, o, _ in BENCH_NETS])
def test_every_benchmark_network_passes_the_check(folder, onnx_rel, vnn_rel):
    problem = load_problem(BENCH / folder / onnx_rel, BENCH / folder / vnn_rel)  # raises on any difference
    assert problem.reference.session is not None
