"""VNN-LIB 2.0 language features that need the composed model (frontends/vnnlib/compose.py): several inputs and
outputs, hidden nodes, several networks (equal-to, isomorphic-to), constraints that mix inputs and outputs, linear
input constraints, ``!=``; and float32 / float64 declarations. Every answer is known by construction; a ``sat``
comes with an assignment that is checked here against onnxruntime runs of the original models."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from frontends.vnnlib.compose import compose
from frontends.vnnlib.v2 import parse_query
from verifier.cli import vnnlib_solver

F32, F64 = TensorProto.FLOAT, TensorProto.DOUBLE
HEAD = "(vnnlib-version <2.0>)\n"


def model(nodes, inputs, outputs, inits=(), elem=F32) -> onnx.ModelProto:
    """A model from (name, shape) inputs and outputs and {name: array} initializers."""
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info(n, elem, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, elem, s) for n, s in outputs],
                          [numpy_helper.from_array(np.asarray(v, dtype=np.float32 if elem == F32 else np.float64), k)
                           for k, v in dict(inits).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def sub_model():  # Y = X1 - X2, two inputs
    return model([helper.make_node("Sub", ["x1", "x2"], ["y"])], [("x1", [1]), ("x2", [1])], [("y", [1])])


def two_outputs():  # Y1 = 2 X, Y2 = X + 10
    return model([helper.make_node("Mul", ["x", "two"], ["y1"]), helper.make_node("Add", ["x", "ten"], ["y2"])],
                 [("x", [1])], [("y1", [1]), ("y2", [1])], {"two": [2.0], "ten": [10.0]})


def hidden_model():  # h = 2 X, r = Relu(h), Y = r + 2
    return model([helper.make_node("Mul", ["x", "two"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
                  helper.make_node("Add", ["r", "two"], ["y"])], [("x", [1])], [("y", [1])], {"two": [2.0]})


def relu_model(w=1.0, elem=F32):  # Y = Relu(w X), as a MatMul: models of one structure, with different weights
    return model([helper.make_node("MatMul", ["x", "w"], ["z"]), helper.make_node("Relu", ["z"], ["y"])],
                 [("x", [1, 1])], [("y", [1, 1])], {"w": [[w]]}, elem)


def identity2():  # Y = X + 0, two elements
    return model([helper.make_node("Add", ["x", "c"], ["y"])], [("x", [2])], [("y", [2])], {"c": [0.0, 0.0]})


def run_models(query, models: dict) -> tuple[np.ndarray, np.ndarray]:
    """Random augmented (x, y) by running each network's own model in onnxruntime (not the composed one)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, query.n_x)
    return x, augmented_y(query, models, x)


def augmented_y(query, models: dict, x: np.ndarray) -> np.ndarray:
    from frontends.vnnlib.compose import model_of

    x_off = {d.name: off for off, d in query.x_slots}
    y = np.zeros(query.n_y)
    y_off = {d.name: off for off, d in query.y_slots}
    for net in query.networks:
        m = model_of(query, models, net)
        extra = [h.onnx_name for h in net.hidden]
        if extra:
            m = onnx.ModelProto.FromString(m.SerializeToString())
            m.graph.output.extend([helper.make_tensor_value_info(n, F32, None) for n in extra])
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds, by_name = {}, {i.name: i for i in sess.get_inputs()}
        for d, i in zip(net.inputs, sess.get_inputs()):
            i = by_name[d.onnx_name] if d.onnx_name else i  # by ONNX name if declared, else by position
            feeds[i.name] = x[x_off[d.name]:x_off[d.name] + d.size].astype(np.float32).reshape(
                [s if isinstance(s, int) else 1 for s in i.shape])
        outs = sess.run(None, feeds)
        for d, v in zip(net.outputs + net.hidden, outs):
            y[y_off[d.name]:y_off[d.name] + d.size] = np.asarray(v, dtype=np.float64).reshape(-1)
    base = query.n_y - len(query.passthrough)
    for k, i in enumerate(query.passthrough):
        y[base + k] = x[i]
    return y


def solve(capsys, tmp_path, text: str, models: dict, *extra) -> tuple[int, list[str], str]:
    q = tmp_path / "q.vnnlib"
    q.write_text(text)
    args = ["verify", str(q)]
    for name, m in models.items():
        path = tmp_path / f"{name}.onnx"
        onnx.save(m, str(path))
        args += ["--network", f"{name}={path}"]
    rc = vnnlib_solver.main(args + ["--timeout", "60", *extra])
    cap = capsys.readouterr()
    return rc, cap.out.splitlines(), cap.err


