"""The structural and affine operators of issue 21 (Slice, Split, Gather, Concat, Pad, Squeeze / Unsqueeze, Cast,
Identity / Dropout, ConstantOfShape, Neg, ReduceSum / ReduceMean, Conv with auto_pad, ConvTranspose,
Resize / Upsample, broadcasting constants, MatMul by a vector) on network values.

Each case is a real ONNX model run by onnxruntime: the loaded graph's forward pass must match it; then the op sits
inside a small ReLU net (an element-wise affine map and a ReLU before it, a ReLU, a Gemm after it) whose interval
and CROWN bounds must contain sampled and PGD values, at every node; on a few of them the MILP encoding's optimum
must equal the best sampled value (the nets are small enough for dense sampling to reach the optimum closely) and
be no better than it.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import Builder, ort_session
from onnx import TensorProto, helper
from test_bounds import F64, check_nodes, check_sound, objective_values, sample_inputs
from test_onnx_loader import compare_with_ort, single_op_model

from frontends.onnx.loader import graph_from_onnx
from verifier.ir.errors import ModelError

TOL = 1e-5
I64 = np.int64


def _split_concat(b, x, axis, sizes, parts=0):
    """Split into ``sizes`` (or ``parts`` equal parts), concatenated back in reverse order."""
    outs = [b.name("part") for _ in range(parts or len(sizes))]
    ins = [x, b.const(np.array(sizes, dtype=I64))] if sizes else [x]
    b.nodes.append(helper.make_node("Split", ins, outs, axis=axis))
    return b.node("Concat", list(reversed(outs)), axis=axis)


def _resize(mode, scales=None, sizes=None, **attrs):
    def build(b, x):
        ins = [x, b.const(np.zeros(0, np.float32), "roi")]
        ins.append(b.const(np.array(scales, np.float32), "scales") if scales else "")
        if sizes:
            ins.append(b.const(np.array(sizes, I64), "sizes"))
        return b.node("Resize", ins, mode=mode, **attrs)
    return build


def _conv_transpose(stride, pads=None, out_pad=None, out_shape=None, group=1, dil=1, k=3, c_in=2, c_out=2,
                    auto_pad=None):
    def build(b, x):
        w = b.rand(c_in, c_out // group, k, k)
        attrs = dict(kernel_shape=[k, k], strides=[stride, stride], group=group, dilations=[dil, dil])
        if pads is not None:
            attrs["pads"] = pads
        if out_pad is not None:
            attrs["output_padding"] = out_pad
        if out_shape is not None:
            attrs["output_shape"] = out_shape
        if auto_pad is not None:
            attrs["auto_pad"] = auto_pad
        return b.node("ConvTranspose", [x, b.const(w, "W"), b.const(b.rand(c_out), "b")], **attrs)
    return build


def _conv_auto(auto_pad, stride, k=3):
    def build(b, x):
        return b.node("Conv", [x, b.const(b.rand(2, 2, k, k), "W"), b.const(b.rand(2), "b")], kernel_shape=[k, k],
                      strides=[stride, stride], auto_pad=auto_pad)
    return build


def _const_of_shape(b, x):
    shp = b.node("Shape", [x])
    c = b.node("ConstantOfShape", [shp], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.5]))
    return b.node("Add", [x, c])


CASES = {
    "slice_basic": (lambda b, x: b.node("Slice", [x, b.const(np.array([1], I64)), b.const(np.array([4], I64)),
                                                  b.const(np.array([1], I64))]), [1, 6]),
    "slice_steps_negative": (lambda b, x: b.node("Slice", [x, b.const(np.array([-1, 0], I64)),
                                                           b.const(np.array([-100, 5], I64)),
                                                           b.const(np.array([3, 2], I64)),
                                                           b.const(np.array([-1, 2], I64))]), [1, 2, 4, 5]),
    "slice_big_end": (lambda b, x: b.node("Slice", [x, b.const(np.array([2], I64)),
                                                    b.const(np.array([2 ** 62], I64))]), [5, 3]),
    "split_sizes": (lambda b, x: _split_concat(b, x, 1, [2, 3, 1]), [1, 6]),
    "split_equal": (lambda b, x: _split_concat(b, x, -1, [], parts=2), [1, 2, 4]),
    "gather_1d": (lambda b, x: b.node("Gather", [x, b.const(np.array([3, 0, 0, -1], I64))], axis=1), [1, 5]),
    "gather_scalar": (lambda b, x: b.node("Gather", [x, b.const(np.array(1, I64))], axis=2), [1, 2, 3]),
    "gather_2d": (lambda b, x: b.node("Gather", [x, b.const(np.array([[0, 2], [1, 1]], I64))], axis=1), [1, 3, 2]),
    "concat_values_consts": (lambda b, x: b.node("Concat", [b.const(b.rand(1, 2)), x, b.node("Relu", [x]),
                                                            b.const(b.rand(1, 1))], axis=1), [1, 3]),
    "concat_axis0": (lambda b, x: b.node("Concat", [x, b.node("Neg", [x])], axis=0), [1, 2, 2]),
    "pad_constant": (lambda b, x: b.node("Pad", [x, b.const(np.array([0, 0, 1, 2, 0, 0, 2, 0], I64)),
                                                 b.const(np.array(0.7, np.float32))]), [1, 2, 3, 3]),
    "pad_negative": (lambda b, x: b.node("Pad", [x, b.const(np.array([0, -1, 0, 2], I64))]), [1, 4]),
    "pad_edge": (lambda b, x: b.node("Pad", [x, b.const(np.array([0, 0, 1, 2, 0, 0, 2, 1], I64))], mode="edge"),
                 [1, 1, 3, 3]),
    "pad_reflect": (lambda b, x: b.node("Pad", [x, b.const(np.array([0, 0, 2, 1, 0, 0, 1, 2], I64))],
                                        mode="reflect"), [1, 1, 3, 4]),
    "squeeze_unsqueeze": (lambda b, x: b.node("Unsqueeze", [b.node("Squeeze", [x, b.const(np.array([2], I64))]),
                                                            b.const(np.array([0, -1], I64))]), [1, 3, 1, 2]),
    "cast_identity_dropout": (lambda b, x: b.node("Dropout", [b.node("Identity", [b.node("Cast", [
        b.node("Cast", [x], to=TensorProto.DOUBLE)], to=TensorProto.FLOAT)])]), [1, 4]),
    "constant_of_shape": (_const_of_shape, [1, 3]),
    "neg": (lambda b, x: b.node("Neg", [x]), [1, 2, 3]),
    "reduce_sum_keep": (lambda b, x: b.node("ReduceSum", [x, b.const(np.array([1, -1], I64))]), [1, 3, 2, 2]),
    "reduce_sum_all": (lambda b, x: b.node("ReduceSum", [x], keepdims=0), [1, 3, 2]),
    "reduce_mean": (lambda b, x: b.node("ReduceMean", [x], axes=[2], keepdims=0), [1, 3, 4]),
    "broadcast_const_add": (lambda b, x: b.node("Add", [x, b.const(b.rand(4, 1, 3))]), [1, 2, 1]),
    "matmul_vector": (lambda b, x: b.node("MatMul", [x, b.const(b.rand(3))]), [1, 2, 3]),
    "conv_same_upper": (_conv_auto("SAME_UPPER", 2), [1, 2, 5, 5]),
    "conv_same_lower": (_conv_auto("SAME_LOWER", 1, k=2), [1, 2, 4, 4]),
    "conv_valid": (_conv_auto("VALID", 1), [1, 2, 4, 4]),
    "convT_stride2": (_conv_transpose(2, pads=[1, 1, 1, 1]), [1, 2, 3, 3]),
    "convT_asym_outpad": (_conv_transpose(2, pads=[0, 1, 1, 0], out_pad=[1, 0]), [1, 2, 3, 3]),
    "convT_group_dil": (_conv_transpose(1, group=2, dil=2, c_in=4, c_out=4), [1, 4, 3, 3]),
    "convT_output_shape": (_conv_transpose(2, out_shape=[6, 7]), [1, 2, 3, 3]),
    "convT_same_upper": (_conv_transpose(2, auto_pad="SAME_UPPER"), [1, 2, 3, 3]),
    "convT_same_lower": (_conv_transpose(2, auto_pad="SAME_LOWER"), [1, 2, 3, 3]),
    "convT_output_shape_odd": (_conv_transpose(3, out_shape=[8, 9]), [1, 2, 3, 3]),
    "convT_1d": (lambda b, x: b.node("ConvTranspose", [x, b.const(b.rand(2, 3, 3), "W")], kernel_shape=[3],
                                     strides=[2], pads=[1, 0]), [1, 2, 4]),
    "resize_nearest": (_resize("nearest", scales=[1, 1, 2, 2]), [1, 2, 2, 3]),
    "resize_nearest_sizes": (_resize("nearest", sizes=[1, 1, 5, 4], coordinate_transformation_mode="half_pixel",
                                     nearest_mode="round_prefer_ceil"), [1, 1, 3, 3]),
    "resize_linear": (_resize("linear", scales=[1, 1, 2, 1.5], coordinate_transformation_mode="align_corners"),
                      [1, 1, 3, 2]),
    "resize_cubic": (_resize("cubic", scales=[1, 1, 2, 2]), [1, 1, 3, 3]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case):
    build, in_shape = CASES[case]
    model = single_op_model(build, in_shape)
    graph = graph_from_onnx(model, case)
    xs = np.random.default_rng(1).uniform(-2, 2, (12, graph.n_inputs))
    assert compare_with_ort(graph, ort_session(model), xs) <= TOL


def _in_net(case, seed=0):
    """The op between ``relu(a x + c)`` and ``relu -> flatten -> Gemm(3)``."""
    build, in_shape = CASES[case]
    b = Builder(seed, in_shape)
    x = b.node("Relu", [b.node("Add", [b.node("Mul", [b.in_name, b.const(b.rand(*in_shape, scale=1.0))]),
                                       b.const(b.rand(*in_shape, scale=0.5))])])
    y = b.node("Relu", [build(b, x)])
    n = graph_from_onnx(_unchecked(b, y)).n_outputs
    flat = b.node("Reshape", [y, b.const(np.array([1, -1], I64))])
    return b.model(b.gemm(flat, n, 3, relu=False))


def _unchecked(b: Builder, out: str):
    """The model of ``b`` with output ``out`` of unknown shape, not run through onnx.checker."""
    g = helper.make_graph(b.nodes, "g", [helper.make_tensor_value_info(b.in_name, TensorProto.FLOAT, b.in_shape)],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], initializer=b.inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_bounds_in_a_net_contain_samples(case):
    model = _in_net(case)
    g32, g64 = graph_from_onnx(model, case), graph_from_onnx(model, case, dtype=F64)
    rng = np.random.default_rng(5)
    c = rng.uniform(-1, 1, g32.n_inputs)
    lo, hi = c - 0.6, c + 0.6
    C = torch.tensor(rng.standard_normal((2, g32.n_outputs)))
    d = torch.tensor(rng.standard_normal(2))
    X = sample_inputs(g64, C, lo, hi, rng, n_uniform=400, starts=4, steps=15)
    check_sound(g32, g64, C, d, lo, hi, X)
    check_nodes(g32, g64, lo, hi, X)


@pytest.mark.parametrize("case", ["slice_steps_negative", "concat_values_consts", "pad_constant", "convT_stride2",
                                  "resize_linear", "gather_2d", "reduce_mean", "broadcast_const_add"])
def test_milp_optimum_of_a_net_with_the_op_matches_sampling(case):
    from backends.encoding import encode_network
    from backends.solvers import SolveStatus, make_solver
    from verifier.bounds import intermediate_bounds

    g64 = graph_from_onnx(_in_net(case, seed=2), case, dtype=F64)
    rng = np.random.default_rng(7)
    c = rng.uniform(-1, 1, g64.n_inputs)
    lo, hi = c - 0.3, c + 0.3
    C = torch.tensor(rng.standard_normal((1, g64.n_outputs)))
    pre = intermediate_bounds(g64, torch.tensor(lo).reshape(1, -1), torch.tensor(hi).reshape(1, -1), "crown")
    enc = encode_network(g64, pre, lo, hi, "milp")
    out = make_solver("highs").solve(enc.with_objective(C.numpy(), np.zeros(1)), 60.0)
    assert out.status == SolveStatus.OPTIMAL
    X = sample_inputs(g64, C, lo, hi, rng, n_uniform=3000, starts=8, steps=40)
    best = objective_values(g64, C, torch.zeros(1), X).min()
    assert out.objective <= best + 1e-6  # never above a reachable value (soundness)
    # the optimum is reachable: the input part of the MILP's solution gives the same value
    x_star = out.x[enc.input_vars]
    at_star = objective_values(g64, C, torch.zeros(1), x_star.reshape(1, -1))[0, 0]
    assert abs(at_star - out.objective) <= 1e-5 * (1 + abs(at_star))


@pytest.mark.parametrize("build,pattern", [
    (lambda b, x: b.node("Gather", [x, b.node("Relu", [x])], axis=1, node_name="g"), r"'g' \(Gather\).*constant"),
    (lambda b, x: b.node("Slice", [x, b.const(np.array([0], I64)), b.const(np.array([2], I64)),
                                   b.const(np.array([1], I64)), b.const(np.array([0], I64))], node_name="s"),
     r"'s' \(Slice\).*step 0"),
    (lambda b, x: b.node("Cast", [x], to=TensorProto.INT32, node_name="c"), r"'c' \(Cast\).*INT32"),
    (lambda b, x: b.node("Pad", [x, b.const(np.array([0, 1, 0, 1], I64))], mode="bogus", node_name="p"),
     r"'p' \(Pad\).*bogus"),
    (lambda b, x: b.node("Resize", [x, b.const(np.array([0, -0.5, 1, 1.5], np.float32)),
                                    b.const(np.array([1, 2], np.float32))], mode="linear",
                         coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=3.0,
                         node_name="r"), r"'r' \(Resize\).*separable linear"),
])
def test_unsupported_forms_name_the_node(build, pattern):
    b = Builder(0, [1, 4])
    with pytest.raises(ModelError, match=pattern):
        graph_from_onnx(_unchecked(b, build(b, b.in_name)), "m.onnx")
