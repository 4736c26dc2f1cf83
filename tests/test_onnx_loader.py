"""ONNX front end (frontends/onnx/): the loaded Graph must compute what onnxruntime computes.

Every network of ../shared/benchmarks is checked on random points of its spec's input boxes
(the vnnlib that instances.csv pairs it with), and small generated models cover the operators
(conv stride/padding/groups/dilation, residual Add/Sub, BatchNormalization, AveragePool,
Transpose, Gemm transA/transB, MatMul with a constant left operand, Reshape/Flatten, shape
arithmetic folded at load time). Bad models must raise ModelError with the file and node names.
"""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from conftest import (
    BENCH,
    ZOO,
    Builder,
    bench_networks,
    make_fc,
    make_unsupported,
    needs_bench,
    ort_run_batch,
    ort_session,
    rel_err,
    save,
)
from onnx import TensorProto, helper, numpy_helper

from frontends.onnx.loader import graph_from_onnx, load_onnx
from frontends.vnnlib.v1 import load_vnnlib
from verifier.ir.errors import ModelError

TOL = 1e-5  # max |graph - onnxruntime| / max(1, max |onnxruntime|)


def box_points(lo, hi, n, rng) -> np.ndarray:
    """n uniform points of the box, plus its two extreme corners and the centre."""
    pts = lo + rng.random((n, lo.size)) * (hi - lo)
    return np.concatenate([pts, lo[None], hi[None], ((lo + hi) / 2)[None]])


def compare_with_ort(graph, session, xs: np.ndarray) -> float:
    xs = xs.astype(np.float32)
    y_ort = ort_run_batch(session, xs)
    y_graph = graph.forward(torch.tensor(xs)).double().numpy()
    assert y_graph.shape == y_ort.shape, (y_graph.shape, y_ort.shape)
    assert np.all(np.isfinite(y_graph))
    return rel_err(y_graph, y_ort)


# --------------------------------------------------------------------------- benchmark networks
BENCH_NETS = bench_networks()


@needs_bench
def test_benchmark_folders_are_all_covered():
    folders = {f for f, _, _ in BENCH_NETS}
    assert {"acasxu", "mnist_fc", "oval21", "eran", "test"} <= folders
    assert sum(f == "acasxu" for f, _, _ in BENCH_NETS) == 45
    assert any("SIGMOID" in o for _, o, _ in BENCH_NETS)


@needs_bench
@pytest.mark.parametrize("folder,onnx_rel,vnn_rel", BENCH_NETS, ids=[f"{f}/{o}" for f, o, _ in BENCH_NETS])
def test_benchmark_network_matches_onnxruntime(folder, onnx_rel, vnn_rel):
    path = BENCH / folder / onnx_rel
    graph = load_onnx(path)
    spec = load_vnnlib(BENCH / folder / vnn_rel, n_inputs=graph.n_inputs, n_outputs=graph.n_outputs)
    session = ort_session(path)
    rng = np.random.default_rng(abs(hash(onnx_rel)) % 2**32)
    n = 24 if graph.n_inputs > 100 else 64
    xs = np.concatenate([box_points(lo, hi, n, rng) for lo, hi, _ in spec.regions()[:4]])
    err = compare_with_ort(graph, session, xs)
    assert err <= TOL, f"{onnx_rel}: relative error {err:.3g}"


# --------------------------------------------------------------------------- generated models
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", sorted(ZOO))
def test_generated_model_matches_onnxruntime(kind, seed, tmp_path):
    model = ZOO[kind](seed)
    path = save(model, tmp_path / f"{kind}.onnx")
    graph = load_onnx(path)
    rng = np.random.default_rng(seed)
    xs = rng.uniform(-2, 2, (40, graph.n_inputs))
    assert compare_with_ort(graph, ort_session(model), xs) <= TOL
    # the same in float64 (the weights are float32, so float64 is at least as close)
    g64 = load_onnx(path, dtype=torch.float64)
    assert g64.dtype == torch.float64
    y64 = g64.forward(torch.tensor(xs.astype(np.float32), dtype=torch.float64)).numpy()
    assert rel_err(y64, ort_run_batch(ort_session(model), xs.astype(np.float32))) <= TOL


