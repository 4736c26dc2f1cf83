"""Shared fixtures and helpers of the test suite.

- ``BENCH``: the VNN-COMP benchmarks in ``../shared/benchmarks`` (relative to the project
  root); tests that need them use ``needs_bench`` (or the ``bench`` fixture) and skip with a
  reason naming the path when the folder is absent.
- Small random ONNX models built with ``onnx.helper`` (FC, conv, residual, BatchNormalization,
  Sub/Div normalisation, Flatten/Reshape, AveragePool, Transpose, Gemm transA/transB, MatMul
  with a constant left operand), and helpers to run them through onnxruntime.
- The ``slow`` marker (registered in ``pytest_configure``).
"""
from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

# One intra-op thread: the CI machine has 2 shared cores, and torch's thread pool under contention
# made small conv forward passes 30x slower (measured: 5 s instead of 0.16 s for 40 passes).
torch.set_num_threads(int(os.environ.get("NNVERIFY_TEST_THREADS", "1")))

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"
MODELS = Path(__file__).resolve().parent / "models"

needs_bench = pytest.mark.skipif(not BENCH.is_dir(), reason=f"benchmarks not found at {BENCH}")

OPSET = 13
IR_VERSION = 8  # readable by every onnxruntime >= 1.10


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running acceptance test (deselect with -m 'not slow')")


@pytest.fixture(scope="session")
def bench() -> Path:
    if not BENCH.is_dir():
        pytest.skip(f"benchmarks not found at {BENCH}")
    return BENCH


# --------------------------------------------------------------------------- benchmark instances
def read_instances(folder: Path) -> list[tuple[str, str, float]]:
    """(onnx, vnnlib, timeout) rows of a benchmark folder's instances csv (eran: eran_instances.csv)."""
    csv_path = folder / "instances.csv"
    if not csv_path.exists():
        csv_path = next(folder.glob("*instances.csv"))
    rows = []
    with open(csv_path) as f:
        for row in csv.reader(f):
            if len(row) >= 3 and row[0].strip():
                rows.append((row[0].strip(), row[1].strip(), float(row[2])))
    return rows


def read_expected(folder: Path) -> dict[tuple[str, str], str]:
    with open(folder / "expected.csv") as f:
        return {(r["onnx"], r["vnnlib"]): r["expected"] for r in csv.DictReader(f)}


def bench_networks() -> list[tuple[str, str, str]]:
    """Every network of the benchmarks with the first vnnlib that instances.csv pairs it with:
    (folder, onnx relative path, vnnlib relative path)."""
    if not BENCH.is_dir():
        return []
    out = []
    # benchmark folders with an instances csv (vnncomp2024/ holds one folder per benchmark, not one csv)
    for folder in sorted(p for p in BENCH.iterdir() if p.is_dir() and any(p.glob("*instances.csv"))):
        seen = set()
        for onnx_rel, vnn_rel, _ in read_instances(folder):
            if onnx_rel not in seen:
                seen.add(onnx_rel)
                out.append((folder.name, onnx_rel, vnn_rel))
    return out


