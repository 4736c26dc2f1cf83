"""Seeded mutations of the shipped examples and the benchmark files, and a forking runner that judges ``verify``
on each mutated input (used by ``tests/test_fuzz.py`` and ``benchmarks/fuzz.py``).

Mutations (``SPEC_MUTATIONS``, ``MODEL_MUTATIONS``, ``MODEL_BYTE_MUTATIONS``; ``ALL_KINDS`` names them)
    VNN-LIB (1.0 and 2.0) text: token deletion, duplication, insertion and swaps, truncation, parenthesis removal
    and addition, bad numbers (``1e400``, ``nan``, Arabic-Indic and full-width digits, ...), extreme valid
    numbers, unknown names and out-of-range indices, deep nesting (of ``(or (and`` and of terms), huge 2.0
    declarations and 2.0 structure (version, repeated declarations), empty boxes, trivially true and dropped output
    rows, strict comparisons, byte flips, non-UTF-8 bytes, corrupt gzip, empty files, garbage, wrong types, shapes
    and case, comments, whitespace, very long tokens, a spec paired with a model of other sizes, tens of thousands
    of disjuncts, tens of megabytes of spec, and rewrites with the same meaning. ONNX: removed, retyped,
    truncated, duplicated or external initializers, NaN / inf / huge weights, input and output element types and
    dims, opsets and IR versions, custom domains, unknown ops, duplicated and extra outputs, dropped and
    reordered nodes, an empty graph, removed, retyped and out-of-range attributes, wrong value_info, truncated and
    flipped bytes, empty files, corrupt gzip, and rewrites that onnxruntime computes the same.

    Sources: the shipped examples (``vnnlib_specs``, 1.0 and 2.0), a seeded sample of the small specs of
    ``../shared/benchmarks/{test,acasxu,mnist_fc,eran,oval21}`` when that folder exists (specs up to 100 kB), and
    a conv / MaxPool / Gemm net written here (``gen_pool_model``).

    Every case records its kind, its seed and an expectation: ``error`` (certainly invalid: a bad number where a
    number must be, unbalanced parentheses, an undeclared name, a model that onnxruntime refuses), ``sat`` (the
    unsafe set is every output: the only right verdict is ``sat``), ``same:V`` (a rewrite with the meaning of a
    pair whose answer V is known from ``expected.csv``: the opposite verdict is wrong) or ``any`` (may still be
    valid). Whether a mutated model is valid is decided by onnxruntime itself: an ``InferenceSession`` on the
    mutated bytes and one run on zeros of the declared input; if either fails, the expectation is ``error``.

Runner
    The verifier is imported once in the parent; each case is a ``fork`` whose fds 1 and 2 go to files, with
    ``RLIMIT_AS`` at the parent's address space plus 1.5 x the memory cap, calling
    ``verifier.cli.main.main(argv)`` (``--timeout T --threads 1``). The parent keeps at most ``jobs`` children and
    kills one (its process group) as hung once its wall time is past T + ``hang_grace`` and its CPU time past
    T + 1 s, or its wall time is past 4 x (T + ``hang_grace``) whatever its CPU time (a deadlock); it reads the
    exit status, CPU time and peak RSS (``wait4``), stdout and stderr.

Judging (the classes of :data:`CLASSES`)
    traceback: "Traceback" on stderr, or an exit status other than 0 and 2, or a signal.
    wrong-exit: the first stdout line is ``error`` but the status is not 2, or the other way round, or the first
    line is not a verdict word.
    verdict-on-invalid: a verdict (not ``error``) where ``error`` was expected; a ``timeout`` counts unless the
    file is over 1 MB or the run was starved (its wall time reached T with under T / 2 of CPU time).
    wrong-verdict: not ``sat`` where ``sat`` is the only right answer (a starved ``timeout`` excepted), or, for
    ``same:V``, ``sat`` / ``unsat`` other than V.
    overrun: killed as hung, or wall time over T + 1 s with CPU time over T + 1 s too (a machine shared with
    other jobs stretches wall time, not CPU time, and the child runs one thread).
    memory: peak RSS over the parent's by more than the cap (an estimate: pages the child never touches are not
    counted), or a MemoryError / failed allocation on stderr.
    bad-reason: ``error`` but stderr is not exactly one line naming the spec or model file (path or basename) or
    an ONNX node (``node``), and, for kinds whose fault has a place, ``file:LINE`` or ``line N``.
    invalid-counterexample: ``sat`` whose printed counterexample fails the check below.

Counterexample check (independent of the verifier's own reader)
    The printed X is run through onnxruntime on the model as it was handed to the verifier (mutated or not);
    the printed Y must match that output within rtol 1e-3 (atol 1e-5), and the spec text (as mutated) is
    evaluated by a small VNN-LIB evaluator here (:func:`eval_spec`: 1.0 ``X_i`` / ``Y_j``, 2.0 one input and one
    output tensor) at (X, onnxruntime's Y): every assert must hold, non-strict comparisons within 1e-4 (the
    competition's tolerance), strict ones (``<``, ``>``) exactly. Where the evaluator cannot read the spec (an
    unusual construct), the project's ``load_spec`` + ``frontends.result_file.check_counterexample`` decide.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import os
import random
import re
import resource
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "vnnlib_specs"
BENCH = ROOT.parent / "shared" / "benchmarks"

CLASSES = ("traceback", "wrong-exit", "verdict-on-invalid", "wrong-verdict", "overrun", "memory", "bad-reason",
           "invalid-counterexample")
VERDICTS = ("sat", "unsat", "unknown", "timeout", "error")
MAX_SOURCE_BYTES = 100_000  # benchmark specs above this (after gunzip) are not mutated


# =========================================================================== sources
@dataclass(frozen=True)
class Pair:
    """A model and a spec that belong together (the source of a mutation; the other file stays as it is)."""
    model: str
    spec: str
    name: str
    expected: str | None = None  # "sat" / "unsat" where known (expected.csv: what the competition tools answered)


def read_bytes(path: str | os.PathLike) -> bytes:
    data = Path(path).read_bytes()
    return gzip.decompress(data) if str(path).endswith(".gz") else data


def _rows(folder: Path) -> list[tuple[str, str]]:
    path = folder / "instances.csv"
    if not path.exists():
        found = sorted(folder.glob("*instances.csv"))
        if not found:
            return []
        path = found[0]
    out = []
    with open(path) as f:
        for row in csv.reader(f):
            if len(row) >= 2 and row[0].strip():
                out.append((row[0].strip(), row[1].strip()))
    return out


def _existing(folder: Path, rel: str) -> Path | None:
    for cand in (folder / rel, folder / (rel + ".gz")):
        if cand.exists():
            return cand
    return None


def _expected(folder: Path) -> dict:
    out = {}
    path = folder / "expected.csv"
    if path.exists():
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get("expected") in ("sat", "unsat"):
                    out[(row["onnx"].strip(), row["vnnlib"].strip())] = row["expected"]
    return out


def SHIPPED_PAIRS() -> list[Pair]:  # noqa: N802 - a table
    """The shipped examples with their answers (``../shared/benchmarks/test/expected.csv``; ACAS Xu 1_1 prop 1:
    unsat, ``acasxu/expected.csv``)."""
    s = SPECS
    return [
        Pair(str(s / "test_small.onnx"), str(s / "test_small.vnnlib"), "small", "unsat"),
        Pair(str(s / "test_tiny.onnx"), str(s / "test_tiny.vnnlib"), "tiny", "unsat"),
        Pair(str(s / "test_nano.onnx"), str(s / "test_nano.vnnlib"), "nano", "unsat"),
        Pair(str(s / "test_sat.onnx"), str(s / "test_prop.vnnlib"), "sat", "sat"),
        Pair(str(s / "test_unsat.onnx"), str(s / "test_prop.vnnlib"), "unsat", "unsat"),
        Pair(str(s / "ACASXU_run2a_1_1_batch_2000.onnx.gz"), str(s / "prop_1.vnnlib.gz"), "acas", "unsat"),
    ]


def spec_sources(seed: int = 0, per_benchmark: int = 6, bench: Path = BENCH,
                 max_model_bytes: int = 3_000_000) -> list[Pair]:
    """The shipped specs (1.0 and 2.0) with their models, and a seeded sample of small benchmark specs (of
    models up to ``max_model_bytes`` on disk)."""
    s = SPECS
    acas = s / "ACASXU_run2a_1_1_batch_2000.onnx.gz"
    pairs = SHIPPED_PAIRS() + [Pair(str(s / "test_tiny.onnx"), str(s / "v2" / "test_tiny.vnnlib"), "v2-tiny", "unsat"),
                               Pair(str(s / "test_nano.onnx"), str(s / "v2" / "test_nano.vnnlib"), "v2-nano", "unsat"),
                               Pair(str(s / "test_sat.onnx"), str(s / "v2" / "test_prop.vnnlib"), "v2-sat", "sat")]
    pairs += [Pair(str(acas), str(s / "v2" / f"acasxu_prop_{k}.vnnlib"), f"v2-acas{k}", "unsat") for k in (1, 2, 3)]
    if bench.is_dir():
        rng = random.Random(f"sources:{seed}")
        for name in ("test", "acasxu", "mnist_fc", "eran", "oval21"):
            folder = bench / name
            rows = []
            expected = _expected(folder)
            for onnx_rel, spec_rel in _rows(folder) if folder.is_dir() else []:
                m, v = _existing(folder, onnx_rel), _existing(folder, spec_rel)
                if m is None or v is None or "sigmoid" in m.name.lower():
                    continue
                if v.stat().st_size > MAX_SOURCE_BYTES or len(read_bytes(v)) > MAX_SOURCE_BYTES:
                    continue  # big specs: the huge-file mutations cover size
                if m.stat().st_size > max_model_bytes:
                    continue
                rows.append(Pair(str(m), str(v), f"{name}/{v.name}", expected.get((onnx_rel, spec_rel))))
            rows = sorted(set(rows), key=lambda p: (p.spec, p.model))
            pairs += rng.sample(rows, min(per_benchmark, len(rows)))
    return pairs


def gen_pool_model(folder: Path) -> Pair:
    """A small conv net written here with onnx.helper: Conv (strides, pads, kernel_shape), Relu, MaxPool
    (kernel_shape, strides), Flatten (axis), Gemm (transB), and a box spec with a one-row output constraint."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    model_path, spec_path = folder / "gen_pool.onnx", folder / "gen_pool.vnnlib"
    if model_path.exists() and spec_path.exists():
        return Pair(str(model_path), str(spec_path), "gen-pool")
    rng = np.random.default_rng(7)
    w1 = (rng.standard_normal((2, 1, 3, 3)) * 0.5).astype(np.float32)
    b1 = (rng.standard_normal(2) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((3, 8)) * 0.5).astype(np.float32)
    b2 = (rng.standard_normal(3) * 0.1).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "conv_w"), (b1, "conv_b"), (w2, "fc_w"), (b2, "fc_b"))]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], name="conv", kernel_shape=[3, 3], strides=[1, 1],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
    ]
    g = helper.make_graph(nodes, "gen_pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="fuzzing")
    m.ir_version = 8
    onnx.checker.check_model(m)
    model_path.write_bytes(m.SerializeToString())
    lines = [f"(declare-const X_{i} Real)" for i in range(16)] + [f"(declare-const Y_{j} Real)" for j in range(3)]
    for i in range(16):
        lines += [f"(assert (>= X_{i} 0.0))", f"(assert (<= X_{i} 0.1))"]
    lines.append("(assert (>= Y_0 Y_1))")
    spec_path.write_text("\n".join(lines) + "\n")
    return Pair(str(model_path), str(spec_path), "gen-pool")


def model_sources(workdir: Path) -> list[Pair]:
    """Small models with a spec that fits them: the shipped test nets, ACAS Xu and the generated conv / MaxPool /
    Gemm net."""
    return SHIPPED_PAIRS() + [gen_pool_model(workdir / "_sources")]


# =========================================================================== VNN-LIB text
COMPARISONS = ("<=", ">=", "<", ">", "=")
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass
class Tok:
    kind: str  # "(" ")" "atom"
    text: str
    start: int
    end: int


def comment_spans(text: str) -> list[tuple[int, int]]:
    spans, i = [], 0
    while True:
        j = text.find(";", i)
        if j < 0:
            return spans
        k = text.find("\n", j)
        k = len(text) if k < 0 else k
        spans.append((j, k))
        i = k


def tokens(text: str) -> list[Tok]:
    """Parentheses and atoms outside comments; ``[...]`` (with any spaces inside) belongs to its atom."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == ";":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in "()":
            out.append(Tok(c, c, i, i + 1))
            i += 1
        elif c.isspace():
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "();":
                if text[j] == "[":
                    k = text.find("]", j)
                    j = n if k < 0 else k + 1
                else:
                    j += 1
            out.append(Tok("atom", text[i:j], i, j))
            i = j
    return out


@dataclass
class Node:
    """A parenthesised list with its span; items are Nodes or atom Toks."""
    start: int
    end: int
    items: list = field(default_factory=list)

    def head(self) -> str | None:
        return self.items[0].text if self.items and isinstance(self.items[0], Tok) else None


def parse_tree(text: str) -> list | None:
    """Top-level Nodes (and stray atoms); None when the parentheses do not balance."""
    stack: list[Node] = []
    top: list = []
    for t in tokens(text):
        if t.kind == "(":
            stack.append(Node(t.start, -1))
        elif t.kind == ")":
            if not stack:
                return None
            node = stack.pop()
            node.end = t.end
            (stack[-1].items if stack else top).append(node)
        else:
            # a 2.0 index written apart from its name: ``X [0,0,0,4]``
            target = stack[-1].items if stack else top
            if t.text.startswith("[") and target and isinstance(target[-1], Tok) and "[" not in target[-1].text:
                prev = target[-1]
                target[-1] = Tok("atom", prev.text + t.text, prev.start, t.end)
            else:
                target.append(t)
    return None if stack else top


def walk(nodes):
    for n in nodes:
        if isinstance(n, Node):
            yield n
            yield from walk(n.items)


def atoms(nodes):
    for n in nodes:
        if isinstance(n, Node):
            yield from atoms(n.items)
        else:
            yield n


def paren_depth_ok(text: str) -> bool:
    depth = 0
    for t in tokens(text):
        depth += {"(": 1, ")": -1}.get(t.kind, 0)
        if depth < 0:
            return False
    return depth == 0


def is_v2(text: str) -> bool:
    return "vnnlib-version" in text or "declare-network" in text


@dataclass
class SpecInfo:
    v2: bool
    input_name: str
    output_name: str
    input_shape: tuple
    output_shape: tuple
    n_inputs: int
    n_outputs: int

    def var_kind(self, atom: str) -> str | None:
        """'in', 'out' or None for an atom naming a variable."""
        if self.v2:
            m = re.match(r"^([A-Za-z_][\w.-]*)\[", atom)
            name = m.group(1) if m else None
        else:
            m = re.match(r"^([A-Za-z_][\w.-]*?)_\d+$", atom)
            name = m.group(1) if m else None
        if name == self.input_name:
            return "in"
        if name == self.output_name:
            return "out"
        return None

    def out_var(self, flat: int) -> str:
        if not self.v2:
            return f"{self.output_name}_{flat}"
        idx, rest = [], flat
        for d in reversed(self.output_shape or (1,)):
            idx.append(rest % d)
            rest //= d
        return f"{self.output_name}[{','.join(str(i) for i in reversed(idx))}]"


def spec_info(text: str) -> SpecInfo | None:
    if is_v2(text):
        mi = re.search(r"\(\s*declare-input\s+(\S+)\s+\S+\s+\[([^\]]*)\]", text)
        mo = re.search(r"\(\s*declare-output\s+(\S+)\s+\S+\s+\[([^\]]*)\]", text)
        if not mi or not mo:
            return None
        try:
            ish = tuple(int(v) for v in mi.group(2).replace(" ", "").split(",") if v)
            osh = tuple(int(v) for v in mo.group(2).replace(" ", "").split(",") if v)
        except ValueError:
            return None
        return SpecInfo(True, mi.group(1), mo.group(1), ish, osh, math.prod(ish), math.prod(osh))
    xs = re.findall(r"\(\s*declare-const\s+X_(\d+)\s", text)
    ys = re.findall(r"\(\s*declare-const\s+Y_(\d+)\s", text)
    return SpecInfo(False, "X", "Y", (len(xs),), (len(ys),), len(xs), len(ys))


def splice(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


# --------------------------------------------------------------------------- spec mutations
# each: (rng, text, info) -> (bytes or str, expectation, note) or None when it does not apply to this text

BAD_NUMBERS = ("1e400", "-1e400", "nan", "NaN", "inf", "-inf", "\u0663", "\uff13", "\u0661.\u0665", "1..2", "--1",
               "0x10", "", "1,5", "1_000", "+-3", "1e", ".", "e5", "#x10")


def _comparisons(tree) -> list[Node]:
    return [n for n in walk(tree) if n.head() in COMPARISONS and len(n.items) == 3]


def _asserts(tree) -> list[Node]:
    return [n for n in tree if isinstance(n, Node) and n.head() == "assert"]


def _var_kinds(node: Node, info: SpecInfo) -> set:
    return {info.var_kind(a.text) for a in atoms([node])} - {None}


def m_delete_token(rng, text, info):
    toks = [t for t in tokens(text) if t.kind == "atom"]
    if not toks:
        return None
    t = rng.choice(toks)
    return splice(text, t.start, t.end, ""), "any", f"deleted {t.text!r} at byte {t.start}"


def m_dup_token(rng, text, info):
    toks = [t for t in tokens(text) if t.kind == "atom"]
    if not toks:
        return None
    t = rng.choice(toks)
    return splice(text, t.start, t.end, t.text + " " + t.text), "any", f"duplicated {t.text!r} at byte {t.start}"


def m_truncate(rng, text, info):
    if len(text) < 2:
        return None
    cut = rng.randrange(1, len(text))
    new = text[:cut]
    return new, ("any" if paren_depth_ok(new) else "error"), f"truncated at byte {cut} of {len(text)}"


def m_remove_paren(rng, text, info):
    toks = [t for t in tokens(text) if t.kind in "()"]
    if not toks:
        return None
    t = rng.choice(toks)
    return splice(text, t.start, t.end, ""), "error", f"removed {t.text!r} at byte {t.start}"


def m_add_paren(rng, text, info):
    toks = tokens(text)
    if not toks:
        return None
    t = rng.choice(toks)
    p = rng.choice("()")
    return splice(text, t.start, t.start, p), "error", f"added {p!r} at byte {t.start}"


def _number_tokens(text) -> list:
    """The number literals that are operands of a comparison in ``text`` (empty when it does not parse)."""
    tree = parse_tree(text)
    if tree is None:
        return []
    return [a for c in _comparisons(tree) for a in c.items[1:] if isinstance(a, Tok) and NUMBER.match(a.text)]


def m_bad_number(rng, text, info):
    cands = _number_tokens(text)
    if not cands:
        return None
    t, bad = rng.choice(cands), rng.choice(BAD_NUMBERS)
    return splice(text, t.start, t.end, bad), "error", f"number {t.text!r} -> {bad!r} at byte {t.start}"


def _variable_atoms(text, info, where="assert"):
    tree = parse_tree(text)
    if tree is None:
        return []
    return [a for n in _asserts(tree) for a in atoms([n]) if info.var_kind(a.text)]


def m_unknown_name(rng, text, info):
    cands = _variable_atoms(text, info)
    if not cands:
        return None
    t = rng.choice(cands)
    leading_zero = re.sub(r"_(\d+)$", r"_0\1", t.text)  # X_03 is not X_3
    new = rng.choice(["Q[0]", "Z[0,0]", "x[0]"] if info.v2 else
                     ["Z_0", "x_0", "X_", "X__1", "X_0_0", "Xs_1", "foo", leading_zero, t.text + ".0", "X_+1"])
    return splice(text, t.start, t.end, new), "error", f"variable {t.text!r} -> {new!r} at byte {t.start}"


def m_out_of_range(rng, text, info):
    cands = _variable_atoms(text, info)
    if not cands:
        return None
    t = rng.choice(cands)
    kind = info.var_kind(t.text)
    if info.v2:
        shape = info.input_shape if kind == "in" else info.output_shape
        name = info.input_name if kind == "in" else info.output_name
        if not shape:
            return None
        idx = [0] * len(shape)
        ax = rng.randrange(len(shape))
        idx[ax] = rng.choice([shape[ax], shape[ax] + 998, -1])
        new = f"{name}[{','.join(str(i) for i in idx)}]"
    else:
        n = info.n_inputs if kind == "in" else info.n_outputs
        new = f"{'X' if kind == 'in' else 'Y'}_{rng.choice([n, 999, -1, 99999999999999999999])}"
    return splice(text, t.start, t.end, new), "error", f"variable {t.text!r} -> {new!r} at byte {t.start}"


def _last_assert(text):
    tree = parse_tree(text)
    if tree is None:
        return None
    asserts = [a for a in _asserts(tree) if len(a.items) == 2 and isinstance(a.items[1], Node)]
    return asserts[-1] if asserts else None


def nest(text: str, depth: int) -> str | None:
    a = _last_assert(text)
    if a is None:
        return None
    inner = a.items[1]
    body = text[inner.start:inner.end]
    return splice(text, inner.start, inner.end, "(or (and " * depth + body + "))" * depth)


def m_deep_nesting(rng, text, info):
    depth = rng.choice([300, 500, 500, 1000, 5000, 50000])
    new = nest(text, depth)
    return None if new is None else (new, "any", f"last assert nested in (or (and ... x {depth}")


def m_huge_decl(rng, text, info):
    if info.v2:
        m = re.search(r"(\(\s*declare-input\s+\S+\s+\S+\s+)(\[[^\]]*\])", text)
        if not m:
            return None
        new = rng.choice(["[99999999999]", "[99999,99999,99999]", "[0]", "[-1]", "[1e9]", "[100000000000000000000]",
                          "[1,99999999999]"])
        return splice(text, m.start(2), m.end(2), new), "error", f"declare-input shape {m.group(2)} -> {new}"
    name = rng.choice(["X_99999999999", "X_4294967296", "X_100000"])
    return f"(declare-const {name} Real)\n" + text, "error", f"declared {name}"


def _input_bounds(tree, info):
    """{var: {'hi': [(tok, value)], 'lo': [...]}} of top-level (assert ... (and ...)) comparisons VAR vs NUMBER."""
    out: dict = {}

    def visit(n):
        if n.head() == "and":
            for c in n.items[1:]:
                if isinstance(c, Node):
                    visit(c)
        elif n.head() in ("<=", ">=") and len(n.items) == 3:
            a, b = n.items[1], n.items[2]
            if isinstance(a, Tok) and isinstance(b, Tok):
                if info.var_kind(a.text) == "in" and NUMBER.match(b.text):
                    side = "hi" if n.head() == "<=" else "lo"
                    out.setdefault(a.text, {"hi": [], "lo": []})[side].append((b, float(b.text)))
                elif info.var_kind(b.text) == "in" and NUMBER.match(a.text):
                    side = "lo" if n.head() == "<=" else "hi"
                    out.setdefault(b.text, {"hi": [], "lo": []})[side].append((a, float(a.text)))

    for a in _asserts(tree):
        if len(a.items) == 2 and isinstance(a.items[1], Node):
            visit(a.items[1])
    return out


def m_empty_box(rng, text, info):
    tree = parse_tree(text)
    if tree is None:
        return None
    bounds = {v: b for v, b in _input_bounds(tree, info).items() if b["hi"] and b["lo"]}
    if not bounds:
        return None
    var = rng.choice(sorted(bounds))
    lo = max(v for _, v in bounds[var]["lo"])
    tok, _ = rng.choice(bounds[var]["hi"])
    new = repr(lo - rng.choice([1.0, 0.5, 1e-3]))
    return splice(text, tok.start, tok.end, new), "error", f"upper bound of {var} {tok.text} -> {new} (below {lo})"


def _drop_output_asserts(text, info):
    """The text without its top-level asserts that mention only outputs; None if an assert mixes X and Y."""
    tree = parse_tree(text)
    if tree is None:
        return None
    drop = []
    for a in _asserts(tree):
        kinds = _var_kinds(a, info)
        if "out" in kinds:
            if "in" in kinds:
                return None
            drop.append(a)
    if not drop:
        return None
    for a in sorted(drop, key=lambda n: -n.start):
        text = splice(text, a.start, a.end, "")
    return text


def m_trivially_true(rng, text, info):
    base = _drop_output_asserts(text, info)
    if base is None or info.n_outputs < 1:
        return None
    j = rng.randrange(info.n_outputs)
    v = info.out_var(j)
    row = rng.choice([f"(assert (<= {v} {v}))", f"(assert (>= {v} {v}))", f"(assert (or (and (<= {v} {v}))))"])
    return base + row + "\n", "sat", f"output constraints replaced by {row}"


def m_drop_outputs(rng, text, info):
    base = _drop_output_asserts(text, info)
    return None if base is None else (base, "sat", "every output constraint removed (only the input box is left)")


def m_strict(rng, text, info):
    ops = [t for t in tokens(text) if t.kind == "atom" and t.text in ("<=", ">=")]
    if not ops:
        return None
    t = rng.choice(ops)
    new = t.text[0]
    return splice(text, t.start, t.end, new), "any", f"{t.text} -> {new} at byte {t.start}"


def m_strict_trivial(rng, text, info):
    base = _drop_output_asserts(text, info)
    if base is None or info.n_outputs < 1:
        return None
    v = info.out_var(rng.randrange(info.n_outputs))
    row = rng.choice([f"(assert (< {v} {v}))", f"(assert (> {v} {v}))"])
    return base + row + "\n", "any", f"output constraints replaced by the empty {row}"


def m_byte_flip(rng, text, info):
    data = bytearray(text.encode("utf-8", "surrogateescape"))
    if not data:
        return None
    k = rng.randint(1, 3)
    where = sorted(rng.randrange(len(data)) for _ in range(k))
    for w in where:
        data[w] ^= rng.randint(1, 255)
    return bytes(data), "any", f"flipped bytes at {where}"


def m_non_utf8(rng, text, info):
    toks = [t for t in tokens(text) if t.kind == "atom"]
    if not toks:
        return None
    t = rng.choice(toks)
    cut = rng.randint(t.start, t.end)
    raw = rng.choice([b"\xff", b"\xc3", b"\x80\x81", b"\xfe\xff", b"\xed\xa0\x80"])
    data = text[:cut].encode() + raw + text[cut:].encode()
    return data, "error", f"bytes {raw!r} inside {t.text!r} at byte {cut}"


def m_gzip_corrupt(rng, text, info):
    gz = bytearray(gzip.compress(text.encode(), mtime=0))
    how = rng.choice(["truncate", "crc", "size", "magic"])
    if how == "truncate":
        gz = gz[:rng.randrange(1, len(gz) - 1)]
    elif how == "crc":
        gz[-8 + rng.randrange(4)] ^= 0xFF
    elif how == "size":
        gz[-4 + rng.randrange(4)] ^= 0x5A
    else:
        gz[1] ^= 0xFF
    return bytes(gz), "error", f"gzip corrupted ({how})", ".gz"


def m_empty_file(rng, text, info):
    return rng.choice([b"", b"\n", b"   \n\t", b"; only a comment\n"]), "error", "empty file"


def m_garbage(rng, text, info):
    n = rng.choice([1, 16, 512, 4096])
    return b"\x00\xff" + bytes(rng.randrange(256) for _ in range(n)), "error", f"{n + 2} bytes of binary garbage"


def m_wrong_type(rng, text, info):
    if info.v2:
        m = re.search(r"(\(\s*declare-(?:input|output)\s+\S+\s+)(\S+)(\s+\[)", text)
        if not m:
            return None
        new = rng.choice(["Bool", "Int", "String", "Reals", "float33"])
        return splice(text, m.start(2), m.end(2), new), "error", f"element type {m.group(2)} -> {new}"
    decls = list(re.finditer(r"(\(\s*declare-const\s+\S+\s+)(Real)(\s*\))", text))
    if not decls:
        return None
    m = rng.choice(decls)
    new = rng.choice(["Int", "Bool", "String", "real", "Float32", "(_ BitVec 8)"])
    return splice(text, m.start(2), m.end(2), new), "error", f"declared type Real -> {new} at byte {m.start(2)}"


def m_shape_mismatch(rng, text, info):
    if info.v2:
        m = re.search(r"(\(\s*declare-(input|output)\s+\S+\s+\S+\s+)\[([^\]]*)\]", text)
        if not m:
            return None
        dims = [int(v) for v in m.group(3).replace(" ", "").split(",") if v]
        if not dims:
            return None
        ax = rng.randrange(len(dims))
        dims[ax] += rng.choice([1, 2, 7])
        new = "[" + ",".join(map(str, dims)) + "]"
        return splice(text, m.start(3) - 1, m.end(3) + 1, new), "error", f"declare-{m.group(2)} shape -> {new}"
    how = rng.choice(["extra-x", "extra-y", "drop-x"])
    if how == "extra-x":
        return text + f"\n(declare-const X_{info.n_inputs} Real)\n", "error", f"declared X_{info.n_inputs}"
    if how == "extra-y":
        return text + f"\n(declare-const Y_{info.n_outputs} Real)\n", "error", f"declared Y_{info.n_outputs}"
    last = info.n_inputs - 1
    m = re.search(rf"\(\s*declare-const\s+X_{last}\s+Real\s*\)", text)
    if not m or not re.search(rf"\bX_{last}\b", text[m.end():]):
        return None
    return splice(text, m.start(), m.end(), ""), "error", f"declaration of X_{last} removed (it is still used)"


def many_disjuncts(text: str, info: SpecInfo, n: int, rng) -> str | None:
    base = _drop_output_asserts(text, info)
    if base is None or info.n_outputs < 2:
        return None
    parts = []
    for _ in range(n):
        i, j = rng.sample(range(info.n_outputs), 2)
        parts.append(f"(and (<= {info.out_var(i)} {info.out_var(j)}))")
    return base + "(assert (or\n" + "\n".join(parts) + "\n))\n"


def m_many_disjuncts(rng, text, info):
    n = rng.choice([90_000, 200_000])
    new = many_disjuncts(text, info, n, rng)
    return None if new is None else (new, "any", f"output constraint replaced by {n} disjuncts")


def huge_spec(text: str, megabytes: float) -> str | None:
    """The spec with its top-level input-bound asserts repeated until it is ``megabytes`` long (same meaning)."""
    info = spec_info(text)
    tree = parse_tree(text)
    if tree is None or info is None:
        return None
    box = [text[a.start:a.end] for a in _asserts(tree) if _var_kinds(a, info) == {"in"}]
    if not box:
        return None
    block = "\n".join(box) + "\n"
    reps = max(1, int(megabytes * 1e6 / len(block)))
    return text + block * reps


def m_huge_file(rng, text, info):
    mb = rng.choice([20, 50])
    new = huge_spec(text, mb)
    return None if new is None else (new, "any", f"input asserts repeated to {mb} MB")


def m_unknown_op(rng, text, info):
    tree = parse_tree(text)
    if tree is None:
        return None
    heads = [n.items[0] for n in walk(tree) if isinstance(n.items[0] if n.items else None, Tok)
             and n.items[0].text in COMPARISONS + ("and", "or", "assert", "+", "-", "*")]
    if not heads:
        return None
    t = rng.choice(heads)
    new = rng.choice(["<==", "=>", "andd", "xor", "assret", "=<", "≤", "or!", "max"])
    return splice(text, t.start, t.end, new), "error", f"operator {t.text!r} -> {new!r} at byte {t.start}"


def m_empty_assert(rng, text, info):
    new = rng.choice(["(assert)", "(assert ())", "()", "(declare-const)", "(assert (<= ))", "(assert 3)",
                      "(assert (and))"])
    toks = [t for t in tokens(text) if t.kind == "("]
    tree = parse_tree(text)
    if not toks or tree is None:
        return None
    top = [n for n in tree if isinstance(n, Node)]
    at = rng.choice(top).end if top else len(text)
    expect = "any" if new == "(assert (and))" else "error"  # an empty conjunction is true in SMT-LIB
    return splice(text, at, at, "\n" + new + "\n"), expect, f"inserted {new} at byte {at}"


def m_redeclare(rng, text, info):
    decls = list(re.finditer(r"\(\s*declare-(?:const|input|output|network)\s+[^\n]*", text))
    decls = [d for d in decls if paren_depth_ok(d.group(0))]
    if not decls:
        return None
    d = rng.choice(decls)
    return splice(text, d.end(), d.end(), "\n" + d.group(0)), "error", f"declaration repeated: {d.group(0)[:60]}"


def m_comment(rng, text, info):
    toks = tokens(text)
    if not toks:
        return None
    t = rng.choice(toks)
    new = splice(text, t.start, t.start, ";")
    return new, ("any" if paren_depth_ok(new) else "error"), f"';' inserted at byte {t.start}"


def m_case_change(rng, text, info):
    # not Real in 2.0, whose reader takes element types in any case (frontends/vnnlib/v2_network.py, by design)
    words = ("assert", "declare-const", "and", "or", "declare-input", "declare-network")
    words += () if info.v2 else ("Real",)
    toks = [t for t in tokens(text) if t.kind == "atom" and t.text in words]
    if not toks:
        return None
    t = rng.choice(toks)
    new = rng.choice([t.text.upper(), t.text.capitalize() if t.text != "Real" else "real"])
    if new == t.text:
        new = t.text.upper()
    return splice(text, t.start, t.end, new), "error", f"{t.text!r} -> {new!r} (symbols are case-sensitive)"


def m_whitespace(rng, text, info):
    how = rng.choice(["crlf", "tabs", "no-space-between-lists", "nbsp"])
    if how == "crlf":
        return text.replace("\n", "\r\n"), "any", "CRLF line ends"
    if how == "tabs":
        return re.sub(r" +", "\t", text), "any", "spaces -> tabs"
    if how == "no-space-between-lists":
        return re.sub(r"\)\s+\(", ")(", text), "any", "no whitespace between lists"
    spaces = [m.start() for m in re.finditer(r"(?<=\S) (?=\S)", text)]
    if not spaces:
        return None
    at = rng.choice(spaces)
    return splice(text, at, at + 1, "\u00a0"), "any", f"no-break space at byte {at}"


def m_swap_xy(rng, text, info):
    cands = _variable_atoms(text, info)
    ins = [t for t in cands if info.var_kind(t.text) == "in"]
    if not ins or info.n_outputs < 1:
        return None
    t = rng.choice(ins)
    new = info.out_var(rng.randrange(info.n_outputs))
    return splice(text, t.start, t.end, new), "any", f"input {t.text} -> output {new} at byte {t.start}"


def m_equivalent(rng, text, info):
    """A rewrite with the same meaning: the verdict must not contradict the unmutated pair's ("same")."""
    tree = parse_tree(text)
    if tree is None:
        return None
    asserts = _asserts(tree)
    comps = _comparisons(tree)
    how = rng.choice(["flip", "shuffle", "duplicate", "wrap_and", "output_linear", "scale", "loose_bound",
                      "comments", "chain", "neg_literal"])
    if how == "chain" and comps:  # SMT-LIB comparisons chain: (<= a b b) is a <= b and b <= b
        c = rng.choice([c for c in comps if c.head() != "="] or comps)
        b_text = text[c.items[2].start:c.items[2].end]
        return splice(text, c.items[2].end, c.items[2].end, " " + b_text), "same", \
            f"{text[c.start:c.end][:60]} chained with its last operand"
    negs = [t for t in tokens(text) if t.kind == "atom" and NUMBER.match(t.text) and t.text.startswith("-")]
    if how == "neg_literal" and negs:
        t = rng.choice(negs)
        return splice(text, t.start, t.end, f"(- {t.text[1:]})"), "same", f"{t.text} -> (- {t.text[1:]})"
    if how == "flip" and comps:
        c = rng.choice(comps)
        op = {"<=": ">=", ">=": "<=", "<": ">", ">": "<", "=": "="}[c.head()]
        a, b = (text[i.start:i.end] for i in c.items[1:])
        return splice(text, c.start, c.end, f"({op} {b} {a})"), "same", f"flipped {text[c.start:c.end][:60]}"
    if how == "shuffle" and len(asserts) > 1:
        bodies = [text[n.start:n.end] for n in asserts]
        order = bodies[:]
        rng.shuffle(order)
        for n, new in sorted(zip(asserts, order), key=lambda t: -t[0].start):
            text = splice(text, n.start, n.end, new)
        return text, "same", f"{len(asserts)} asserts shuffled"
    if how == "duplicate" and asserts:
        n = rng.choice(asserts)
        return text + "\n" + text[n.start:n.end] + "\n", "same", f"assert at byte {n.start} repeated"
    if how == "wrap_and" and asserts:
        n = rng.choice([a for a in asserts if len(a.items) == 2] or [None])
        if n is None:
            return None
        inner = n.items[1]
        body = text[inner.start:inner.end] if isinstance(inner, Node) else inner.text
        return splice(text, n.start, n.end, f"(assert (and {body}))"), "same", f"assert at byte {n.start} in (and)"
    outs = [c for c in comps if all(isinstance(i, Tok) for i in c.items[1:])
            and _var_kinds(c, info) == {"out"} and c.head() in ("<=", ">=")]
    if how in ("output_linear", "scale") and outs:
        c = rng.choice(outs)
        a, b = (i.text for i in c.items[1:])
        new = f"({c.head()} (- {a} {b}) 0)" if how == "output_linear" else f"({c.head()} (* 2 {a}) (* 2.0 {b}))"
        return splice(text, c.start, c.end, new), "same", f"{text[c.start:c.end]} -> {new}"
    if how == "loose_bound":
        bounds = {v: b for v, b in _input_bounds(tree, info).items() if b["hi"]}
        if not bounds:
            return None
        var = rng.choice(sorted(bounds))
        hi = max(v for _, v in bounds[var]["hi"])
        return text + f"\n(assert (<= {var} {hi + 1.0!r}))\n", "same", f"redundant bound {var} <= {hi + 1.0!r}"
    if how == "comments":
        return re.sub(r"\n", lambda m: "\n; comment ( ) ;;\n\n" if rng.random() < 0.3 else "\n", text), "same", \
            "comments and blank lines between lines"
    return None


VOCABULARY = ("(", ")", "assert", "declare-const", "and", "or", "not", "<=", ">=", "<", ">", "=", "+", "-", "*",
              "/", "Real", "X_0", "Y_0", "X[0]", "Y[0,0]", "0", "-1", "1e-3", "0.5", "true", "false", "ite", "=>",
              "let", "declare-fun", "check-sat", "(assert", "))", "(or (and", "|X_0|", "#b101", "\"text\"", ":named")


def m_token_insert(rng, text, info):
    toks = tokens(text)
    if not toks:
        return None
    t = rng.choice(toks)
    word = rng.choice(VOCABULARY)
    new = splice(text, t.start, t.start, word + " ")
    return new, ("any" if paren_depth_ok(new) else "error"), f"{word!r} inserted at byte {t.start}"


def m_token_swap(rng, text, info):
    toks = [t for t in tokens(text) if t.kind == "atom"]
    if len(toks) < 2:
        return None
    a, b = sorted(rng.sample(toks, 2), key=lambda t: t.start)
    new = text[:a.start] + b.text + text[a.end:b.start] + a.text + text[b.end:]
    return new, "any", f"swapped {a.text!r} (byte {a.start}) and {b.text!r} (byte {b.start})"


EXTREME_NUMBERS = ("1e308", "-1e308", "3.4e38", "-3.5e38", "1e-320", "0", "-0", "-0.0", "1e-45",
                   "123456789012345678901234567890", "0.000000000000000000000000000001", "1e39", "65504.5")


def m_extreme_number(rng, text, info):
    cands = _number_tokens(text)
    if not cands:
        return None
    t, new = rng.choice(cands), rng.choice(EXTREME_NUMBERS)
    return splice(text, t.start, t.end, new), "any", f"number {t.text!r} -> {new} at byte {t.start}"


def m_v2_structure(rng, text, info):
    if not info.v2:
        return None
    how = rng.choice(["version3", "version-bare", "two-inputs", "output-named-as-input", "two-networks",
                      "no-version"])
    if how == "version3":
        return text.replace("<2.0>", rng.choice(["<3.0>", "<1.0>", "<>", "<two>"]), 1), "error", how
    if how == "version-bare":
        return text.replace("<2.0>", "2.0", 1), "any", how
    if how == "no-version":
        return re.sub(r"\(\s*vnnlib-version[^)]*\)", "", text, count=1), "any", how
    m = re.search(r"\(\s*declare-input\s+(\S+)\s+(\S+)\s+(\[[^\]]*\])\s*\)", text)
    if not m:
        return None
    if how == "two-inputs":
        extra = f"(declare-input {m.group(1)}2 {m.group(2)} {m.group(3)})"
        return splice(text, m.end(), m.end(), "\n    " + extra), "error", "a second declare-input"
    if how == "output-named-as-input":
        return re.sub(r"(\(\s*declare-output\s+)\S+", lambda mm: mm.group(1) + m.group(1), text, count=1), \
            "error", "the output declared with the input's name"
    net = re.search(r"\(\s*declare-network\b", text)
    if not net:
        return None
    tree = parse_tree(text)
    decl = next((n for n in tree or [] if isinstance(n, Node) and n.head() == "declare-network"), None)
    if decl is None:
        return None
    block = text[decl.start:decl.end]
    return splice(text, decl.end, decl.end, "\n" + block), "error", "the declare-network repeated"


def m_long_token(rng, text, info):
    n = rng.choice([10_000, 1_000_000])
    how = rng.choice(["name", "number", "comment"])
    if how == "comment":
        return text + "\n;" + "x" * n + "\n", "any", f"a {n}-character comment"
    cands = _variable_atoms(text, info) if how == "name" else \
        [t for t in tokens(text) if t.kind == "atom" and NUMBER.match(t.text)]
    if not cands:
        return None
    t = rng.choice(cands)
    new = ("Z" * n) if how == "name" else ("1" + "0" * n)
    return splice(text, t.start, t.end, new), "error", f"{t.text!r} -> a {n}-character {how} at byte {t.start}"


def m_deep_arith(rng, text, info):
    if info.n_outputs < 1:
        return None
    d = rng.choice([300, 5000])
    v = info.out_var(0)
    term = "(+ " * d + v + " 0)" * d
    return text + f"\n(assert (>= {term} -1e30))\n", "any", f"an output term nested {d} deep"


def m_wrong_pair(rng, text, info):
    return None  # made by make_wrong_pair_case (it needs the models)


SPEC_MUTATIONS = {
    "delete_token": m_delete_token,
    "dup_token": m_dup_token,
    "truncate": m_truncate,
    "remove_paren": m_remove_paren,
    "add_paren": m_add_paren,
    "bad_number": m_bad_number,
    "unknown_name": m_unknown_name,
    "out_of_range": m_out_of_range,
    "deep_nesting": m_deep_nesting,
    "huge_decl": m_huge_decl,
    "empty_box": m_empty_box,
    "trivially_true": m_trivially_true,
    "drop_outputs": m_drop_outputs,
    "strict": m_strict,
    "strict_trivial": m_strict_trivial,
    "byte_flip": m_byte_flip,
    "non_utf8": m_non_utf8,
    "gzip_corrupt": m_gzip_corrupt,
    "empty_file": m_empty_file,
    "garbage": m_garbage,
    "wrong_type": m_wrong_type,
    "shape_mismatch": m_shape_mismatch,
    "many_disjuncts": m_many_disjuncts,
    "huge_file": m_huge_file,
    "unknown_op": m_unknown_op,
    "empty_assert": m_empty_assert,
    "redeclare": m_redeclare,
    "comment": m_comment,
    "case_change": m_case_change,
    "whitespace": m_whitespace,
    "swap_xy": m_swap_xy,
    "equivalent": m_equivalent,
    "wrong_pair": m_wrong_pair,
    "token_insert": m_token_insert,
    "token_swap": m_token_swap,
    "extreme_number": m_extreme_number,
    "v2_structure": m_v2_structure,
    "long_token": m_long_token,
    "deep_arith": m_deep_arith,
}
# kinds whose fault has a place in the file: an error must name file:LINE (or "line N")
SPEC_NEEDS_LINE = {"bad_number", "unknown_name", "out_of_range", "unknown_op", "wrong_type", "non_utf8", "case_change"}
HEAVY_KINDS = {"spec:huge_file", "spec:many_disjuncts"}
HEAVY_TIMEOUT = 10.0  # heavy cases run at least this long: reading them must not be all that the budget allows


# =========================================================================== ONNX
def real_inputs(model) -> list:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def mo_remove_initializer(rng, m):
    if not m.graph.initializer:
        return None
    prefer = [i for i in m.graph.initializer if "b" in i.name.lower()]  # biases first, as in the issue
    init = rng.choice(prefer if prefer and rng.random() < 0.5 else list(m.graph.initializer))
    m.graph.initializer.remove(init)
    note = f"initializer {init.name!r} removed"
    listed = [i for i in m.graph.input if i.name == init.name]
    if listed and rng.random() < 0.7:
        m.graph.input.remove(listed[0])
        note += " (and its graph input)"
    return note


def mo_init_dtype(rng, m):
    import numpy as np
    from onnx import numpy_helper
    floats = [i for i in m.graph.initializer if i.data_type == 1]
    if not floats:
        return None
    init = rng.choice(floats)
    dt = rng.choice(["int64", "float16", "float64", "int32", "int8", "bool"])
    arr = numpy_helper.to_array(init)
    new = numpy_helper.from_array(arr.astype(np.dtype(dt)), init.name)
    init.CopyFrom(new)
    return f"initializer {init.name!r} float32 -> {dt}"


def mo_nan_weight(rng, m):
    import numpy as np
    from onnx import numpy_helper
    floats = [i for i in m.graph.initializer if i.data_type == 1 and int(np.prod(i.dims or [1])) > 0]
    if not floats:
        return None
    init = rng.choice(floats)
    arr = numpy_helper.to_array(init).copy()
    val = rng.choice([float("nan"), float("inf"), float("-inf")])
    how = rng.choice(["one", "all"])
    if how == "all":
        arr[...] = val
    else:
        arr.reshape(-1)[rng.randrange(arr.size)] = val
    init.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), init.name))
    return f"{how} of {init.name!r} set to {val}"