def read_assignment(lines: list[str]) -> dict[str, np.ndarray]:
    """``NAME TYPE [d1,...]`` then the values, one a line (the standard's command-line format)."""
    out, k = {}, 0
    while k < len(lines):
        name, _, dims = lines[k].split(" ")
        n = int(np.prod([int(d) for d in dims[1:-1].split(",") if d] or [1]))
        out[name] = np.array(lines[k + 1:k + 1 + n], dtype=float)
        k += 1 + n
    return out


def check_sat(text: str, models: dict, out: list[str]) -> None:
    """The printed assignment is a satisfying one: its inputs, run through the original models, give its outputs
    and hidden values, and they meet the query."""
    assert out[0] == "sat", out
    query = parse_query(text)
    values = read_assignment(out[1:])
    assert list(values) == [d.name for d in query.declarations]  # every variable, in the standard's order
    x = np.zeros(query.n_x)
    for off, d in query.x_slots:
        x[off:off + d.size] = values[d.name]
    y = augmented_y(query, models, x)
    for off, d in query.y_slots:
        np.testing.assert_allclose(values[d.name], y[off:off + d.size], rtol=1e-6, atol=1e-6)
    spec = query.to_spec()
    assert spec.violated_disjunct(x, y) is not None


def box(name: str, lo: float, hi: float, idx: str = "[0]") -> str:
    return f"(assert (>= {name}{idx} {float(lo)}))\n(assert (<= {name}{idx} {float(hi)}))\n"


# --------------------------------------------------------------------------- the composed model itself
CASES = {
    "multi_input": (HEAD + "(declare-network N (declare-input X1 float32 [1]) (declare-input X2 float32 [1])"
                    " (declare-output Y float32 [1]))\n" + box("X1", 0, 1) + box("X2", 10, 11), {"N": sub_model()}),
    "multi_output": (HEAD + "(declare-network N (declare-input X float32 [1]) (declare-output Y1 float32 [1])"
                     " (declare-output Y2 float32 [1]))\n" + box("X", 0, 1), {"N": two_outputs()}),
    "hidden": (HEAD + "(declare-network N (declare-input X float32 [1]) (declare-hidden H float32 [1] \"h\")"
               " (declare-hidden R float32 [1] \"r\") (declare-output Y float32 [1]))\n" + box("X", -1, 2),
               {"N": hidden_model()}),
    "equal_to": (HEAD + "(declare-network N1 (declare-input X float32 [1,1]) (declare-output Y float32 [1,1]))\n"
                 "(declare-network N2 (equal-to N1) (declare-input X2 float32 [1,1]) (declare-output Y2 float32 "
                 "[1,1]))\n" + box("X", 0, 1, "[0,0]") + box("X2", 2, 3, "[0,0]"), {"N1": relu_model()}),
    "isomorphic_to": (HEAD + "(declare-network N1 (declare-input X float32 [1,1]) (declare-output Y float32 [1,1]))"
                      "\n(declare-network N2 (isomorphic-to N1) (declare-input X2 float32 [1,1]) (declare-output Y2 "
                      "float32 [1,1]))\n" + box("X", 0, 1, "[0,0]") + box("X2", 0, 1, "[0,0]"),
                      {"N1": relu_model(1.0), "N2": relu_model(-3.0)}),
}


@pytest.mark.parametrize("case", CASES)
def test_composed_model_computes_the_networks_and_the_verifiers_forward_agrees(case):
    import torch

    from frontends.load import load_model

    text, models = CASES[case]
    query = parse_query(text + MIXED[case])
    composed = compose(query, models)
    onnx.checker.check_model(composed)
    x, want = run_models(query, models)
    sess = ort.InferenceSession(composed.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"X": x.astype(np.float32).reshape(1, -1)})[0].reshape(-1)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert len(query.passthrough) == 1  # the mixed constraint made one input element an output too
    graph = load_model(composed.SerializeToString(), case).graph
    with torch.no_grad():
        mine = graph.forward(torch.tensor(x, dtype=torch.float32).reshape(graph.input_shape)).reshape(-1)
    np.testing.assert_allclose(mine.numpy(), want, rtol=1e-5, atol=1e-5)


MIXED = {"multi_input": "(assert (<= (+ X1[0] Y[0]) 100))", "multi_output": "(assert (<= (+ X[0] Y2[0]) 100))",
         "hidden": "(assert (<= (+ X[0] H[0]) 100))", "equal_to": "(assert (<= (+ X[0,0] Y2[0,0]) 100))",
         "isomorphic_to": "(assert (<= (+ X[0,0] Y2[0,0]) 100))"}  # a constraint that names an input element


