"""Networks with several inputs and several outputs (frontends/onnx/io_layout.py): X is every network input
flattened and concatenated in graph order, Y every output likewise.

The model of most tests has two inputs of different shapes, listed ``z`` (1, 4) then ``a`` (N, 2, 3) (not in
alphabetical order, and ``a`` with a symbolic batch axis), and two outputs, listed ``q`` (1, 2, 1) then ``p``
(1, 3), ``q`` made after ``p``. ``q[0] = sum(a) - sum(z)``: on the box z in [0, 1]^4, a in [1, 2]^6 it is at
least 6 - 4 = 2, reached at z = 1, a = 1, so ``Y_0 <= 1.5`` is unsat by construction and ``Y_0 <= 2.25`` sat; a
layout with the inputs swapped would give other bounds. onnxruntime, fed the two inputs by hand, is the judge.
"""
from __future__ import annotations

import gzip
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import BENCH
from onnx import TensorProto, helper, numpy_helper

from frontends.load import check_model_on_spec, load_model, load_problem
from frontends.onnx.loader import graph_from_onnx
from frontends.result_file import check_counterexample, parse_result_text
from verifier.bounds import objective_bounds
from verifier.cli.main import main
from verifier.ir.errors import ModelError
from verifier.settings import BoundSettings

F64 = torch.float64
N_Z, A_SHAPE = 4, (2, 3)
BOX_LO = np.r_[np.zeros(N_Z), np.ones(6)]
BOX_HI = np.r_[np.ones(N_Z), np.full(6, 2.0)]
DIST_SHIFT = BENCH / "vnncomp2024" / "dist_shift_2023"
needs_dist_shift = pytest.mark.skipif(not DIST_SHIFT.is_dir(), reason=f"benchmark files not found at {DIST_SHIFT}")