def mo_input_elem_type(rng, m):
    from onnx import TensorProto
    ins = real_inputs(m)
    if not ins:
        return None
    t = rng.choice(["BOOL", "STRING", "INT64", "DOUBLE", "FLOAT16", "UINT8", "COMPLEX64"])
    ins[0].type.tensor_type.elem_type = getattr(TensorProto, t)
    return f"input {ins[0].name!r} elem_type -> {t}"


def mo_input_dim(rng, m):
    ins = real_inputs(m)
    if not ins or not ins[0].type.tensor_type.shape.dim:
        return None
    dims = ins[0].type.tensor_type.shape.dim
    how = rng.choice(["plus1", "plus1", "zero", "param", "drop-shape", "extra-axis", "big"])
    if how == "drop-shape":
        ins[0].type.tensor_type.ClearField("shape")
        return "input shape removed"
    if how == "extra-axis":
        dims.add().dim_value = 2
        return "input gets an extra axis of 2"
    k = rng.randrange(len(dims))
    if how == "param":
        dims[k].dim_param = "N"
        return f"input dim {k} -> 'N'"
    old = dims[k].dim_value
    dims[k].dim_value = {"plus1": old + 1, "zero": 0, "big": 99999999999}[how]
    return f"input dim {k}: {old} -> {dims[k].dim_value}"


