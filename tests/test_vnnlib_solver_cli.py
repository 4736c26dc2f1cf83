"""The `vnnlib-solver` command line (verifier/cli/vnnlib_solver.py, vnnlib_supports.py): the standard's `supports`
capabilities and names, usage errors, a start without torch, and the claimed ONNX operators in each of their forms
(loaded, checked against onnxruntime, and decided with answers known by construction)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import ROOT
from onnx import TensorProto, helper

from frontends.onnx.loader import SUPPORTED
from verifier.cli.vnnlib_solver import main as solver_main
from verifier.cli.vnnlib_supports import ANSWERS, CAPABILITIES, OPERATORS, STANDARD_THEORIES


def run(capsys, *args) -> tuple[int, list[str], str]:
    try:
        rc = solver_main(list(map(str, args)))
    except SystemExit as e:  # argparse: a malformed command line
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err


# --------------------------------------------------------------------------- supports
def test_supports_answers_each_standard_capability_with_standard_names(capsys):
    for cap in CAPABILITIES:
        rc, out, err = run(capsys, "supports", f"--{cap}")
        assert rc == 0 and err == "" and out == ANSWERS[cap], (cap, rc, out, err)
    for cap, names in STANDARD_THEORIES.items():
        assert set(ANSWERS[cap]) <= names, cap
    assert ANSWERS["arithmetic-complexity-theories"] == ["BND", "OUTC", "LIN"]  # OUTC, not COUT; no POLY
    assert ANSWERS["onnx-element-types"] == ["real"]  # no float type: the analysis is real arithmetic
    assert ANSWERS["optimised-disjunctive-reasoning"] == ["false"] and ANSWERS["serialise-assignments"] == ["false"]
    lo, hi = ANSWERS["onnx-opset-versions"]
    assert 1 <= int(lo) <= int(hi) <= onnx.defs.onnx_opset_version()
    assert ANSWERS["vnnlib-versions"] == ["1.0", "2.0"]


def test_supports_aliases_of_the_standard(capsys):
    assert run(capsys, "capabilities", "--arithmetic-complexity-theories")[:2] == (0, ["BND", "OUTC", "LIN"])
    assert run(capsys, "supports", "--multiple-inputs-output-theories")[:2] == (0, ["SIO", "MIO"])


@pytest.mark.parametrize("args", [["supports"], ["supports", "--vnnlib-versions", "--onnx-operators"],
                                  ["supports", "--unsat-proofs"], ["supports", "--onnx-operators-unsat-proofs"],
                                  ["supports", "--onnx-op"], ["capabilities", "--bogus"], ["--name", "--version"],
                                  ["verify", "q.vnnlib", "--unsat-proofs", "p"], ["verify", "q", "--timeout", "-1"],
                                  ["verify", "q", "--timeout", "inf"], []],
                         ids=["none", "two", "unsat-proofs", "operators-unsat-proofs", "abbreviation", "unknown",
                              "name-and-version", "verify-unsat-proofs", "negative-timeout", "infinite-timeout",
                              "no-command"])
def test_a_malformed_command_line_is_one_line_and_exit_2(capsys, args):
    rc, out, err = run(capsys, *args)
    assert rc == 2 and out == [] and err.count("\n") == 1 and "error" in err, (rc, out, err)


def test_help_name_version_and_supports_do_not_import_torch_onnx_or_onnxruntime():
    heavy = ("torch", "onnx", "onnxruntime", "scipy")
    for args in (["--help"], ["--name"], ["--version"], ["supports", "--onnx-operators"],
                 ["capabilities", "--onnx-opset-versions"]):
        code = ("import sys\nfrom verifier.cli.vnnlib_solver import main\ntry:\n    main(%r)\nexcept SystemExit:\n"
                "    pass\nprint('LOADED', sorted(m for m in %r if m in sys.modules))" % (args, heavy))
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines()[-1] == "LOADED []", (args, res.stdout[-300:])


# --------------------------------------------------------------------------- the operator table
def test_every_loader_op_is_claimed_or_excluded_with_a_reason():
    undecided = sorted(set(SUPPORTED) - set(OPERATORS))
    assert not undecided, f"decide these loader ops in vnnlib_supports.OPERATORS: {undecided}"
    assert set(OPERATORS) <= set(SUPPORTED), sorted(set(OPERATORS) - set(SUPPORTED))  # no claim beyond the loader
    assert all(reason is None or reason.strip() for reason in OPERATORS.values())
    assert ANSWERS["onnx-operators"] == sorted(op for op, why in OPERATORS.items() if why is None)
    # the forms the issue found refused are not claimed
    assert {"Shape", "Mul", "Conv", "MaxPool"}.isdisjoint(ANSWERS["onnx-operators"])


def _model(nodes, in_shape, out_shape, opset, inits=()) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, in_shape)
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, out_shape)
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y], initializer=list(inits)),
                          opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    return m


def _axes(name, values):
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


# (label, claimed op, model): every output is f(an input element) with f <= 1 on [-1, 1] and f(1) >= 0.5 or
# f(-1) >= 0.5, so over X in [-1, 1] "some Y >= 2" is unsat and "Y[0...] >= 0.5" is sat
N = helper.make_node
FORMS = [
    ("relu-1d-op7", "Relu", _model([N("Relu", ["X"], ["Y"])], [3], [3], 7)),
    ("relu-4d-op21", "Relu", _model([N("Relu", ["X"], ["Y"])], [1, 2, 2, 2], [1, 2, 2, 2], 21)),
    ("sigmoid-2d", "Sigmoid", _model([N("Sigmoid", ["X"], ["Y"])], [2, 3], [2, 3], 13)),
    ("tanh-3d", "Tanh", _model([N("Tanh", ["X"], ["Y"])], [1, 2, 3], [1, 2, 3], 13)),
    ("abs", "Abs", _model([N("Abs", ["X"], ["Y"])], [2, 3], [2, 3], 13)),
    ("leakyrelu", "LeakyRelu", _model([N("LeakyRelu", ["X"], ["Y"], alpha=0.1)], [1, 2, 2], [1, 2, 2], 16)),
    ("leakyrelu-negative-alpha", "LeakyRelu", _model([N("LeakyRelu", ["X"], ["Y"], alpha=-0.5)], [3], [3], 16)),
    ("neg", "Neg", _model([N("Neg", ["X"], ["Y"])], [2, 3], [2, 3], 13)),
    ("identity", "Identity", _model([N("Identity", ["X"], ["Y"])], [2, 3], [2, 3], 16)),
    ("flatten-axis0", "Flatten", _model([N("Flatten", ["X"], ["Y"], axis=0)], [2, 3, 2], [1, 12], 13)),
    ("flatten-axis2", "Flatten", _model([N("Flatten", ["X"], ["Y"], axis=2)], [2, 3, 2], [6, 2], 13)),
    ("flatten-axis-neg", "Flatten", _model([N("Flatten", ["X"], ["Y"], axis=-1)], [2, 3, 2], [6, 2], 13)),
    ("transpose-default", "Transpose", _model([N("Transpose", ["X"], ["Y"])], [2, 3, 4], [4, 3, 2], 13)),
    ("transpose-perm", "Transpose", _model([N("Transpose", ["X"], ["Y"], perm=[1, 0, 2])], [2, 3, 4], [3, 2, 4], 13)),
    ("squeeze-attr-op11", "Squeeze", _model([N("Squeeze", ["X"], ["Y"], axes=[1])], [2, 1, 3], [2, 3], 11)),
    ("squeeze-input-op13", "Squeeze", _model([N("Squeeze", ["X", "a"], ["Y"])], [2, 1, 3], [2, 3], 13,
                                             [_axes("a", [-2])])),
    ("squeeze-all", "Squeeze", _model([N("Squeeze", ["X"], ["Y"])], [1, 3, 1], [3], 13)),
    ("unsqueeze-attr-op11", "Unsqueeze", _model([N("Unsqueeze", ["X"], ["Y"], axes=[0, 3])], [2, 3], [1, 2, 3, 1],
                                                11)),
    ("unsqueeze-input-neg", "Unsqueeze", _model([N("Unsqueeze", ["X", "a"], ["Y"])], [2, 3], [2, 3, 1], 13,
                                                [_axes("a", [-1])])),
    ("reshape-zero-minus1", "Reshape", _model([N("Reshape", ["X", "s"], ["Y"])], [2, 3, 2], [2, 6], 13,
                                              [_axes("s", [0, -1])])),
    ("reshape-allowzero-op14", "Reshape", _model([N("Reshape", ["X", "s"], ["Y"], allowzero=1)], [2, 6], [3, 4], 14,
                                                 [_axes("s", [3, 4])])),
    ("reshape-op5", "Reshape", _model([N("Reshape", ["X", "s"], ["Y"])], [4], [2, 2], 5, [_axes("s", [2, 2])])),
    ("sin", "Sin", _model([N("Sin", ["X"], ["Y"])], [2, 3], [2, 3], 7)),
    ("cos-3d", "Cos", _model([N("Cos", ["X"], ["Y"])], [1, 2, 2], [1, 2, 2], 13)),
    ("softplus", "Softplus", _model([N("Softplus", ["X"], ["Y"])], [3], [3], 13)),
    ("hardsigmoid-default", "HardSigmoid", _model([N("HardSigmoid", ["X"], ["Y"])], [2, 3], [2, 3], 6)),
    ("hardsigmoid-attrs", "HardSigmoid", _model([N("HardSigmoid", ["X"], ["Y"], alpha=-0.3, beta=0.6)], [3], [3],
                                                 13)),
]


def test_the_forms_cover_every_claimed_operator():
    assert {op for _, op, _ in FORMS} == set(ANSWERS["onnx-operators"])


def _query(in_shape, out_shape, goal: str) -> str:
    def elems(name, shape):
        return [f"{name}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape)]
    dims = lambda s: ",".join(map(str, s))  # noqa: E731
    box = " ".join(f"(>= {v} -1.0) (<= {v} 1.0)" for v in elems("X", in_shape))
    outs = elems("Y", out_shape)
    goal = (f"(or {' '.join(f'(>= {v} 2.0)' for v in outs)})" if goal == "unsat" else f"(>= {outs[0]} 0.5)")
    return (f"(vnnlib-version <2.0>)\n(declare-network N\n  (declare-input X real [{dims(in_shape)}])\n"
            f"  (declare-output Y real [{dims(out_shape)}]))\n(assert (and {box}))\n(assert {goal})\n")


@pytest.mark.parametrize("label,op,model", FORMS, ids=[f[0] for f in FORMS])
def test_each_form_of_a_claimed_operator_is_decided(capsys, tmp_path, label, op, model):
    onnx.checker.check_model(model, full_check=True)  # a valid form of the op
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    shape = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    in_shape, out_shape = shape(model.graph.input[0]), shape(model.graph.output[0])
    for want in ("unsat", "sat"):
        q = tmp_path / f"{want}.vnnlib"
        q.write_text(_query(in_shape, out_shape, want))
        rc, out, err = run(capsys, "verify", q, "--network", f"N={path}", "--timeout", "60")
        assert rc == 0 and out and out[0] == want, (label, want, rc, out, err)  # loaded, checked, decided
        if want == "sat":  # the assignment: both declarations, in the standard's format
            assert out[1] == f"X real [{','.join(map(str, in_shape))}]", out
            y_at = 2 + int(np.prod(in_shape))
            assert out[y_at] == f"Y real [{','.join(map(str, out_shape))}]" and float(out[y_at + 1]) >= 0.5, out