# --------------------------------------------------------------------------- verdicts known by construction
VERDICTS = [  # (case, constraint, answer)
    # Y = X1 - X2 in [-11, -9] (multi_io01/02 of the conformance suite; swapped inputs would flip both answers)
    ("multi_input", "(assert (>= Y[0] -8.0))", "unsat"),
    ("multi_input", "(assert (<= Y[0] -10.5))", "sat"),
    ("multi_input", "(assert (< Y[0] -11.0))", "unsat"),  # the bound -11 is attained: strict excludes it
    ("multi_input", "(assert (<= Y[0] -11.0))", "sat"),
    # Y1 = 2X, Y2 = X + 10 on X in [0, 1] (multi_io03/04)
    ("multi_output", "(assert (>= Y1[0] 1.5))\n(assert (<= Y2[0] 10.5))", "unsat"),
    ("multi_output", "(assert (<= Y1[0] 0.5))\n(assert (>= Y2[0] 10.0))", "sat"),
    # h = 2X in [-2, 4], r = Relu(h), Y = r + 2 on X in [-1, 2]
    ("hidden", "(assert (<= H[0] -1.5))", "sat"),
    ("hidden", "(assert (< R[0] 0.0))", "unsat"),  # a Relu's output is never negative
    ("hidden", "(assert (<= R[0] 0.0))", "sat"),
    ("hidden", "(assert (>= H[0] (+ X[0] 2.0)))", "sat"),  # 2x >= x + 2 needs x >= 2: x = 2 only
    ("hidden", "(assert (> H[0] (+ X[0] 2.0)))", "unsat"),
    ("hidden", "(assert (> Y[0] (+ R[0] 2.0)))", "unsat"),  # Y = R + 2 exactly
    ("hidden", "(assert (!= Y[0] (+ R[0] 2.0)))", "unsat"),
    ("hidden", "(assert (!= R[0] 0.0))", "sat"),
    # N2 equal-to N1 (Relu), X in [0, 1], X2 in [2, 3] (network_equal01)
    ("equal_to", "(assert (<= Y2[0,0] Y[0,0]))", "unsat"),
    ("equal_to", "(assert (>= Y2[0,0] (+ Y[0,0] 2.0)))", "sat"),  # X = 0, X2 = 2 ... 3
    ("equal_to", "(assert (> Y2[0,0] (+ Y[0,0] 3.0)))", "unsat"),  # at most 3 - 0
    # N1 = Relu(X), N2 = Relu(-3 X2), both inputs in [0, 1]: Y2 = 0 always
    ("isomorphic_to", "(assert (> Y2[0,0] 0.0))", "unsat"),
    ("isomorphic_to", "(assert (>= Y[0,0] (+ Y2[0,0] 1.0)))", "sat"),  # X = 1
]


@pytest.mark.parametrize("case,constraint,answer", VERDICTS, ids=[f"{c}-{a}-{i}" for i, (c, _, a) in
                                                                     enumerate(VERDICTS)])
def test_verdicts(capsys, tmp_path, case, constraint, answer):
    text, models = CASES[case]
    text += constraint
    rc, out, err = solve(capsys, tmp_path, text, models)
    assert rc == 0 and out and out[0] == answer, (out, err)
    if answer == "sat":
        check_sat(text, models, out)


# --------------------------------------------------------------------------- linear and mixed constraints, !=
LIN = HEAD + ("(declare-network N (declare-input X float32 [2]) (declare-output Y float32 [2]))\n"
              + box("X", 0, 2, "[0]") + box("X", 0, 2, "[1]"))
RELU = HEAD + "(declare-network N (declare-input X float32 [1,1]) (declare-output Y float32 [1,1]))\n" + box(
    "X", -1, 1, "[0,0]")