def mo_opset(rng, m):
    v = rng.choice([99, 1, 0, 10000])
    for o in m.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = v
    return f"default opset -> {v}"


def mo_custom_domain(rng, m):
    from onnx import helper
    if not m.graph.node:
        return None
    n = rng.choice(list(m.graph.node))
    n.domain = rng.choice(["com.example.custom", "ai.onnx.ml", "com.microsoft.experimental"])
    if rng.random() < 0.5:
        m.opset_import.append(helper.make_opsetid(n.domain, 1))
    return f"node {n.name or n.op_type!r} in domain {n.domain!r}"


def mo_unknown_op(rng, m):
    if not m.graph.node:
        return None
    n = rng.choice(list(m.graph.node))
    old, n.op_type = n.op_type, rng.choice(["FancyRelu", "NotAnOp", "relu", "Gemm2", "Softmaxx"])
    return f"node {n.name or old!r} op {old} -> {n.op_type}"


def mo_dup_output(rng, m):
    nodes = list(m.graph.node)
    if len(nodes) < 2:
        return None
    a, b = rng.sample(nodes, 2)
    how = rng.choice(["node", "node", "graph-input"])
    if how == "graph-input" and real_inputs(m):
        b.output[0] = real_inputs(m)[0].name
        return f"node {b.name or b.op_type!r} writes the graph input {b.output[0]!r}"
    b.output[0] = a.output[0]
    return f"nodes {a.name or a.op_type!r} and {b.name or b.op_type!r} both write {a.output[0]!r}"