def test_gzipped_model_and_name_without_gz(tmp_path):
    model = make_fc(3)
    save(model, tmp_path / "net.onnx", gz=True)
    assert not (tmp_path / "net.onnx").exists()
    g = load_onnx(tmp_path / "net.onnx")  # instances.csv names files without .gz
    g2 = load_onnx(tmp_path / "net.onnx.gz")
    x = np.random.default_rng(0).uniform(-1, 1, (8, g.n_inputs))
    assert compare_with_ort(g, ort_session(model), x) <= TOL
    assert torch.equal(g.forward(x), g2.forward(x))


def single_op_model(op_builder, in_shape, seed=0, out_shape=None):
    """A model: input -> op_builder(b, x) -> output."""
    b = Builder(seed, in_shape)
    out = op_builder(b, b.in_name)
    return b.model(out, out_shape=out_shape)


def _conv_case(stride, pads, group, dilation, k=3, c_in=4, c_out=4, hw=7):
    def build(b, x):
        w = b.rand(c_out, c_in // group, k, k)
        return b.node("Conv", [x, b.const(w, "W"), b.const(b.rand(c_out), "b")], kernel_shape=[k, k],
                      strides=list(stride), pads=list(pads), group=group, dilations=[dilation, dilation])
    return build, [1, c_in, hw, hw]


OP_CASES = {
    "conv_stride2_pad1": _conv_case((2, 2), (1, 1, 1, 1), 1, 1),
    "conv_stride_2x1_asym_pads": _conv_case((2, 1), (0, 1, 2, 0), 1, 1),
    "conv_groups2": _conv_case((1, 1), (1, 1, 1, 1), 2, 1),
    "conv_depthwise": _conv_case((1, 1), (0, 0, 0, 0), 4, 1),
    "conv_dilation2": _conv_case((1, 1), (2, 2, 2, 2), 1, 2),
    "conv_no_bias": (lambda b, x: b.node("Conv", [x, b.const(b.rand(3, 2, 2, 2))], kernel_shape=[2, 2]),
                     [1, 2, 5, 5]),
    "conv1d": (lambda b, x: b.node("Conv", [x, b.const(b.rand(3, 2, 3)), b.const(b.rand(3))], kernel_shape=[3],
                                   pads=[1, 1], strides=[2]), [1, 2, 9]),
    "avgpool_pad_exclude": (lambda b, x: b.node("AveragePool", [x], kernel_shape=[3, 3], strides=[2, 2],
                                                pads=[1, 1, 1, 1]), [1, 2, 6, 6]),
    "avgpool_pad_include": (lambda b, x: b.node("AveragePool", [x], kernel_shape=[3, 3], strides=[2, 2],
                                                pads=[1, 1, 1, 1], count_include_pad=1), [1, 2, 6, 6]),
    "avgpool_ceil": (lambda b, x: b.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
                     [1, 2, 5, 5]),
    "global_avgpool": (lambda b, x: b.node("GlobalAveragePool", [x]), [1, 3, 4, 5]),
    "maxpool": (lambda b, x: b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1]),
                [1, 2, 5, 5]),
    "bn_4d": (lambda b, x: b.bn(x, 3), [1, 3, 4, 4]),
    "bn_2d": (lambda b, x: b.bn(x, 5), [1, 5]),
    "normalise_4d": (lambda b, x: b.normalise(x, [1, 3, 2, 2]), [1, 3, 2, 2]),
    "scalar_sub_div": (lambda b, x: b.node("Div", [b.node("Sub", [x, b.const(np.float32(0.1307))]),
                                                   b.const(np.float32(0.3081))]), [1, 1, 3, 3]),
    "const_minus_x": (lambda b, x: b.node("Sub", [b.const(b.rand(4)), x]), [1, 4]),
    "const_plus_x_times_c": (lambda b, x: b.node("Mul", [b.const(b.rand(1, 4)),
                                                         b.node("Add", [b.const(b.rand(4)), x])]), [1, 4]),
    "transpose_default_perm": (lambda b, x: b.node("Transpose", [x]), [1, 2, 3]),
    "transpose_4d": (lambda b, x: b.node("Transpose", [x], perm=[0, 2, 3, 1]), [1, 2, 3, 4]),
    "gemm_transA_transB": (lambda b, x: b.node("Gemm", [x, b.const(b.rand(3, 4)), b.const(b.rand(3))],
                                               transA=1, transB=1), [4, 1]),
    "gemm_no_bias_alpha": (lambda b, x: b.node("Gemm", [x, b.const(b.rand(4, 3))], alpha=0.5), [1, 4]),
    "gemm_bias_row": (lambda b, x: b.node("Gemm", [x, b.const(b.rand(4, 3)), b.const(b.rand(1, 3))], beta=2.0),
                      [1, 4]),
    "matmul_const_left_1d": (lambda b, x: b.node("MatMul", [b.const(b.rand(3, 4)), x]), [4]),
    "matmul_const_left_3d": (lambda b, x: b.node("MatMul", [b.const(b.rand(5, 3)), x]), [1, 3, 2]),
    "matmul_3d_right": (lambda b, x: b.node("MatMul", [x, b.const(b.rand(2, 3))]), [1, 4, 2]),
    "flatten_axis2": (lambda b, x: b.node("Flatten", [x], axis=2), [1, 2, 3, 2]),
    "flatten_axis0": (lambda b, x: b.node("Flatten", [x], axis=0), [1, 2, 3]),
    "reshape_zero_minus1": (lambda b, x: b.reshape(x, [0, -1, 2]), [1, 3, 4]),
    "squeeze_unsqueeze": (lambda b, x: b.node("Unsqueeze", [b.node("Squeeze", [x, b.const(np.array([1]))]),
                                                            b.const(np.array([2]))]), [1, 1, 4]),
    "identity_dropout": (lambda b, x: b.node("Dropout", [b.node("Identity", [x])]), [1, 3]),
    "tanh_sigmoid": (lambda b, x: b.node("Sigmoid", [b.node("Tanh", [b.gemm(x, 3, 4, relu=False)])]), [1, 3]),
    "scale_chain_broadcast": (lambda b, x: b.node("Sub", [b.node("Mul", [b.node("Div", [
        b.node("Add", [x, b.const(b.rand(3, 1, 1))]), b.const(b.rand(1, 2, 2) + 3)]), b.const(b.rand(1, 3, 1, 1))]),
        b.const(np.float32(0.25))]), [1, 3, 2, 2]),
    "gemm_then_add_row": (lambda b, x: b.node("Add", [b.gemm(x, 4, 3, relu=False), b.const(b.rand(1, 3))]), [1, 4]),
    "matmul_3d_then_add": (lambda b, x: b.node("Add", [b.node("MatMul", [x, b.const(b.rand(2, 3))]),
                                                      b.const(b.rand(4, 3))]), [1, 4, 2]),
    "residual_same_node_twice": (lambda b, x: b.node("Add", [b.node("Relu", [x]), b.node("Relu", [x])]), [1, 3]),
    "residual_sub_branches": (lambda b, x: b.node("Sub", [b.gemm(x, 3, 4), b.gemm(x, 3, 4, relu=False)]),
                              [1, 3]),
}


