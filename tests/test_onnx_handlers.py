"""ONNX front end internals: the op handler table, and the constant folding of Gemm against onnxruntime.

A constant Gemm (all inputs initializers) is folded at load time as ONNX defines it:
Y = alpha * A' B' + beta * C, with A' = A^T when transA, B' = B^T when transB and C optional
(broadcast). Each model feeds the folded value into a network op (a MatMul weight, an Add or a
Mul on the input) so that a wrong fold shows in the graph's forward.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import Builder, ort_run_batch, ort_session, rel_err

from frontends.onnx.fold import CONST_ONLY, fold
from frontends.onnx.loader import SUPPORTED, graph_from_onnx
from frontends.onnx.registry import HANDLERS

TOL = 1e-5

# the op types the loader accepted before the handler table (SUPPORTED must not change with the refactor)
SUPPORTED_BEFORE = {
    "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Tanh", "Conv", "Flatten", "Reshape",
    "BatchNormalization", "Constant", "Identity", "Dropout", "MaxPool", "AveragePool", "Transpose",
    "Squeeze", "Unsqueeze", "Shape", "Gather", "Concat", "Cast", "GlobalAveragePool",
}


def test_supported_is_the_handlers_and_the_constant_only_ops():
    assert SUPPORTED == set(HANDLERS) | CONST_ONLY
    assert SUPPORTED_BEFORE <= SUPPORTED  # issue 21 added structural and piecewise-linear ops
    assert not set(HANDLERS) & CONST_ONLY


def const_gemm(b: Builder, m: int, k: int, n: int, trans_a: int, trans_b: int, alpha, beta, c_kind) -> str:
    """A Gemm of initializers only whose result has shape (m, n); ``c_kind`` picks C's shape (None: no C)."""
    a = b.rand(k, m) if trans_a else b.rand(m, k)
    w = b.rand(n, k) if trans_b else b.rand(k, n)
    ins = [b.const(a, "A"), b.const(w, "B")]
    c_shape = {None: None, "full": (m, n), "row": (n,), "row2d": (1, n), "col": (m, 1), "scalar": ()}[c_kind]
    if c_shape is not None:
        ins.append(b.const(np.asarray(b.rng.standard_normal(c_shape), dtype=np.float32), "C"))
    attrs = {"transA": trans_a, "transB": trans_b}
    if alpha != 1.0:
        attrs["alpha"] = alpha
    if beta != 1.0:
        attrs["beta"] = beta
    return b.node("Gemm", ins, **attrs)


def check_against_ort(model, seed=0):
    graph = graph_from_onnx(model, "const_gemm.onnx")
    xs = np.random.default_rng(seed).uniform(-2, 2, (8, graph.n_inputs)).astype(np.float32)
    y_ort = ort_run_batch(ort_session(model), xs)
    y_graph = graph.forward(torch.tensor(xs)).double().numpy()
    assert y_graph.shape == y_ort.shape
    assert rel_err(y_graph, y_ort) <= TOL


SCALES = [(1.0, 1.0), (0.7, 1.0), (1.0, -1.5), (0.7, -1.5)]
C_KINDS = [None, "full", "row", "row2d", "col", "scalar"]


@pytest.mark.parametrize("trans_a,trans_b,scales,c_kind", list(itertools.product((0, 1), (0, 1), SCALES, C_KINDS)))
def test_constant_gemm_as_matmul_weight(trans_a, trans_b, scales, c_kind):
    """x (1, 4) @ Gemm(...) (4, 3): the folded Gemm is the weight of a network MatMul."""
    b = Builder(0, [1, 4])
    g = const_gemm(b, 4, 2, 3, trans_a, trans_b, *scales, c_kind)
    check_against_ort(b.model(b.node("MatMul", [b.in_name, g])))


@pytest.mark.parametrize("trans_a,trans_b,scales", list(itertools.product((0, 1), (0, 1), SCALES)))
def test_constant_square_gemm_as_matmul_weight(trans_a, trans_b, scales):
    """Square operands: a fold that ignores transA/transB gives wrong numbers rather than a shape error."""
    b = Builder(1, [1, 3])
    g = const_gemm(b, 3, 3, 3, trans_a, trans_b, *scales, "full")
    check_against_ort(b.model(b.node("MatMul", [b.in_name, g])))


@pytest.mark.parametrize("op", ["Add", "Mul"])
@pytest.mark.parametrize("trans_a,trans_b,scales,c_kind",
                         list(itertools.product((0, 1), (0, 1), SCALES, [None, "row", "row2d", "scalar"])))
def test_constant_gemm_into_elementwise_op(op, trans_a, trans_b, scales, c_kind):
    """Gemm(...) of shape (1, 3) added to, or multiplied into, the network input (1, 3)."""
    b = Builder(2, [1, 3])
    g = const_gemm(b, 1, 4, 3, trans_a, trans_b, *scales, c_kind)
    check_against_ort(b.model(b.node("Relu", [b.node(op, [g, b.in_name])])))


def test_fold_gemm_formula():
    rng = np.random.default_rng(0)
    a, w, c = rng.standard_normal((2, 3)), rng.standard_normal((4, 2)), rng.standard_normal(4)
    y = fold("Gemm", [a, w, c], {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}, "'g' (Gemm)", "m.onnx")
    np.testing.assert_allclose(y, 0.5 * a.T @ w.T + 2.0 * c)
    y = fold("Gemm", [a.T, w.T, None], {"beta": 2.0}, "'g' (Gemm)", "m.onnx")  # C omitted ("")
    np.testing.assert_allclose(y, a.T @ w.T)