def mo_drop_node(rng, m):
    if not m.graph.node:
        return None
    k = rng.randrange(len(m.graph.node))
    n = m.graph.node[k]
    del m.graph.node[k]
    return f"node {k} ({n.op_type} {n.name!r}) removed"


def mo_reverse_nodes(rng, m):
    if len(m.graph.node) < 2:
        return None
    nodes = list(m.graph.node)
    how = rng.choice(["reverse", "swap"])
    if how == "reverse":
        nodes.reverse()
    else:
        i = rng.randrange(len(nodes) - 1)
        nodes[i], nodes[i + 1] = nodes[i + 1], nodes[i]
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return f"node order: {how}"


def _random_attribute(rng, m):
    """A random node that has attributes and the index of one of them, or None (same draws for every caller)."""
    with_attrs = [n for n in m.graph.node if n.attribute]
    if not with_attrs:
        return None
    n = rng.choice(with_attrs)
    return n, rng.randrange(len(n.attribute))


def mo_remove_attribute(rng, m):
    picked = _random_attribute(rng, m)
    if picked is None:
        return None
    n, k = picked
    name = n.attribute[k].name
    del n.attribute[k]
    return f"attribute {name!r} removed from {n.op_type} {n.name!r}"


def mo_wrong_attr_type(rng, m):
    from onnx import helper
    picked = _random_attribute(rng, m)
    if picked is None:
        return None
    n, k = picked
    a = n.attribute[k]
    value = rng.choice([1.5, "x", [1.0, 2.0], [1, 2, 3], 7, b"\x00"])
    n.attribute[k].CopyFrom(helper.make_attribute(a.name, value))
    return f"attribute {a.name!r} of {n.op_type} {n.name!r} -> {value!r}"