def _shape_chain(b, x):
    """PyTorch-export style: Shape -> Gather -> Unsqueeze -> Concat -> Reshape (folded at load time)."""
    shp = b.node("Shape", [x])
    n0 = b.node("Gather", [shp, b.const(np.array(0, dtype=np.int64))], axis=0)
    n0 = b.node("Unsqueeze", [n0, b.const(np.array([0], dtype=np.int64))])
    tgt = b.node("Concat", [n0, b.const(np.array([-1], dtype=np.int64))], axis=0)
    y = b.node("Reshape", [x, tgt])
    w = b.node("Constant", [], value=helper.make_tensor("w", TensorProto.FLOAT, [12, 2],
                                                        b.rand(12, 2).reshape(-1).tolist()))
    return b.node("MatMul", [y, w])


OP_CASES["shape_chain_constant_node"] = (_shape_chain, [1, 3, 2, 2], [1, 2])


@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_operator_matches_onnxruntime(case):
    build, in_shape, *out_shape = OP_CASES[case]
    model = single_op_model(build, in_shape, out_shape=out_shape[0] if out_shape else None)
    graph = graph_from_onnx(model, case)
    rng = np.random.default_rng(1)
    xs = rng.uniform(-2, 2, (16, graph.n_inputs))
    assert compare_with_ort(graph, ort_session(model), xs) <= TOL
    # the interval bounds of a degenerate box are the point itself
    x = torch.tensor(xs[:3], dtype=torch.float32)
    lo, hi = graph.ibp(x, x)[graph.output_name]
    y = graph.forward(x)
    assert torch.allclose(lo.reshape(3, -1), y, atol=1e-5) and torch.allclose(hi.reshape(3, -1), y, atol=1e-5)