# --------------------------------------------------------------------------- onnxruntime
def ort_session(model_or_path):
    import onnxruntime as ort

    from frontends.onnx.files import read_model_bytes

    data = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) \
        else read_model_bytes(model_or_path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def ort_run_batch(session, xs: np.ndarray) -> np.ndarray:
    """Run a batch of flat inputs one by one (benchmark models often fix the batch axis to 1)."""
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    dtype = np.float64 if "double" in inp.type else np.float32
    out = [np.asarray(session.run(None, {inp.name: np.asarray(x, dtype=dtype).reshape(shape)})[0],
                      dtype=np.float64).reshape(-1) for x in xs]
    return np.stack(out)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(1, max |b|)."""
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


# --------------------------------------------------------------------------- model builder
class Builder:
    """Accumulates initializers and nodes; ``model()`` returns a checked ModelProto."""

    def __init__(self, seed: int, in_shape, in_name: str = "x"):
        self.rng = np.random.default_rng(seed)
        self.in_name = in_name
        self.in_shape = list(in_shape)
        self.inits: list = []
        self.nodes: list = []
        self.k = 0

    def name(self, base: str) -> str:
        self.k += 1
        return f"{base}_{self.k}"

    def const(self, arr, base="c") -> str:
        n = self.name(base)
        arr = np.asarray(arr)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        self.inits.append(numpy_helper.from_array(arr, n))
        return n

    def rand(self, *shape, scale=None) -> np.ndarray:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        s = scale if scale is not None else 1.0 / np.sqrt(max(1, fan_in))
        return (self.rng.standard_normal(shape) * s).astype(np.float32)

    def node(self, op, ins, node_name=None, **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, list(ins), [out], name=node_name or self.name(op), **attrs))
        return out

    # layers ----------------------------------------------------------------
    def gemm(self, x, n_in, n_out, trans_b=True, relu=True) -> str:
        w = self.rand(n_out, n_in) if trans_b else self.rand(n_in, n_out)
        b = self.rand(n_out, scale=0.3)
        y = self.node("Gemm", [x, self.const(w, "W"), self.const(b, "b")], transB=int(trans_b))
        return self.node("Relu", [y]) if relu else y

    def matmul_add(self, x, n_in, n_out, relu=True) -> str:
        y = self.node("MatMul", [x, self.const(self.rand(n_in, n_out), "W")])
        y = self.node("Add", [y, self.const(self.rand(n_out, scale=0.3), "b")])
        return self.node("Relu", [y]) if relu else y

    def conv(self, x, c_in, c_out, k=3, stride=1, pad=1, group=1, relu=True, pads=None, dilation=1) -> str:
        w = self.rand(c_out, c_in // group, k, k)
        b = self.rand(c_out, scale=0.3)
        y = self.node("Conv", [x, self.const(w, "W"), self.const(b, "b")], kernel_shape=[k, k],
                      strides=[stride, stride], pads=pads or [pad] * 4, group=group, dilations=[dilation] * 2)
        return self.node("Relu", [y]) if relu else y

    def bn(self, x, c) -> str:
        scale = (1 + 0.3 * self.rng.standard_normal(c)).astype(np.float32)
        bias = (0.2 * self.rng.standard_normal(c)).astype(np.float32)
        mean = (0.2 * self.rng.standard_normal(c)).astype(np.float32)
        var = (0.5 + self.rng.random(c)).astype(np.float32)
        return self.node("BatchNormalization", [x] + [self.const(v, "bn") for v in (scale, bias, mean, var)],
                         epsilon=1e-3)

    def normalise(self, x, shape) -> str:
        """(x - mean) / std with per-channel constants (Sub/Div input normalisation)."""
        c = shape[1] if len(shape) > 1 else 1
        cshape = [1, c] + [1] * (len(shape) - 2)
        mean = (0.3 * self.rng.standard_normal(cshape)).astype(np.float32)
        std = (0.5 + self.rng.random(cshape)).astype(np.float32)
        y = self.node("Sub", [x, self.const(mean, "mean")])
        return self.node("Div", [y, self.const(std, "std")])

    def flatten(self, x) -> str:
        return self.node("Flatten", [x], axis=1)

    def reshape(self, x, shape) -> str:
        return self.node("Reshape", [x, self.const(np.array(shape, dtype=np.int64), "shape")])

    def model(self, out: str, out_shape=None, batch_param: str | None = None) -> onnx.ModelProto:
        in_shape = list(self.in_shape)
        if batch_param:
            in_shape[0] = batch_param
        inp = helper.make_tensor_value_info(self.in_name, TensorProto.FLOAT, in_shape)
        outp = helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)
        g = helper.make_graph(self.nodes, "test", [inp], [outp], initializer=self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
        m.ir_version = IR_VERSION
        if out_shape is None:  # take the output shape from onnx's shape inference
            inferred = onnx.shape_inference.infer_shapes(m)
            vi = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
            m.graph.output[0].type.CopyFrom(vi[out].type)
        onnx.checker.check_model(m)
        return m


# --------------------------------------------------------------------------- model zoo
def make_fc(seed=0, sizes=(2, 5, 4, 3), gemm=True, normalise=False) -> onnx.ModelProto:
    """ReLU MLP ``sizes[0] -> ... -> sizes[-1]`` (no ReLU on the last layer); input (1, n)."""
    b = Builder(seed, [1, sizes[0]])
    x = b.in_name
    if normalise:
        x = b.normalise(x, [1, sizes[0]])
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        x = b.gemm(x, n_in, n_out, relu=not last) if gemm else b.matmul_add(x, n_in, n_out, relu=not last)
    return b.model(x)


def make_conv(seed=0, c=2, hw=8, n_out=4) -> onnx.ModelProto:
    """Sub/Div normalisation, conv (stride 2, padding), grouped conv, BN, AveragePool, Flatten, Gemm."""
    b = Builder(seed, [1, c, hw, hw])
    x = b.normalise(b.in_name, [1, c, hw, hw])
    x = b.conv(x, c, 4, k=3, stride=2, pad=1)  # 4 x hw/2 x hw/2
    x = b.conv(x, 4, 4, k=3, stride=1, pad=1, group=2, relu=False)
    x = b.node("Relu", [b.bn(x, 4)])
    x = b.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])  # 4 x hw/4 x hw/4
    x = b.conv(x, 4, 3, k=2, stride=1, pads=[0, 0, 1, 1])  # asymmetric padding
    x = b.flatten(x)
    n = 3 * (hw // 4) * (hw // 4)
    x = b.gemm(x, n, 6)
    return b.model(b.gemm(x, 6, n_out, relu=False))


def make_residual(seed=0, n_in=3, width=6, n_out=3, conv=False) -> onnx.ModelProto:
    """Two residual blocks: ``y = relu(x + f(x))`` and a Sub of two branches, then a head."""
    if conv:
        b = Builder(seed, [1, 2, 4, 4])
        x = b.conv(b.in_name, 2, 3, k=3, pad=1)
        br = b.conv(b.conv(x, 3, 3, k=3, pad=1), 3, 3, k=1, pad=0, relu=False)
        x = b.node("Relu", [b.node("Add", [x, br])])
        br2 = b.conv(x, 3, 3, k=3, pad=1, relu=False)
        x = b.node("Relu", [b.node("Sub", [br2, x])])
        x = b.flatten(x)
        return b.model(b.gemm(x, 48, n_out, relu=False))
    b = Builder(seed, [1, n_in])
    x = b.gemm(b.in_name, n_in, width)
    br = b.gemm(b.gemm(x, width, width), width, width, relu=False)
    x = b.node("Relu", [b.node("Add", [x, br])])
    br2 = b.gemm(x, width, width, relu=False)
    x = b.node("Relu", [b.node("Sub", [br2, x])])
    return b.model(b.gemm(x, width, n_out, relu=False))


def make_misc(seed=0) -> onnx.ModelProto:
    """Transpose, Gemm transA / transB=0, MatMul with a constant left operand, Reshape, BN on 2-D."""
    b = Builder(seed, [1, 2, 3, 2])
    x = b.node("Transpose", [b.in_name], perm=[0, 2, 3, 1])  # (1, 3, 2, 2): a perm that is not its own inverse
    x = b.reshape(x, [1, 3, 4])
    x = b.node("MatMul", [b.const(b.rand(5, 3), "L"), x])  # constant @ x: (1, 5, 4)
    x = b.node("Relu", [b.node("Add", [x, b.const(b.rand(1, 5, 4, scale=0.3), "b")])])
    x = b.reshape(x, [20, 1])  # (20, 1)
    w = b.rand(20, 6)
    x = b.node("Gemm", [x, b.const(w, "W"), b.const(b.rand(1, 6, scale=0.3), "b")], transA=1, alpha=0.7,
               beta=1.5)  # (1, 6)
    x = b.node("Relu", [x])
    x = b.node("Gemm", [x, b.const(b.rand(6, 5), "W"), b.const(b.rand(5, scale=0.3), "b")], transB=0)
    x = b.node("Relu", [b.bn(x, 5)])
    x = b.node("Mul", [x, b.const(np.array([2.0, -1.0, 0.5, 1.0, 3.0], dtype=np.float32), "m")])
    return b.model(b.gemm(x, 5, 3, relu=False))


def make_branches(seed=0) -> onnx.ModelProto:
    """Odd DAG shapes: ReLU straight on the input, a branch added to the input, two ReLUs on one
    pre-activation, a broadcast Add of a (1, 4) and a (1, 1) branch, chained constant Scale nodes,
    and a ReLU as the network output."""
    b = Builder(seed, [1, 3])
    x = b.in_name
    y = b.node("Add", [b.node("Relu", [x]), x])
    h = b.gemm(y, 3, 5, relu=False)
    y = b.node("Sub", [b.node("Relu", [h]), b.node("Relu", [b.node("Relu", [h])])])
    y = b.node("Add", [y, h])
    y = b.node("Mul", [b.node("Add", [y, b.const(b.rand(5), "t")]), b.const(b.rand(1, 5), "s")])
    y = b.node("Add", [b.gemm(y, 5, 4), b.gemm(y, 5, 1)])
    return b.model(b.node("Relu", [b.gemm(y, 4, 3, relu=False)]))


def make_unsupported(seed=0) -> onnx.ModelProto:
    """A model with two unsupported nodes: 'hard_1' (Hardmax) and 'wave_2' (Asin)."""
    b = Builder(seed, [1, 3])
    x = b.gemm(b.in_name, 3, 4)
    x = b.node("Asin", [x], node_name="wave_2")
    x = b.gemm(x, 4, 3, relu=False)
    return b.model(b.node("Hardmax", [x], node_name="hard_1", axis=1))


def save(model: onnx.ModelProto, path: Path, gz: bool = False) -> Path:
    data = model.SerializeToString()
    if gz:
        path = Path(str(path) + ".gz") if not str(path).endswith(".gz") else path
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def box_vnnlib(lo, hi, C=None, d=None) -> str:
    """A VNN-LIB text: the box ``lo <= X <= hi`` and one disjunct ``C y <= d`` (default ``Y_0 <= Y_1``)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    lines = [f"(declare-const X_{i} Real)" for i in range(lo.size)]
    n_out = 2 if C is None else np.asarray(C).shape[1]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i, (a, c) in enumerate(zip(lo, hi)):
        lines += [f"(assert (>= X_{i} {float(a)!r}))", f"(assert (<= X_{i} {float(c)!r}))"]
    if C is None:
        lines.append("(assert (<= Y_0 Y_1))")
    else:
        for row, v in zip(np.asarray(C, float), np.asarray(d, float)):
            terms = " ".join(f"(* {float(c)!r} Y_{j})" for j, c in enumerate(row) if c != 0)
            lines.append(f"(assert (<= (+ {terms}) {float(v)!r}))")
    return "\n".join(lines) + "\n"


ZOO = {
    "fc": lambda seed: make_fc(seed, sizes=(4, 8, 8, 3), normalise=True),
    "fc_matmul": lambda seed: make_fc(seed, sizes=(3, 6, 5, 2), gemm=False),
    "conv": lambda seed: make_conv(seed),
    "residual": lambda seed: make_residual(seed),
    "residual_conv": lambda seed: make_residual(seed, conv=True),
    "misc": lambda seed: make_misc(seed),
    "branches": lambda seed: make_branches(seed),
}


@pytest.fixture(params=sorted(ZOO))
def zoo_model(request):
    """(name, ModelProto) for each generated model kind."""
    return request.param, ZOO[request.param](0)