def mo_output_elem_type(rng, m):
    from onnx import TensorProto
    if not m.graph.output:
        return None
    t = rng.choice(["INT64", "BOOL", "STRING", "DOUBLE"])
    m.graph.output[0].type.tensor_type.elem_type = getattr(TensorProto, t)
    return f"output elem_type -> {t}"


def mo_output_unproduced(rng, m):
    if not m.graph.output:
        return None
    old = m.graph.output[0].name
    m.graph.output[0].name = old + "_nobody"
    return f"graph output {old!r} renamed to one no node produces"


def mo_extra_input(rng, m):
    from onnx import TensorProto, helper
    m.graph.input.append(helper.make_tensor_value_info("extra_in", TensorProto.FLOAT, [1, 2]))
    return "a second (unused) graph input"


def mo_ir_version(rng, m):
    v = rng.choice([0, 1, 2, 99])
    m.ir_version = v
    return f"ir_version -> {v}"


def mo_reshape_init(rng, m):
    inits = [i for i in m.graph.initializer if len(i.dims) >= 2 and i.dims[0] != i.dims[-1]]
    if not inits:
        return None
    i = rng.choice(inits)
    old = list(i.dims)
    del i.dims[:]
    i.dims.extend(reversed(old))
    return f"initializer {i.name!r} dims {old} -> {list(i.dims)}"


def mo_init_data_truncated(rng, m):
    inits = [i for i in m.graph.initializer if i.raw_data and len(i.raw_data) > 4]
    if not inits:
        floats = [i for i in m.graph.initializer if len(i.float_data) > 1]
        if not floats:
            return None
        i = rng.choice(floats)
        keep = list(i.float_data)[:len(i.float_data) // 2]
        del i.float_data[:]
        i.float_data.extend(keep)
        return f"initializer {i.name!r} float_data cut to {len(keep)} values (dims {list(i.dims)})"
    i = rng.choice(inits)
    cut = rng.randrange(0, len(i.raw_data) - 1)
    i.raw_data = i.raw_data[:cut]
    return f"initializer {i.name!r} raw_data cut to {cut} bytes (dims {list(i.dims)})"


def mo_external_data(rng, m):
    from onnx import TensorProto
    if not m.graph.initializer:
        return None
    i = rng.choice(list(m.graph.initializer))
    i.ClearField("raw_data")
    i.ClearField("float_data")
    i.data_location = TensorProto.EXTERNAL
    e = i.external_data.add()
    e.key, e.value = "location", rng.choice(["no_such_weights.bin", "../../../etc/passwd", "/dev/zero"])
    return f"initializer {i.name!r} refers to external data {e.value!r}"


def mo_dup_initializer(rng, m):
    if not m.graph.initializer:
        return None
    i = rng.choice(list(m.graph.initializer))
    twin = m.graph.initializer.add()
    twin.CopyFrom(i)
    if twin.dims and rng.random() < 0.5:
        twin.dims[0] += 1
    return f"initializer {i.name!r} defined twice"


def mo_bad_value_info(rng, m):
    from onnx import TensorProto, helper
    outs = [n.output[0] for n in m.graph.node[:-1] if n.output]
    if not outs:
        return None
    name = rng.choice(outs)
    m.graph.value_info.append(helper.make_tensor_value_info(name, rng.choice([TensorProto.FLOAT, TensorProto.INT64]),
                                                            [rng.choice([3, 7, 1000]), 2]))
    return f"value_info of {name!r} with a wrong type or shape"


def _rename_uses(m, old: str, new: str, start: int) -> None:
    for n in list(m.graph.node)[start:]:
        for k, name in enumerate(n.input):
            if name == old:
                n.input[k] = new
    for o in m.graph.output:
        if o.name == old:
            o.name = new


def mo_equivalent(rng, m):
    """A rewrite that onnxruntime computes the same (the verdict must not contradict the original pair's)."""
    from onnx import helper, numpy_helper
    nodes = list(m.graph.node)
    how = rng.choice(["identity", "swap_inputs", "float_data", "gemm_transpose", "relu_twice", "dropout"])
    if how in ("identity", "dropout", "relu_twice"):
        cands = [k for k, n in enumerate(nodes) if n.output and (how != "relu_twice" or n.op_type == "Relu")]
        if not cands:
            return None
        k = rng.choice(cands)
        old = nodes[k].output[0]
        new = old + "_eq"
        _rename_uses(m, old, new, k + 1)
        op = {"identity": "Identity", "dropout": "Dropout", "relu_twice": "Relu"}[how]
        m.graph.node.insert(k + 1, helper.make_node(op, [old], [new], name=f"{op.lower()}_eq"))
        return f"{op} inserted after {nodes[k].op_type} {nodes[k].name!r}"
    if how == "swap_inputs":
        cands = [n for n in nodes if n.op_type in ("Add", "Mul") and len(n.input) == 2]
        if not cands:
            return None
        n = rng.choice(cands)
        n.input[0], n.input[1] = n.input[1], n.input[0]
        return f"inputs of {n.op_type} {n.name!r} swapped"
    if how == "float_data":
        inits = [i for i in m.graph.initializer if i.data_type == 1 and i.raw_data]
        if not inits:
            return None
        for i in inits:
            arr = numpy_helper.to_array(i)
            i.ClearField("raw_data")
            i.float_data.extend(arr.reshape(-1).tolist())
        return f"{len(inits)} initializers re-encoded as float_data"
    gemms = [n for n in nodes if n.op_type == "Gemm" and len(n.input) >= 2]
    inits = {i.name: i for i in m.graph.initializer}
    gemms = [g for g in gemms if g.input[1] in inits and sum(g.input[1] in n.input for n in nodes) == 1]
    if not gemms:
        return None
    g = rng.choice(gemms)
    w = inits[g.input[1]]
    trans = next((a.i for a in g.attribute if a.name == "transB"), 0)
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w).T.copy(), w.name))
    keep = [a for a in g.attribute if a.name != "transB"]
    del g.attribute[:]
    g.attribute.extend(keep + [helper.make_attribute("transB", 1 - trans)])
    return f"Gemm {g.name!r}: weight transposed, transB {trans} -> {1 - trans}"