def test_symbolic_batch_axis_is_one():
    model = make_fc(4, sizes=(3, 4, 2))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    graph = graph_from_onnx(model)
    assert graph.input_shape == (1, 3) and graph.n_inputs == 3 and graph.n_outputs == 2
    xs = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    assert compare_with_ort(graph, ort_session(model), xs) <= TOL


def test_graph_shapes_and_summary():
    graph = graph_from_onnx(ZOO["conv"](0))
    assert graph.input_shape == (1, 2, 8, 8) and graph.n_inputs == 128 and graph.n_outputs == 4
    x = torch.zeros(2, 128)
    vals = graph.forward_all(x)
    for n in graph.nodes:  # every node's declared shape is what forward produces
        assert tuple(vals[n.name].shape[1:]) == n.shape, n.name
    text = graph.summary()
    assert "Conv" in text and "AveragePool" in text and str(graph.output_shape) in text


# --------------------------------------------------------------------------- errors
def test_unsupported_nodes_all_listed(tmp_path):
    path = save(make_unsupported(), tmp_path / "bad_ops.onnx")
    with pytest.raises(ModelError) as ei:
        load_onnx(path)
    msg = str(ei.value)
    for word in ("hard_1", "Hardmax", "wave_2", "Asin", str(path)):
        assert word in msg, f"{word!r} missing from {msg!r}"
    assert "\n" not in msg
    assert len(ei.value.nodes) == 2


def test_lstm_is_unsupported():
    b = Builder(0, [1, 2, 3])
    x = b.node("LSTM", [b.in_name, b.const(b.rand(1, 8, 3)), b.const(b.rand(1, 8, 2))], node_name="rnn", hidden_size=2)
    y = b.node("Relu", [x], node_name="after")
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])
    outp = helper.make_tensor_value_info(y, TensorProto.FLOAT, None)
    g = helper.make_graph(b.nodes, "g", [inp], [outp], initializer=b.inits)
    with pytest.raises(ModelError, match=r"'rnn' \(LSTM\)"):
        graph_from_onnx(helper.make_model(g), "lstm.onnx")


def test_random_bytes_name_the_file(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError) as ei:
        load_onnx(path)
    assert str(path) in str(ei.value)


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "cut.onnx.gz"
    path.write_bytes(gzip.compress(make_fc().SerializeToString())[:40])
    with pytest.raises(ModelError, match="cut.onnx.gz"):
        load_onnx(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelError, match="not found") as ei:
        load_onnx(path)
    assert str(path) in str(ei.value)


def _error_model(build, in_shape, n_inputs=1):
    b = Builder(0, in_shape)
    out = build(b, b.in_name)
    inps = [helper.make_tensor_value_info(f"x{i}" if i else "x", TensorProto.FLOAT, in_shape) for i in range(n_inputs)]
    g = helper.make_graph(b.nodes, "g", inps, [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                          initializer=b.inits)
    return helper.make_model(g)


@pytest.mark.parametrize("build,pattern", [
    (lambda b, x: b.node("Div", [x, b.const(np.array([1, 0, 2], np.float32))], node_name="z"), r"'z'.*contains 0"),
    (lambda b, x: b.node("MatMul", [x, x], node_name="mm"), r"'mm' \(MatMul\)"),
    (lambda b, x: b.node("Add", [x, b.const(np.ones((4, 2), np.float32))], node_name="bc"), r"'bc'.*broadcast"),
    (lambda b, x: b.reshape(x, [5, -1]), r"cannot reshape"),
])
def test_bad_node_names_the_node(build, pattern):
    with pytest.raises(ModelError, match=pattern):
        graph_from_onnx(_error_model(build, [1, 3]), "m.onnx")


@pytest.mark.parametrize("build,pattern", [
    (lambda b, x: b.node("Conv", [x, b.const(b.rand(2, 1, 3, 3))], kernel_shape=[3, 3], auto_pad="BOGUS",
                         node_name="cv"), r"'cv' \(Conv\).*auto_pad"),
    (lambda b, x: b.node("AveragePool", [x], kernel_shape=[2, 2], pads=[0, 0, 1, 1], node_name="ap"),
     r"'ap' \(AveragePool\).*asymmetric"),
    (lambda b, x: b.node("Conv", [x, b.const(b.rand(2, 1, 3, 3, 3))], kernel_shape=[3, 3, 3], node_name="c3"),
     r"'c3' \(Conv\).*1-D and 2-D"),
    (lambda b, x: b.node("Conv", [x, b.node("Relu", [x])], kernel_shape=[5, 5], node_name="cw"),
     r"'cw' \(Conv\).*constant"),
])
def test_unsupported_conv_and_pool_variants(build, pattern):
    with pytest.raises(ModelError, match=pattern):
        graph_from_onnx(_error_model(build, [1, 1, 5, 5]), "m.onnx")


def test_input_without_shape_rejected():
    b = Builder(0, [1, 3])
    y = b.gemm(b.in_name, 3, 4)
    g = helper.make_graph(b.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                          [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)], initializer=b.inits)
    with pytest.raises(ModelError, match="'x' has no shape"):
        graph_from_onnx(helper.make_model(g), "noshape.onnx")