LINEAR = [  # (query, model, answer): Y = X + 0 on X in [0, 2]^2, or Y = Relu(X) on X in [-1, 1]
    (LIN + "(assert (>= (+ (* 0.5 X[0]) (* 0.75 X[1])) 3.0))", identity2, "unsat"),  # arithmetic_lin01: max 2.5
    (LIN + "(assert (>= (+ (* 0.5 X[0]) (* 0.75 X[1])) 2.5))", identity2, "sat"),  # the corner (2, 2)
    (LIN + "(assert (> (+ (* 0.5 X[0]) (* 0.75 X[1])) 2.5))", identity2, "unsat"),  # strict: the corner is out
    (LIN + "(assert (or (<= (+ X[0] X[1]) -1.0) (>= (- X[0] X[1]) 2.5)))", identity2, "unsat"),
    (LIN + "(assert (or (<= (+ X[0] X[1]) -1.0) (>= (- X[0] X[1]) 2.0)))", identity2, "sat"),
    (LIN + "(assert (and (<= 0.0 (- X[0] X[1])) (<= (- X[0] X[1]) 0.0)))\n(assert (>= Y[0] 1.5))\n"
     "(assert (<= Y[1] 1.0))", identity2, "unsat"),
    (LIN + "(assert (== X[0] X[1]))\n(assert (>= Y[0] 1.5))\n(assert (>= Y[1] 1.5))", identity2, "sat"),
    (LIN + "(assert (> (+ Y[0] Y[1]) 4.0))", identity2, "unsat"),
    (LIN + "(assert (< Y[0] X[0]))", identity2, "unsat"),  # Y = X: mixed, strict, exactly at the boundary
    (LIN + "(assert (<= Y[0] X[0]))", identity2, "sat"),
    (LIN + "(assert (!= Y[1] X[1]))", identity2, "unsat"),
    (LIN + "(assert (!= Y[1] X[0]))", identity2, "sat"),
    (LIN + "(assert (!= X[0] 1.0))\n(assert (>= Y[0] 0.5))\n(assert (<= Y[0] 1.5))", identity2, "sat"),
    (LIN + "(assert (!= X[0] X[0]))", identity2, "unsat"),  # false everywhere
    (RELU + "(assert (< Y[0,0] X[0,0]))", relu_model, "unsat"),  # Relu(x) >= x
    (RELU + "(assert (> Y[0,0] X[0,0]))", relu_model, "sat"),  # x < 0
    (RELU + "(assert (> Y[0,0] (+ X[0,0] 1.0)))", relu_model, "unsat"),  # equality at x = -1 only
    (RELU + "(assert (>= Y[0,0] (+ X[0,0] 1.0)))", relu_model, "sat"),  # x = -1
]


@pytest.mark.parametrize("text,make,answer", LINEAR, ids=[f"{i}-{a}" for i, (_, _, a) in enumerate(LINEAR)])
def test_linear_mixed_and_not_equal_constraints(capsys, tmp_path, text, make, answer):
    models = {"N": make()}
    rc, out, err = solve(capsys, tmp_path, text, models)
    assert rc == 0 and out and out[0] == answer, (out, err)
    if answer == "sat":
        check_sat(text, models, out)


def test_a_plain_query_runs_the_model_itself_and_a_mixed_one_the_composition():
    plain = parse_query(RELU + "(assert (<= Y[0,0] 0.5))")
    assert plain.is_plain and (plain.n_x, plain.n_y) == (1, 1)
    mixed = parse_query(LIN + "(assert (<= (+ X[1] X[0]) Y[1]))")
    assert not mixed.is_plain and mixed.passthrough == (1, 0) and mixed.n_y == 4
    dj, = mixed.to_spec().disjuncts
    assert dj.C.tolist() == [[0, -1, 1, 1]] and dj.d.tolist() == [0.0]  # Y_3 + Y_2 - Y_1 <= 0 over (Y, X1, X0)


# --------------------------------------------------------------------------- element types
def f64_query(dtype: str) -> str:
    return (HEAD + f"(declare-network N (declare-input X {dtype} [1,1]) (declare-output Y {dtype} [1,1]))\n"
            + box("X", -1, 1, "[0,0]"))


@pytest.mark.parametrize("dtype", ["float64", "real", "Real"])
def test_float64_models_with_float64_or_real_declarations(capsys, tmp_path, dtype):
    models = {"N": relu_model(elem=F64)}
    rc, out, err = solve(capsys, tmp_path, f64_query(dtype) + "(assert (< Y[0,0] 0.0))", models)
    assert (rc, out) == (0, ["unsat"]), err
    rc, out, err = solve(capsys, tmp_path, f64_query(dtype) + "(assert (> Y[0,0] 0.75))", models)
    assert rc == 0 and out[0] == "sat" and out[1] == f"X {dtype} [1,1]", (out, err)
    assert float(out[2]) > 0.75 and float(out[4]) == float(out[2])