def mo_attr_value(rng, m):
    from onnx import AttributeProto
    cands = [(n, a) for n in m.graph.node for a in n.attribute if a.type in (AttributeProto.INT, AttributeProto.INTS)]
    if not cands:
        return None
    n, a = rng.choice(cands)
    v = rng.choice([0, -1, -7, 2, 99, 1 << 40])
    if a.type == AttributeProto.INT:
        old, a.i = a.i, v
    else:
        if not a.ints:
            return None
        k = rng.randrange(len(a.ints))
        old, a.ints[k] = list(a.ints), v
    return f"attribute {a.name!r} of {n.op_type} {n.name!r}: {old} -> {v}"


def mo_extra_output(rng, m):
    from onnx import TensorProto, helper
    inner = [n.output[0] for n in m.graph.node[:-1] if n.output]
    if not inner:
        return None
    name = rng.choice(inner)
    out = helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
    if rng.random() < 0.5:
        m.graph.output.insert(0, out)
        return f"intermediate {name!r} made the first graph output"
    m.graph.output.append(out)
    return f"intermediate {name!r} made a second graph output"


def mo_empty_graph(rng, m):
    from onnx import helper
    ins = real_inputs(m)
    if not ins or not m.graph.output:
        return None
    del m.graph.node[:]
    if rng.random() < 0.5:
        m.graph.node.append(helper.make_node("Identity", [ins[0].name], [m.graph.output[0].name], name="only"))
        return "every node replaced by one Identity"
    m.graph.output[0].name = ins[0].name
    return "no nodes: the output is the input"


def mo_huge_weight(rng, m):
    import numpy as np
    from onnx import numpy_helper
    floats = [i for i in m.graph.initializer if i.data_type == 1 and int(np.prod(i.dims or [1])) > 0]
    if not floats:
        return None
    init = rng.choice(floats)
    scale = rng.choice([1e20, 1e30, 1e38, 1e-30, -1e25])
    with np.errstate(over="ignore", invalid="ignore"):  # overflowing to inf is the point
        arr = (numpy_helper.to_array(init).astype(np.float64) * scale).astype(np.float32)
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    return f"{init.name!r} scaled by {scale:g}"


MODEL_MUTATIONS = {  # proto-level: (rng, ModelProto) -> note, modifying the proto in place
    "remove_initializer": mo_remove_initializer,
    "init_dtype": mo_init_dtype,
    "nan_weight": mo_nan_weight,
    "input_elem_type": mo_input_elem_type,
    "input_dim": mo_input_dim,
    "opset": mo_opset,
    "custom_domain": mo_custom_domain,
    "unknown_op": mo_unknown_op,
    "dup_output": mo_dup_output,
    "drop_node": mo_drop_node,
    "reverse_nodes": mo_reverse_nodes,
    "remove_attribute": mo_remove_attribute,
    "wrong_attr_type": mo_wrong_attr_type,
    "output_elem_type": mo_output_elem_type,
    "output_unproduced": mo_output_unproduced,
    "extra_input": mo_extra_input,
    "ir_version": mo_ir_version,
    "reshape_init": mo_reshape_init,
    "init_data_truncated": mo_init_data_truncated,
    "external_data": mo_external_data,
    "dup_initializer": mo_dup_initializer,
    "bad_value_info": mo_bad_value_info,
    "equivalent": mo_equivalent,
    "attr_value": mo_attr_value,
    "extra_output": mo_extra_output,
    "empty_graph": mo_empty_graph,
    "huge_weight": mo_huge_weight,
}


def mb_truncate(rng, data):
    cut = rng.randrange(1, len(data))
    return data[:cut], f"protobuf truncated at byte {cut} of {len(data)}"


def mb_flip(rng, data):
    b = bytearray(data)
    where = sorted(rng.randrange(len(b)) for _ in range(rng.randint(1, 4)))
    for w in where:
        b[w] ^= rng.randint(1, 255)
    return bytes(b), f"flipped bytes at {where}"


def mb_empty(rng, data):
    return b"", "empty file"


def mb_garbage(rng, data):
    n = rng.choice([4, 100, 5000])
    return bytes(rng.randrange(256) for _ in range(n)), f"{n} bytes of garbage"


MODEL_BYTE_MUTATIONS = {"truncate_bytes": mb_truncate, "flip_bytes": mb_flip, "empty_file": mb_empty,
                        "garbage": mb_garbage, "gzip_corrupt": None}


_ORT_TYPES = {"float": "float32", "double": "float64", "float16": "float16", "int64": "int64", "int32": "int32",
              "int8": "int8", "uint8": "uint8", "bool": "bool", "string": "object", "int16": "int16"}


def _ort_check(data: bytes) -> tuple[bool, str]:
    """(accepted, message): an onnxruntime session on ``data`` and one run on zeros of each input."""
    import numpy as np
    import onnxruntime as ort
    try:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        feed = {}
        for i in sess.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
            m = re.match(r"tensor\((\w+)\)", i.type)
            dt = _ORT_TYPES.get(m.group(1) if m else "", None)
            if dt is None:
                return False, f"input type {i.type}"
            if int(np.prod(shape)) > 10_000_000:
                return False, f"input shape {shape} too big to try"
            feed[i.name] = (np.full(shape, "", dtype=object) if dt == "object" else np.zeros(shape, dtype=dt))
        sess.run(None, feed)
        return True, "ok"
    except Exception as e:  # noqa: BLE001 - any refusal is the answer
        return False, f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def run_in_fork(fn, *args, timeout: float = 60.0):
    """``fn(*args)`` in a forked child (keeps onnxruntime's threads and crashes out of this process); its
    JSON-able result, or ("crash", message) when the child dies or runs past ``timeout``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            out = json.dumps(fn(*args)).encode()
        except BaseException as e:  # noqa: BLE001
            out = json.dumps(["crash", f"{type(e).__name__}: {e}"]).encode()
        with os.fdopen(w, "wb") as f:
            f.write(out)
        os._exit(0)
    os.close(w)
    chunks, t0 = [], time.monotonic()
    os.set_blocking(r, False)
    while True:
        try:
            chunk = os.read(r, 1 << 16)
            if chunk:
                chunks.append(chunk)
                continue
            break  # EOF
        except BlockingIOError:
            if time.monotonic() - t0 > timeout:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.002)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    try:
        return json.loads(b"".join(chunks).decode())
    except ValueError:
        return ["crash", f"child status {status}"]


_ORACLE_CACHE: dict[str, tuple[bool, str]] = {}


def ort_accepts(data: bytes) -> tuple[bool, str]:
    """Does onnxruntime load and run these model bytes (checked in a forked child, cached by content)?"""
    key = hashlib.sha1(data).hexdigest()
    if key not in _ORACLE_CACHE:
        res = run_in_fork(_ort_check, data, timeout=60)
        ok = bool(res[0]) if isinstance(res, list) and res and res[0] != "crash" else False
        _ORACLE_CACHE[key] = (ok, str(res[1]) if isinstance(res, list) and len(res) > 1 else str(res))
    return _ORACLE_CACHE[key]


# =========================================================================== cases
@dataclass
class Case:
    id: str
    kind: str  # "spec:<mutation>" or "model:<mutation>"
    seed: int
    source: str  # the file that was mutated
    model: str
    spec: str
    expect: str  # "error", "sat" or "any"
    note: str
    timeout: float = 3.0
    args: list = field(default_factory=list)  # more verify arguments (e.g. --method crown)

    def argv(self) -> list[str]:
        return [self.model, self.spec, "--timeout", f"{self.timeout:g}", "--threads", "1"] + list(self.args)

    def command(self) -> str:
        return "verify " + " ".join(_shell_quote(a) for a in self.argv())

    @property
    def needs_line(self) -> bool:
        return self.kind.split(":", 1)[1] in SPEC_NEEDS_LINE and self.kind.startswith("spec:")


def _shell_quote(s: str) -> str:
    return s if re.match(r"^[\w./:=+-]+$", s) else "'" + s.replace("'", "'\\''") + "'"


ALL_KINDS = [f"spec:{k}" for k in SPEC_MUTATIONS] + [f"model:{k}" for k in MODEL_MUTATIONS] + \
    [f"model:{k}" for k in MODEL_BYTE_MUTATIONS]


def schedule(n: int, kinds: list[str] | None = None, heavy_weight: int = 1, weight: int = 3) -> list[str]:
    """``n`` kinds in round-robin order: every kind ``weight`` times per cycle, heavy ones ``heavy_weight``."""
    kinds = list(kinds or ALL_KINDS)
    cycle = []
    for rep in range(weight):
        cycle += [k for k in kinds if k not in HEAVY_KINDS or rep < heavy_weight]
    return [cycle[i % len(cycle)] for i in range(n)] if cycle else []


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)


def make_spec_case(kind: str, seed: int, pair: Pair, workdir: Path, case_id: str, timeout: float,
                   fn=None) -> Case | None:
    rng = random.Random(seed)
    raw = read_bytes(pair.spec)
    text = raw.decode("utf-8", "surrogateescape")
    info = spec_info(text)
    if info is None:
        return None
    res = (fn or SPEC_MUTATIONS[kind])(rng, text, info)
    if res is None:
        return None
    data, expect, note = res[:3]
    if expect == "same":
        expect = f"same:{pair.expected}" if pair.expected else "any"
    ext = res[3] if len(res) > 3 else ""
    if not ext and pair.spec.endswith(".gz") and rng.random() < 0.3:
        data = gzip.compress(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data, mtime=0)
        ext = ".gz"
    path = workdir / f"{case_id}_{kind}.vnnlib{ext}"
    _write(path, data)
    return Case(case_id, f"spec:{kind}", seed, pair.spec, pair.model, str(path), expect, note, timeout)


def make_model_case(kind: str, seed: int, pair: Pair, workdir: Path, case_id: str, timeout: float) -> Case | None:
    import onnx
    rng = random.Random(seed)
    data = read_bytes(pair.model)
    gz_out = pair.model.endswith(".gz") and rng.random() < 0.5
    if kind == "gzip_corrupt":
        gz = bytearray(gzip.compress(data, mtime=0))
        how = rng.choice(["truncate", "crc"])
        if how == "truncate":
            gz = gz[:rng.randrange(10, len(gz) - 1)]
        else:
            gz[-8 + rng.randrange(4)] ^= 0xFF
        path = workdir / f"{case_id}_{kind}.onnx.gz"
        _write(path, bytes(gz))
        return Case(case_id, f"model:{kind}", seed, pair.model, str(path), pair.spec, "error",
                    f"gzip corrupted ({how})", timeout)
    if kind in MODEL_BYTE_MUTATIONS:
        new, note = MODEL_BYTE_MUTATIONS[kind](rng, data)
    else:
        m = onnx.load_from_string(data)
        note = MODEL_MUTATIONS[kind](rng, m)
        if note is None:
            return None
        new = m.SerializeToString()
    ok, why = ort_accepts(new)
    expect = "any" if ok else "error"
    if ok and kind == "equivalent" and pair.expected:
        expect = f"same:{pair.expected}"
    note = f"{note}; onnxruntime: {'accepts' if ok else 'refuses: ' + why}"
    path = workdir / f"{case_id}_{kind}.onnx{'.gz' if gz_out else ''}"
    _write(path, gzip.compress(new, mtime=0) if gz_out else new)
    return Case(case_id, f"model:{kind}", seed, pair.model, str(path), pair.spec, expect, note, timeout)


def iter_cases(n: int, seed: int, workdir: str | os.PathLike, timeout: float = 3.0, kinds: list[str] | None = None,
               bench: Path = BENCH, heavy_weight: int = 1, per_benchmark: int = 6,
               max_model_bytes: int = 3_000_000, heavy_timeout: float = HEAVY_TIMEOUT):
    """``n`` deterministic cases (same ``seed``, same files) over ``kinds`` (all by default), written to
    ``workdir`` one by one as they are asked for."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    specs = spec_sources(seed, per_benchmark=per_benchmark, bench=bench, max_model_bytes=max_model_bytes)
    models = model_sources(workdir)
    for i, kind in enumerate(schedule(n, kinds, heavy_weight=heavy_weight)):
        where, name = kind.split(":", 1)
        case_id = f"c{seed}_{i:05d}"
        case_timeout = max(timeout, heavy_timeout) if kind in HEAVY_KINDS else timeout
        for attempt in range(40):
            case_seed = (seed * 1_000_003 + i) * 16 + attempt
            pick = random.Random(f"pick:{case_seed}")
            if name == "wrong_pair":
                case = make_wrong_pair_case(case_seed, pick.choice(specs), specs + models, workdir, case_id,
                                            case_timeout)
            elif where == "spec":
                case = make_spec_case(name, case_seed, pick.choice(specs), workdir, case_id, case_timeout)
            else:
                case = make_model_case(name, case_seed, pick.choice(models), workdir, case_id, case_timeout)
            if case is not None:
                yield case
                break