def test_a_second_input_that_no_node_uses_still_has_its_place_in_x():
    """Several inputs are laid out in X in graph order (tests/test_multi_io.py has the rest); an unused one too."""
    model = _error_model(lambda b, x: b.node("Relu", [x]), [1, 3], n_inputs=2)
    graph = graph_from_onnx(model, "two.onnx")
    assert graph.n_inputs == 6 and graph.n_outputs == 3
    y = graph.forward(graph.as_input(np.array([[-1.0, 2.0, -3.0, 4.0, 5.0, 6.0]])))
    assert y.tolist() == [[0.0, 2.0, 0.0]]


@pytest.mark.parametrize("missing", ["W", "b"])
def test_an_input_that_nothing_defines_names_the_node_and_the_tensor(missing):
    """A Gemm whose weight or bias is neither an initializer nor made by an earlier node (a KeyError before)."""
    b = Builder(0, [1, 3])
    ins = [b.in_name, "W", "b"]
    if missing != "W":
        ins[1] = b.const(b.rand(4, 3))
    if missing != "b":
        ins[2] = b.const(b.rand(4))
    y = b.node("Gemm", ins, node_name="g1", transB=1)
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    g = helper.make_graph(b.nodes, "g", [inp], [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)],
                          initializer=b.inits)
    with pytest.raises(ModelError, match=rf"'g1' \(Gemm\): input '{missing}' is neither an initializer nor the "
                                         "output of an earlier node") as e:
        graph_from_onnx(helper.make_model(g), "m.onnx")
    assert e.value.nodes == ["'g1' (Gemm)"]


def test_a_graph_output_that_no_node_makes_is_rejected():
    b = Builder(0, [1, 3])
    b.node("Relu", [b.in_name])
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    g = helper.make_graph(b.nodes, "g", [inp], [helper.make_tensor_value_info("nowhere", TensorProto.FLOAT, None)],
                          initializer=b.inits)
    with pytest.raises(ModelError, match="'nowhere' is the output of no node"):
        graph_from_onnx(helper.make_model(g), "m.onnx")


def test_output_independent_of_input_rejected():
    b = Builder(0, [1, 3])
    c = b.node("Relu", [b.const(np.ones((1, 3), np.float32))])
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    g = helper.make_graph(b.nodes, "g", [inp], [helper.make_tensor_value_info(c, TensorProto.FLOAT, None)],
                          initializer=b.inits)
    with pytest.raises(ModelError, match="does not depend"):
        graph_from_onnx(helper.make_model(g), "const.onnx")


@pytest.mark.parametrize("start,end,target", [(0, 1, [2, 3]), (-2, -1, [6]), (1, None, [1])])
def test_shape_start_and_end_are_read_when_folded(start, end, target):
    """Shape with opset 15's start / end: Reshape(x, Concat(Shape(x)[start:end], c)) matches onnxruntime (the fold
    used to ignore them and give the whole shape)."""
    attrs = {"start": start} if end is None else {"start": start, "end": end}
    nodes = [helper.make_node("Shape", ["x"], ["s"], **attrs), helper.make_node("Concat", ["s", "c"], ["t"], axis=0),
             helper.make_node("Reshape", ["x", "t"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.array(target, np.int64), "c")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 15)])
    xs = np.random.default_rng(0).standard_normal((4, 6))
    assert compare_with_ort(graph_from_onnx(m, "shape"), ort_session(m), xs) < 1e-6