@pytest.mark.parametrize("text,models,fragment", [
    (f64_query("float32") + "(assert (< Y[0,0] 0))", {"N": relu_model(elem=F64)},
     "X is declared float32 but the model's input 'x' is float64"),
    (f64_query("float16") + "(assert (< Y[0,0] 0))", {"N": relu_model()},
     "X is declared float16 but the model's input 'x' is float32"),
    (f64_query("float32").replace("Y float32", "Y real") + "(assert (< Y[0,0] 0))", {"N": relu_model()},
     "Y is declared real but the model's output 'y' is float32 (a query is exempt only if every declaration is "
     "real)"),
    (CASES["hidden"][0].replace('"r"', '"nowhere"') + "(assert (<= R[0] 1))", {"N": hidden_model()},
     "hidden node R: no node of the model of network N makes a tensor named 'nowhere'"),
    (CASES["hidden"][0].replace("H float32 [1]", "H float32 [2]") + "(assert (<= H[0] 1))", {"N": hidden_model()},
     "H is declared with shape [2] (2 elements) but the model's tensor 'h' of network N has 1"),
    (CASES["multi_input"][0].replace(" (declare-input X2 float32 [1])", "").replace(box("X2", 10, 11), "")
     + "(assert (<= Y[0] 1))", {"N": sub_model()}, "network N declares 1 inputs but its model has 2"),
    (CASES["equal_to"][0] + "(assert (<= Y[0,0] 1))", {"N1": relu_model(), "N2": relu_model()},
     "--network N2: network N2 is declared equal-to N1 and takes its model; give none for it"),
    (CASES["isomorphic_to"][0] + "(assert (<= Y[0,0] 1))", {"N1": relu_model()},
     "the query declares network N2: give its model with --network N2=PATH"),
    (LIN + "(assert (<= (+ X[0] X[1]) 1))".replace("X[0] X[1]", "X[0] Z[1]"), {"N": identity2()},
     "undeclared variable Z"),
    (HEAD + "(declare-network N (declare-input X float32 [2]) (declare-output Y float32 [2]))\n"
     "(assert (>= X[0] 0))\n(assert (<= X[0] 1))\n(assert (<= (+ X[0] X[1]) 1))\n(assert (>= (+ X[0] X[1]) 0))",
     {"N": identity2()}, "input X[1] has no lower bound"),
])
def test_refusals_are_one_line_naming_the_construct(capsys, tmp_path, text, models, fragment):
    rc, out, err = solve(capsys, tmp_path, text, models)
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 1 and out == [] and len(lines) == 1 and fragment in lines[0], err


# --------------------------------------------------------------------------- the reference parser agrees
def all_queries() -> list[str]:
    texts = [CASES[c][0] + k for c, k, _ in VERDICTS] + [t for t, _, _ in LINEAR]
    return texts + [f64_query(t) + "(assert (< Y[0,0] 0.0))" for t in ("float64", "real")]


def test_the_reference_parser_reads_every_query_here_with_the_same_declarations():
    """The standard's reference parser (PyPI ``vnnlib``, an optional test dependency) accepts each query of these
    tests, and declares the same variables in the same order with the same shapes."""
    vnnlib = pytest.importorskip("vnnlib", reason="the reference parser `vnnlib` (PyPI) is not installed")
    for text in all_queries():
        ref = vnnlib.parse_query_string(text)
        theirs = [(d.name, tuple(int(s) for s in d.shape)) for n in ref.networks
                  for d in list(n.inputs) + list(n.hidden) + list(n.outputs)]
        ours = [(d.name, d.shape) for d in parse_query(text).declarations]
        assert theirs == ours, text


def test_inputs_and_outputs_are_matched_by_onnx_name_when_declared(capsys, tmp_path):
    """Declared in the other order but named: A is x2, B is x1, so Y = B - A; by position it would be A - B."""
    text = (HEAD + '(declare-network N (declare-input A float32 [1] "x2") (declare-input B float32 [1] "x1")'
            ' (declare-output Y float32 [1] "y"))\n' + box("A", 10, 11) + box("B", 0, 1))
    models = {"N": sub_model()}
    rc, out, err = solve(capsys, tmp_path, text + "(assert (>= Y[0] -8.0))", models)
    assert (rc, out) == (0, ["unsat"]), err
    rc, out, err = solve(capsys, tmp_path, text + "(assert (<= Y[0] -10.5))", models)
    assert rc == 0 and out[0] == "sat", (out, err)
    check_sat(text + "(assert (<= Y[0] -10.5))", models, out)
    values = read_assignment(out[1:])
    assert values["B"][0] - values["A"][0] <= -10.5 and values["Y"][0] <= -10.5
    rc, out, err = solve(capsys, tmp_path, text.replace('"x1"', '"x3"') + "(assert (<= Y[0] 1.0))", models)
    assert rc == 1 and out == [] and "B: the model of network N has no input named 'x3'" in err, err