_IO_CACHE: dict = {}


def model_io_sizes(path: str) -> tuple[int, int]:
    """(input size, output size) of a model's first real input and first output."""
    import onnx
    if path not in _IO_CACHE:
        m = onnx.load_from_string(read_bytes(path))

        def size(vi):
            return math.prod(max(1, d.dim_value) for d in vi.type.tensor_type.shape.dim)
        _IO_CACHE[path] = (size(real_inputs(m)[0]), size(m.graph.output[0]))
    return _IO_CACHE[path]


def make_wrong_pair_case(seed: int, pair: Pair, models: list[Pair], workdir: Path, case_id: str,
                         timeout: float) -> Case | None:
    """The spec with a model whose input or output size differs from the spec's: certainly an error."""
    rng = random.Random(seed)
    info = spec_info(read_bytes(pair.spec).decode("utf-8", "surrogateescape"))
    if info is None:
        return None
    others = sorted({p.model for p in models} - {pair.model})
    others = [m for m in others if model_io_sizes(m) != (info.n_inputs, info.n_outputs)]
    if not others:
        return None
    model = rng.choice(others)
    path = workdir / f"{case_id}_wrong_pair.vnnlib{'.gz' if pair.spec.endswith('.gz') else ''}"
    _write(path, Path(pair.spec).read_bytes())
    io_sizes = model_io_sizes(model)
    return Case(case_id, "spec:wrong_pair", seed, pair.spec, model, str(path), "error",
                f"spec with {info.n_inputs}/{info.n_outputs} inputs/outputs on a model with {io_sizes[0]}/"
                f"{io_sizes[1]}", timeout)


def generate(n: int, seed: int, workdir: str | os.PathLike, **kw) -> list[Case]:
    return list(iter_cases(n, seed, workdir, **kw))


# =========================================================================== runner
@dataclass
class Run:
    case: Case
    rc: int | None  # exit status; None when killed by a signal
    signal: int | None
    stdout: str
    stderr: str
    wall: float
    cpu: float  # user + system seconds of the child
    rss_extra_mb: float
    hung: bool
    failures: list = field(default_factory=list)  # [(class, cause)]
    cex: str = ""

    @property
    def first_line(self) -> str:
        return self.stdout.split("\n", 1)[0].strip()


def _vm_bytes(field_name: str = "VmSize") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    return 0


def preload() -> None:
    """Import what a run needs once, in the parent, so that each forked case starts warm."""
    import importlib
    import pkgutil

    import numpy  # noqa: F401
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401

    import verifier.cli.main  # noqa: F401
    import verifier.cli.verify  # noqa: F401
    for pkg in ("frontends", "verifier.methods", "verifier.bab", "verifier.bounds", "verifier.attack",
                "verifier.certificates", "backends"):
        try:
            mod = importlib.import_module(pkg)
        except Exception:  # noqa: BLE001 - an optional part that does not import is not this runner's business
            continue
        for info in pkgutil.walk_packages(getattr(mod, "__path__", []), pkg + "."):
            try:
                importlib.import_module(info.name)
            except Exception:  # noqa: BLE001
                pass


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (every thread), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _default_entry(argv):
    from verifier.cli.main import main
    return main(argv)


def _child(case: Case, out_path: str, err_path: str, as_limit: int, entry) -> None:
    rc = 1
    try:
        os.setpgid(0, 0)
        fo = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        fe = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fo, 1)
        os.dup2(fe, 2)
        os.close(fo)
        os.close(fe)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
            signal.signal(s, signal.SIG_DFL)
        if as_limit:
            resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))
        try:
            rc = entry(case.argv())
            rc = 0 if rc is None else int(rc)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: BLE001 - what a real process would print
            traceback.print_exc()
            rc = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            with open(err_path + ".t", "w") as f:  # when it ended (the parent may reap it later)
                f.write(repr(time.monotonic()))
        finally:
            os._exit(rc)


def run_cases(cases, jobs: int = 2, mem_cap_mb: float = 3000, hang_grace: float = 5.0,
              entry=None, on_done=None, tmp: str | None = None) -> list[Run]:
    """Each case (a list or an iterator) in a forked child, at most ``jobs`` at once; ``on_done(run)`` after each
    judged run. ``mem_cap_mb``: the memory class's cap on the child's peak RSS above the parent's (an estimate:
    pages the child never touches are not counted), and ``RLIMIT_AS`` is the parent's size + 1.5 x the cap."""
    entry = entry or _default_entry
    if entry is _default_entry:
        preload()
    base_vm = _vm_bytes("VmSize")
    base_rss_mb = _vm_bytes("VmRSS") / 2**20
    as_limit = int(base_vm + mem_cap_mb * 2**20 * 1.5) if mem_cap_mb else 0
    tmpdir = tempfile.mkdtemp(prefix="fuzz_io_", dir=tmp)
    pending = iter(cases)
    order: dict[str, int] = {}
    running: dict[int, tuple] = {}
    runs: list[Run] = []
    exhausted = False
    while not exhausted or running:
        while not exhausted and len(running) < jobs:
            case = next(pending, None)
            if case is None:
                exhausted = True
                break
            order[case.id] = len(order)
            sys.stdout.flush()
            sys.stderr.flush()
            out_path = os.path.join(tmpdir, f"{case.id}.out")
            err_path = os.path.join(tmpdir, f"{case.id}.err")
            pid = os.fork()
            if pid == 0:
                _child(case, out_path, err_path, as_limit, entry)
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass
            running[pid] = (case, time.monotonic(), out_path, err_path, False)
        reaped = False
        for pid in list(running):
            case, t0, out_path, err_path, hung = running[pid]
            wpid, status, ru = os.wait4(pid, os.WNOHANG)
            if wpid == 0:
                late = time.monotonic() - t0 - (case.timeout + hang_grace)
                if not hung and late > 0 and (_proc_cpu(pid) > case.timeout + 1.0 or
                                              late > 3 * (case.timeout + hang_grace)):
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    running[pid] = (case, t0, out_path, err_path, True)
                continue
            reaped = True
            wall = time.monotonic() - t0
            try:
                wall = min(wall, float(Path(err_path + ".t").read_text()) - t0)
                os.unlink(err_path + ".t")
            except (OSError, ValueError):
                pass
            del running[pid]
            try:
                os.killpg(pid, signal.SIGKILL)  # anything the case left behind in its group
            except (ProcessLookupError, PermissionError):
                pass
            out = Path(out_path).read_bytes().decode("utf-8", "replace")
            err = Path(err_path).read_bytes().decode("utf-8", "replace")
            os.unlink(out_path)
            os.unlink(err_path)
            rc = os.waitstatus_to_exitcode(status)
            run = Run(case, rc if rc >= 0 else None, -rc if rc < 0 else None, out, err, wall,
                      ru.ru_utime + ru.ru_stime, max(0.0, ru.ru_maxrss / 1024 - base_rss_mb), hung)
            judge(run, mem_cap_mb)
            runs.append(run)
            if on_done:
                on_done(run)
        if not reaped:
            time.sleep(0.003)
    try:
        os.rmdir(tmpdir)
    except OSError:
        pass
    return sorted(runs, key=lambda r: order[r.case.id])


# =========================================================================== judging
MEMORY_WORDS = ("MemoryError", "can't allocate memory", "Cannot allocate memory", "out of memory", "std::bad_alloc",
                "DefaultCPUAllocator")


def _names_place(case: Case, line: str) -> bool:
    names = {case.model, case.spec, os.path.basename(case.model), os.path.basename(case.spec)}
    return any(n and n in line for n in names) or re.search(r"\bnode\b", line) is not None


def _has_line_number(case: Case, line: str) -> bool:
    base = re.escape(os.path.basename(case.spec))
    return re.search(base + r":\d+", line) is not None or re.search(r"\bline \d+", line) is not None


def judge(run: Run, mem_cap_mb: float = 3000) -> list:
    """Fill ``run.failures`` with (class, cause) pairs; an empty list is a pass."""
    c, f = run.case, run.failures
    err_lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    first = run.first_line
    big = max(_size(c.spec), _size(c.model)) > 1_000_000
    if run.hung:
        busy = "using CPU" if run.cpu > c.timeout + 1.0 else "blocked or starved of CPU"
        f.append(("overrun", f"hung ({busy}): killed after the timeout + the grace"))
    elif run.wall > c.timeout + 1.0 and run.cpu > c.timeout + 1.0:
        f.append(("overrun", f"past the timeout + 1 s in CPU time too (answered {first or 'nothing'})"))
    if "Traceback" in run.stderr or (not run.hung and (run.rc not in (0, 2))):
        f.append(("traceback", traceback_cause(run)))
    mem_hit = next((w for w in MEMORY_WORDS if w in run.stderr), None)
    if mem_hit or (mem_cap_mb and run.rss_extra_mb > mem_cap_mb):
        f.append(("memory", f"a failed allocation ({mem_hit})" if mem_hit else "peak RSS over the cap"))
    if run.hung or run.signal:
        return f
    if first not in VERDICTS:
        if not any(k == "traceback" for k, _ in f):
            f.append(("wrong-exit", f"first stdout line {first[:60]!r} is not a verdict (exit {run.rc})"))
        return f
    if (first == "error") != (run.rc == 2):
        f.append(("wrong-exit", f"{first} with exit {run.rc}"))
    # a timeout is no verdict when the machine starved the run: its wall budget went while it had little CPU
    starved = first == "timeout" and run.wall >= c.timeout and run.cpu < 0.5 * c.timeout
    if c.expect == "error" and first != "error" and not (first == "timeout" and big) and not starved:
        f.append(("verdict-on-invalid", f"answered {first}"))
    if c.expect == "sat" and first != "sat" and not starved:
        f.append(("wrong-verdict", f"answered {first} where only sat is right"))
    if c.expect.startswith("same:") and first in ("sat", "unsat") and first != c.expect[5:]:
        f.append(("wrong-verdict", f"answered {first} on a rewrite with the meaning of a {c.expect[5:]} pair"))
    if first == "error":
        if len(err_lines) != 1:
            last = _norm(err_lines[-1]) if err_lines else ""
            f.append(("bad-reason", f"{len(err_lines)} stderr lines (want 1): {last}"))
        elif not _names_place(c, err_lines[0]):
            f.append(("bad-reason", f"names neither file nor node: {_norm(err_lines[0])}"))
        elif c.needs_line and not _has_line_number(c, err_lines[0]):
            f.append(("bad-reason", f"no line number: {_norm(err_lines[0])}"))
    if first == "sat":
        res = run_in_fork(check_sat_output, run.stdout, c.model, c.spec, timeout=120)
        ok, msg = (bool(res[0]), str(res[1])) if isinstance(res, list) and res and res[0] != "crash" else \
            (False, f"checker crashed: {res}")
        run.cex = msg
        if not ok:
            f.append(("invalid-counterexample", msg))
    return f


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _norm(line: str) -> str:
    """A message with its file names, numbers and quoted values blanked, to group like failures."""
    line = re.sub(r"(?<![\w.])/(?:[\w.+-]+/)+", "", line)  # absolute paths: keep the base name
    line = re.sub(r"c\d+_\d{5}_\w+?\.(vnnlib|onnx)(\.gz)?", "<case>", line)
    line = re.sub(r"\btime=\S+", "time=T", line)
    line = re.sub(r"(?<![\w.])-?\d+(\.\d+)?(e[-+]?\d+)?(?!\w)", "N", line)
    line = re.sub(r"(?<=[A-Za-z]_)\d+\b", "N", line)
    at = re.search(r"\(at [^;()]+;", line)  # the guard's "(at file:line; rerun with -v ...)" is kept
    line = line.strip()
    if at and len(line) > 160:
        return line[:130] + " ... " + at.group(0)[:-1] + ")"
    return line[:160]