def two_io_model(seed: int = 0, a_elem=TensorProto.FLOAT, a_dims=("N", 2, 3)) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inits = {"W1": rng.normal(size=(6, 5)), "W2": rng.normal(size=(4, 5)), "b1": rng.normal(size=5),
             "W3": rng.normal(size=(5, 3)), "W4": rng.normal(size=(4, 1)), "ones6": np.ones((6, 1)),
             "ones4": np.ones((4, 1)), "flat": np.array([1, 6]), "qshape": np.array([1, 2, 1])}
    nodes = [
        helper.make_node("Reshape", ["a", "flat"], ["a_flat"]),
        helper.make_node("MatMul", ["a_flat", "W1"], ["ha"]),
        helper.make_node("MatMul", ["z", "W2"], ["hz"]),
        helper.make_node("Add", ["ha", "hz"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h"]),
        helper.make_node("MatMul", ["h", "W3"], ["p"]),
        helper.make_node("MatMul", ["a_flat", "ones6"], ["sa"]),
        helper.make_node("MatMul", ["z", "ones4"], ["sz"]),
        helper.make_node("Sub", ["sa", "sz"], ["s"]),
        helper.make_node("MatMul", ["z", "W4"], ["rz"]),
        helper.make_node("Relu", ["rz"], ["r"]),
        helper.make_node("Concat", ["s", "r"], ["q2"], axis=1),
        helper.make_node("Reshape", ["q2", "qshape"], ["q"]),
    ]
    init = [numpy_helper.from_array(v.astype(np.int64 if k in ("flat", "qshape") else np.float32), k)
            for k, v in inits.items()]
    g = helper.make_graph(nodes, "two_io",
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, N_Z]),
                           helper.make_tensor_value_info("a", a_elem, list(a_dims))],
                          [helper.make_tensor_value_info("q", TensorProto.FLOAT, [1, 2, 1]),
                           helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 3])], init)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def ort_by_hand(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """onnxruntime fed the two inputs split by hand (z = X_0..3, a = X_4..9), outputs q then p flattened."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.asarray(x, dtype=np.float32)
    q, p = sess.run(["q", "p"], {"z": x[:N_Z].reshape(1, N_Z), "a": x[N_Z:].reshape(1, *A_SHAPE)})
    return np.r_[q.reshape(-1), p.reshape(-1)].astype(np.float64)


def spec_text(output_assert: str) -> str:
    lines = [f"(declare-const X_{i} Real)" for i in range(10)] + [f"(declare-const Y_{j} Real)" for j in range(5)]
    for i in range(10):
        lines += [f"(assert (>= X_{i} {BOX_LO[i]}))", f"(assert (<= X_{i} {BOX_HI[i]}))"]
    return "\n".join(lines + [output_assert]) + "\n"


# --------------------------------------------------------------------------- the layout
def test_the_graph_lays_inputs_and_outputs_out_in_graph_order():
    model = two_io_model()
    graph = graph_from_onnx(model, "two.onnx", dtype=F64)
    assert (graph.n_inputs, graph.n_outputs) == (10, 5)
    X = BOX_LO + np.random.default_rng(1).random((16, 10)) * (BOX_HI - BOX_LO)
    with torch.no_grad():
        ours = graph.forward(graph.as_input(X)).numpy()
    theirs = np.stack([ort_by_hand(model, x) for x in X])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours[:, 0], X[:, N_Z:].sum(1) - X[:, :N_Z].sum(1), rtol=1e-6)


def test_the_reference_feeds_every_input_and_joins_every_output():
    model = two_io_model()
    loaded = load_model(model.SerializeToString(), "two.onnx")
    ref = loaded.reference
    assert ref.input_names == ["z", "a"] and ref.n_inputs == 10
    X = np.random.default_rng(2).random((5, 10))
    single = np.stack([ref.run(x) for x in X])
    np.testing.assert_array_equal(single, np.stack([ort_by_hand(model, x) for x in X]))
    np.testing.assert_allclose(ref.run_batch(X), single, rtol=1e-6, atol=1e-6)  # batched: z has a fixed axis 0
    feeds = ref.feeds(X[0])
    assert feeds["z"].shape == (1, 4) and feeds["a"].shape == (1, 2, 3) and feeds["a"].dtype == np.float32


def test_an_initializer_listed_as_a_graph_input_is_not_an_input():
    model = two_io_model()
    model.graph.input.append(helper.make_tensor_value_info("W3", TensorProto.FLOAT, [5, 3]))
    loaded = load_model(model.SerializeToString(), "two.onnx")
    assert loaded.graph.n_inputs == 10 and loaded.reference.input_names == ["z", "a"]


def test_one_input_and_two_outputs():
    rng = np.random.default_rng(3)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["u"]), helper.make_node("Relu", ["u"], ["v"]),
         helper.make_node("Neg", ["x"], ["w"])], "one_two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 2]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(rng.normal(size=(3, 2)).astype(np.float32), "W")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    loaded = load_model(model.SerializeToString(), "one_two.onnx")
    x = np.array([0.5, -1.0, 2.0])
    with torch.no_grad():
        ours = loaded.graph.forward(loaded.graph.as_input(x[None])).double().numpy()[0]
    np.testing.assert_allclose(ours, loaded.reference.run(x), rtol=1e-6)
    np.testing.assert_allclose(ours[2:], -x)


# --------------------------------------------------------------------------- bounds and verdicts
def test_bounds_contain_sampled_outputs():
    model = two_io_model()
    g64 = graph_from_onnx(model, "two.onnx", dtype=F64)
    rng = np.random.default_rng(4)
    corners = rng.integers(0, 2, (256, 10)).astype(float)
    X = BOX_LO + np.r_[rng.random((2000, 10)), corners] * (BOX_HI - BOX_LO)
    with torch.no_grad():
        Y = g64.forward(torch.tensor(X)).numpy()
    C, d = torch.eye(5, dtype=F64), torch.zeros(5, dtype=F64)
    lo, hi = torch.tensor(BOX_LO).reshape(1, -1), torch.tensor(BOX_HI).reshape(1, -1)
    for dtype in (torch.float32, F64):
        g = graph_from_onnx(model, "two.onnx", dtype=dtype)
        for method in ("ibp", "crown", "alpha-crown"):
            ob = objective_bounds(g, C, d, lo, hi, BoundSettings(method), need_upper=True)
            lower, upper, tol = ob.lower[0].numpy(), ob.upper[0].numpy(), ob.tol[0].numpy()
            assert np.all(lower <= Y.min(0) + tol + 1e-9), (method, dtype, lower, Y.min(0))
            assert np.all(upper >= Y.max(0) - tol - 1e-9), (method, dtype, upper, Y.max(0))
            assert lower[0] > 1.99 - 1e-4  # min of sum(a) - sum(z) is 2: exact for an affine output


def test_load_time_check_passes_and_catches_a_wrong_weight(tmp_path):
    model = two_io_model()
    (tmp_path / "two.onnx").write_bytes(model.SerializeToString())
    (tmp_path / "spec.vnnlib").write_text(spec_text("(assert (<= Y_0 1.5))"))
    problem = load_problem(tmp_path / "two.onnx", tmp_path / "spec.vnnlib")  # compares with onnxruntime
    assert problem.spec.n_inputs == 10 and problem.spec.n_outputs == 5
    loaded = load_model(model.SerializeToString(), "two.onnx")
    node = next(n for n in loaded.graph.nodes if n.onnx_node.startswith("'ha'") or n.name == "ha")
    node.op.weight.add_(1.0)  # a's first product: ours differs from onnxruntime's from there on
    with pytest.raises(ModelError, match=r"differs from onnxruntime at node 'ha' \(MatMul\)"):
        check_model_on_spec(loaded, problem.spec)


def _verify(tmp_path, output_assert, capsys):
    model = two_io_model()
    (tmp_path / "two.onnx").write_bytes(model.SerializeToString())
    (tmp_path / "spec.vnnlib").write_text(spec_text(output_assert))
    res = tmp_path / "result.txt"
    code = main([str(tmp_path / "two.onnx"), str(tmp_path / "spec.vnnlib"), "--result-file", str(res),
                 "--timeout", "60", "--threads", "1", "-q"])
    out = capsys.readouterr().out
    return model, code, out, res.read_text()


def test_verify_sat_writes_a_counterexample_that_onnxruntime_confirms(tmp_path, capsys):
    model, code, out, text = _verify(tmp_path, "(assert (<= Y_0 2.25))", capsys)
    assert code == 0 and out.splitlines()[0] == "sat"
    word, x, y = parse_result_text(text)
    assert word == "sat" and x.size == 10 and y.size == 5
    assert np.all(x >= BOX_LO - 1e-6) and np.all(x <= BOX_HI + 1e-6)
    theirs = ort_by_hand(model, x)  # fed as two inputs, z = X_0..3 and a = X_4..9
    np.testing.assert_allclose(y, theirs, rtol=1e-5, atol=1e-6)
    assert theirs[0] <= 2.25
    problem = load_problem(tmp_path / "two.onnx", tmp_path / "spec.vnnlib")  # the competition checker's rules
    assert check_counterexample(problem.reference.run, problem.spec, x, y) == (True, "ok")


def test_verify_unsat_by_construction(tmp_path, capsys):
    _, code, out, text = _verify(tmp_path, "(assert (<= Y_0 1.5))", capsys)
    assert code == 0 and out.splitlines()[0] == "unsat" and text.strip() == "unsat"


# --------------------------------------------------------------------------- what stays unsupported
def test_an_input_of_dynamic_shape_is_an_error_naming_it():
    model = two_io_model(a_dims=("N", "rows", 3))
    with pytest.raises(ModelError, match=r"input 'a' has a symbolic dimension 'rows' at axis 1"):
        graph_from_onnx(model, "dyn.onnx")
    with pytest.raises(ModelError, match=r"input 'a' has a symbolic dimension 'rows' at axis 1"):
        load_model(model.SerializeToString(), "dyn.onnx")


def test_a_non_float_input_is_an_error_naming_it():
    model = two_io_model()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.INT64
    with pytest.raises(ModelError, match=r"network input 'z' has element type INT64; the verifier needs FLOAT"):
        graph_from_onnx(model, "int.onnx")


def test_a_non_float_output_is_an_error_naming_it():
    model = two_io_model()
    model.graph.node.append(helper.make_node("Cast", ["p"], ["p_int"], to=TensorProto.INT32))
    model.graph.output.append(helper.make_tensor_value_info("p_int", TensorProto.INT32, [1, 3]))
    with pytest.raises(ModelError, match=r"network output 'p_int' has element type INT32"):
        graph_from_onnx(model, "int_out.onnx")


# --------------------------------------------------------------------------- dist_shift_2023 (VNN-COMP 2023/2024)
def _onnx(name: str) -> onnx.ModelProto:
    return onnx.load_from_string(gzip.open(DIST_SHIFT / "onnx" / f"{name}.onnx.gz").read())


def _spec_box(name: str = "index2101_delta0.13") -> tuple[int, int, np.ndarray, np.ndarray]:
    text = gzip.open(DIST_SHIFT / "vnnlib" / f"{name}.vnnlib.gz").read().decode()
    n_x = len(re.findall(r"declare-const X_\d+", text))
    n_y = len(re.findall(r"declare-const Y_\d+", text))
    lo, hi = np.full(n_x, -np.inf), np.full(n_x, np.inf)
    for op, i, v in re.findall(r"\(assert \((<=|>=) X_(\d+) ([-\d.e]+)\)\)", text):
        (hi if op == "<=" else lo)[int(i)] = float(v)
    return n_x, n_y, lo, hi


@needs_dist_shift
def test_dist_shift_generator_takes_the_specs_x_in_graph_input_order():
    """The scored mnist_concat is mnist_generator with its two inputs (image, then latent) concatenated: fed the
    split of a spec's X, the generator computes the image tensor ``output`` inside mnist_concat."""
    n_x, n_y, lo, hi = _spec_box()
    gen = _onnx("mnist_generator")
    loaded = load_model(gen.SerializeToString(), "mnist_generator.onnx")
    assert loaded.reference.input_names == ["input", "onnx::Concat_1"]
    assert loaded.graph.n_inputs == n_x == 792 and n_y == 10
    concat = _onnx("mnist_concat")
    concat.graph.output.append(helper.make_tensor_value_info("output", TensorProto.FLOAT, None))
    sess = ort.InferenceSession(concat.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    X = np.stack([(lo + hi) / 2, *(lo + rng.random((3, n_x)) * (hi - lo))]).astype(np.float32)
    with torch.no_grad():
        ours = loaded.graph.forward(loaded.graph.as_input(X)).double().numpy()
    for k, x in enumerate(X):
        image = sess.run(["output"], {"onnx::Gemm_8": x.reshape(1, -1)})[0].reshape(-1)
        np.testing.assert_allclose(loaded.reference.run(x), image, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours[k], image, rtol=1e-4, atol=1e-5)


@needs_dist_shift
def test_dist_shift_prior_joins_its_two_outputs():
    prior = _onnx("mnist_prior")
    loaded = load_model(prior.SerializeToString(), "mnist_prior.onnx")
    assert (loaded.graph.n_inputs, loaded.graph.n_outputs) == (784, 16)
    x = np.random.default_rng(6).random(784).astype(np.float32)
    sess = ort.InferenceSession(prior.SerializeToString(), providers=["CPUExecutionProvider"])
    mean, second = sess.run(["output", "22"], {"input": x.reshape(1, 1, 28, 28)})
    with torch.no_grad():
        ours = loaded.graph.forward(loaded.graph.as_input(x[None])).double().numpy()[0]
    np.testing.assert_allclose(ours, np.r_[mean.reshape(-1), second.reshape(-1)], rtol=1e-4, atol=1e-5)