PROJECT_FRAME = re.compile(r'File "([^"]*?/(?:verifier|frontends|backends|tests)/[^"]+)", line (\d+), in (\S+)')


def traceback_cause(run: Run) -> str:
    if run.signal:
        return f"killed by signal {run.signal}"
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    exc = next((ln.strip() for ln in reversed(lines) if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", ln)),
               lines[-1].strip() if lines else f"exit {run.rc}, no stderr")
    frames = PROJECT_FRAME.findall(run.stderr)
    where = ""
    if frames:
        path, _, func = frames[-1]
        rel = path.split("/work/main/")[-1] if "/work/main/" in path else "/".join(path.split("/")[-3:])
        where = f" at {rel}:{func}"
    if not frames and "Traceback" not in run.stderr:
        return f"exit {run.rc}: {_norm(exc)}"
    return f"{_norm(exc)}{where}"


def area_of(kind: str, cause: str, stderr: str = "") -> str:
    """Where a failure lives: the innermost project frame of a traceback, or the ``(at file:line`` of the guard's
    one-line message, or else the mutated file's front end."""
    frames = PROJECT_FRAME.findall(stderr)
    at = re.search(r"\(at ((?:verifier|frontends|backends)/[\w/]+\.py):\d+", stderr)
    cause = " ".join(filter(None, [frames[-1][0] if frames else "", at.group(1) if at else "", cause]))
    for key, area in (("frontends/onnx", "ONNX loader"), ("frontends/vnnlib", "VNN-LIB reader"),
                      ("frontends/load", "front-end loading"), ("verifier/bounds", "bounds"),
                      ("verifier/methods", "methods"), ("verifier/bab", "branch and bound"),
                      ("verifier/attack", "attack"), ("verifier/certificates", "certificates"),
                      ("verifier/api", "API"), ("verifier/cli", "CLI"), ("verifier/ir", "IR"),
                      ("backends", "backends")):
        if key in cause:
            return area
    return "VNN-LIB reader" if kind.startswith("spec:") else "ONNX loader"


# --------------------------------------------------------------------------- counterexample check
_PAIR = re.compile(r"\(\s*([XY])_(\d+)\s+([^\s()]+)\s*\)")


class SpecUnreadable(Exception):
    pass


def eval_spec(text: str, x, y, tol: float = 1e-4) -> tuple[bool, str]:
    """Does (x, y) meet every assert of the VNN-LIB text? Non-strict comparisons within ``tol``, strict ones
    exactly. Raises SpecUnreadable where this small evaluator does not know the construct."""
    info = spec_info(text)
    tree = parse_tree(text)
    if info is None or tree is None:
        raise SpecUnreadable("unbalanced or undeclared")
    if info.v2 and len(re.findall(r"declare-(input|output)\b", text)) != 2:
        raise SpecUnreadable("2.0 spec with more than one input or output tensor")
    if info.n_inputs != len(x) or info.n_outputs != len(y):
        return False, f"spec declares {info.n_inputs}/{info.n_outputs} inputs/outputs, counterexample has " \
                      f"{len(x)}/{len(y)}"
    declared = set()
    if not info.v2:
        for n in tree:
            if isinstance(n, Node) and n.head() == "declare-const" and len(n.items) == 3:
                if not (isinstance(n.items[2], Tok) and n.items[2].text == "Real"):
                    raise SpecUnreadable("declared type is not Real")
                declared.add(n.items[1].text)

    def var(t: str) -> float:
        kind = info.var_kind(t)
        if kind is None:
            raise SpecUnreadable(f"unknown atom {t!r}")
        vec, shape = (x, info.input_shape) if kind == "in" else (y, info.output_shape)
        if info.v2:
            idx = [int(v) for v in t[t.index("[") + 1:-1].replace(" ", "").split(",") if v]
            if len(idx) != len(shape) or any(not 0 <= i < d for i, d in zip(idx, shape)):
                raise SpecUnreadable(f"index out of range: {t}")
            flat = 0
            for i, d in zip(idx, shape):
                flat = flat * d + i
        else:
            if t not in declared:
                raise SpecUnreadable(f"undeclared {t}")
            flat = int(t.rsplit("_", 1)[1])
            if flat >= len(vec):
                raise SpecUnreadable(f"index out of range: {t}")
        return float(vec[flat])

    def value(n) -> float:
        if isinstance(n, Tok):
            if NUMBER.match(n.text):
                v = float(n.text)
                if not math.isfinite(v):
                    raise SpecUnreadable(f"number {n.text}")
                return v
            return var(n.text)
        h, args = n.head(), [value(a) for a in n.items[1:]]
        if h == "+" and args:
            return sum(args)
        if h == "-" and args:
            return -args[0] if len(args) == 1 else args[0] - sum(args[1:])
        if h == "*" and args:
            return math.prod(args)
        if h == "/" and len(args) >= 2:
            out = args[0]
            for a in args[1:]:
                out /= a
            return out
        raise SpecUnreadable(f"term {h!r}")

    def holds(n) -> bool:
        if not isinstance(n, Node):
            raise SpecUnreadable("atom as formula")
        h = n.head()
        if h == "and":  # loops, not all()/any(): deep nesting stays on the Python stack
            for c in n.items[1:]:
                if not holds(c):
                    return False
            return True
        if h == "or":
            for c in n.items[1:]:
                if holds(c):
                    return True
            return False
        if h in COMPARISONS and len(n.items) >= 3:
            vals = [value(a) for a in n.items[1:]]
            ok = True
            for a, b in zip(vals, vals[1:]):
                ok &= {"<=": a <= b + tol, ">=": a + tol >= b, "<": a < b, ">": a > b, "=": abs(a - b) <= tol}[h]
            return ok
        raise SpecUnreadable(f"formula {h!r}")

    for n in tree:
        if not isinstance(n, Node):
            raise SpecUnreadable("stray atom")
        if n.head() == "assert":
            if len(n.items) != 2 or not holds(n.items[1]):
                return False, f"assert at byte {n.start} does not hold at (X, onnxruntime's Y)"
        elif n.head() not in ("declare-const", "declare-network", "vnnlib-version"):
            raise SpecUnreadable(f"statement {n.head()!r}")
    return True, "ok"


def check_sat_output(stdout: str, model_path: str, spec_path: str) -> list:
    """[ok, message] for a ``sat`` answer: the printed X through onnxruntime, Y compared, the spec evaluated."""
    import numpy as np
    import onnxruntime as ort
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1_000_000))  # deeply nested specs
    xs, ys = {}, {}
    for kind, idx, val in _PAIR.findall(stdout.partition("\n")[2]):
        try:
            (xs if kind == "X" else ys)[int(idx)] = float(val)
        except ValueError:
            return [False, f"counterexample value {val!r} is not a number"]
    if not xs or sorted(xs) != list(range(len(xs))) or sorted(ys) != list(range(len(ys))):
        return [False, "sat without a complete counterexample ((X_0 v) ... (Y_0 v) ...)"]
    x = np.array([xs[i] for i in range(len(xs))])
    y_printed = np.array([ys[i] for i in range(len(ys))])
    if not np.all(np.isfinite(x)):
        return [False, "counterexample X is not finite"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4
    sess = ort.InferenceSession(read_bytes(model_path), opts, providers=["CPUExecutionProvider"])
    if len(sess.get_inputs()) != 1:
        return [False, f"sat on a model with {len(sess.get_inputs())} inputs: X cannot set them all"]
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    dtype = np.float64 if "double" in inp.type else np.float32
    if int(np.prod(shape)) != x.size:
        return [False, f"counterexample has {x.size} inputs, the model's input has shape {inp.shape}"]
    y = np.asarray(sess.run(None, {inp.name: x.astype(dtype).reshape(shape)})[0], dtype=np.float64).reshape(-1)
    if y.size != y_printed.size or not np.allclose(y_printed, y, rtol=1e-3, atol=1e-5):
        return [False, f"printed Y differs from onnxruntime's output ({y_printed[:4]} vs {y[:4]})"]
    text = read_bytes(spec_path).decode("utf-8", "surrogateescape")
    try:
        ok, msg = eval_spec(text, x, y)
        return [ok, msg]
    except SpecUnreadable as e:
        reason = str(e)
    try:  # the project's reader and checker, for what the evaluator here does not read
        from frontends.result_file import check_counterexample
        from frontends.vnnlib.v2 import load_spec
        spec = load_spec(spec_path, n_inputs=x.size, n_outputs=y.size)
        ok, msg = check_counterexample(lambda v: y, spec, x, y_printed)
        return [bool(ok), f"(project checker; evaluator: {reason}) {msg}"]
    except Exception as e:  # noqa: BLE001
        return [False, f"sat on a spec neither checker reads ({reason}; project: {type(e).__name__}: {e})"]


# =========================================================================== reports
def failure_groups(runs: list[Run]) -> dict[tuple[str, str], list[Run]]:
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        for cls, cause in r.failures:
            groups.setdefault((cls, cause), []).append(r)
    return dict(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def describe(runs: list[Run], limit: int = 60) -> str:
    """Failures grouped by class and cause, with the kinds, the area and one reproducer each."""
    lines = []
    for (cls, cause), rs in list(failure_groups(runs).items())[:limit]:
        kinds = sorted({r.case.kind for r in rs})
        lines.append(f"[{cls}] x{len(rs)} {cause}  | area: {area_of(rs[0].case.kind, cause, rs[0].stderr)} | kinds: "
                     f"{', '.join(kinds[:6])}{' ...' if len(kinds) > 6 else ''}")
        r = rs[0]
        lines.append(f"    e.g. {r.case.note[:130]} -> {r.first_line or '(no stdout)'} rc={r.rc} "
                     f"(wall {r.wall:.1f}s, cpu {r.cpu:.1f}s)")
        lines.append(f"    {rs[0].case.command()}")
    return "\n".join(lines)


def case_record(r: Run) -> dict:
    d = asdict(r.case)
    d.update(rc=r.rc, signal=r.signal, wall=round(r.wall, 3), cpu=round(r.cpu, 3),
             rss_extra_mb=round(r.rss_extra_mb, 1), hung=r.hung,
             first_line=r.first_line, stderr_tail=r.stderr[-2000:], failures=r.failures, cex=r.cex,
             command=r.case.command())
    return d
