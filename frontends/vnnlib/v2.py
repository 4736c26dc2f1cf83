"""VNN-LIB 2.0 reader, and :func:`load_spec` that reads either version into a :class:`~verifier.spec.Spec`.

VNN-LIB 2.0 (the draft standard of the VNNLIB organisation) declares a network's interface
instead of loose scalar constants::

    (vnnlib-version <2.0>)
    (declare-network acas
        (declare-input  X Real [1,5])
        (declare-output Y Real [1,5]))
    (assert (<= X[0,0] 0.679857769))
    (assert (or (and (<= Y[0,0] Y[0,1]) (<= Y[0,0] Y[0,2])) (>= Y[0,4] 1.5)))

Supported here: one network (theory SNET) with one input and one output tensor (SIO), no hidden
nodes (NH); element types ``Real`` or an ONNX type name (recorded in :class:`TensorDecl` for the
solver interface to check); tensor elements ``X[i,j,...]`` (full indexing, zero based, C order,
also written ``X [i, j]``), bare names for scalar tensors (shape ``[]``); comparisons ``<=``,
``>=``, ``<``, ``>`` (read as their closures ``<=`` / ``>=``: an ``unsat`` proof of the closed
set covers the open one), ``==`` (also ``=``); ``and`` / ``or``; linear terms ``+``, ``-``,
``*`` by constants. ``!=`` is rejected (its closure is everything). As in 1.0, constraints on
the input must be boxes (one input element against a number), output constraints are linear.

A 2.0 query is translated token by token into the 1.0 form (``X[0,3]`` becomes ``X_3``, the
network declaration becomes ``declare-const`` lines) with every line kept where it was, and
then read by :mod:`frontends.vnnlib`; error messages are mapped back to the 2.0 names, with
the file and line of the original text.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from frontends.vnnlib.v1 import _COMMENT, parse_vnnlib, read_spec_text
from verifier.ir.errors import SpecError
from verifier.ir.spec import Spec

SUPPORTED_VERSIONS = ("1.0", "2.0")
# ONNX tensor element type names (IR.md, "Set 1" as the standard asks) plus the standard's `real`
ONNX_ELEMENT_TYPES = frozenset({
    "float16", "float32", "float64", "bfloat16", "float8e4m3fn", "float8e5m2", "float8e4m3fnuz",
    "float8e5m2fnuz", "float4e2m1", "int4", "int8", "int16", "int32", "int64", "uint4", "uint8", "uint16",
    "uint32", "uint64", "bool", "complex64", "complex128", "string"})
REAL_TYPE = "real"

_V2_MARK = re.compile(r"\(\s*(?:vnnlib-version|declare-network)(?![\w-])")
_TOK = re.compile(r'\(|\)|\[[^\[\]()]*\]|"(?:[^"\\]|\\.)*"|<[0-9]+(?:\.[0-9]+)*>|[^\s()\[\]"]+|\S')
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_NUMBERISH = re.compile(r"[+\-.0-9]")
_OPERATORS = {"and": "and", "or": "or", "+": "+", "-": "-", "*": "*", "<=": "<=", ">=": ">=", "=": "=",
              "==": "=", "<": "<=", ">": ">="}
_COMMANDS_V1 = frozenset({"declare-const", "declare-fun"})
_IGNORED = frozenset({"check-sat", "get-model", "exit", "set-logic", "set-info", "set-option"})


@dataclass(frozen=True)
class TensorDecl:
    name: str
    kind: str  # input | output | hidden
    dtype: str  # as written (Real, float32, ...)
    shape: tuple[int, ...]
    onnx_name: str | None = None
    line: int = 0

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def is_real(self) -> bool:
        return self.dtype.lower() == REAL_TYPE

    def index_text(self, flat: int) -> str:
        """``X[0,3]`` for flat index 3 of a [1,5] tensor; ``X`` for a scalar."""
        if not self.shape:
            return self.name
        idx = []
        for d in reversed(self.shape):
            idx.append(flat % d)
            flat //= d
        return f"{self.name}[{','.join(str(i) for i in reversed(idx))}]"


@dataclass(frozen=True)
class NetworkDecl:
    name: str
    inputs: tuple[TensorDecl, ...]
    outputs: tuple[TensorDecl, ...]
    hidden: tuple[TensorDecl, ...] = ()
    equivalence: tuple[str, str] | None = None  # ("equal-to" | "isomorphic-to", other network)
    line: int = 0


@dataclass(frozen=True)
class Query:
    """A parsed 2.0 query: its declarations and the equivalent 1.0 text (same line numbers)."""

    version: str
    networks: tuple[NetworkDecl, ...]
    v1_text: str
    path: str

    @property
    def network(self) -> NetworkDecl:
        return self.networks[0]

    def to_spec(self, n_inputs: int | None = None, n_outputs: int | None = None) -> Spec:
        net = self.network
        try:
            return parse_vnnlib(self.v1_text, self.path, n_inputs, n_outputs)
        except SpecError as e:
            raise SpecError(_rename(e.detail, net), e.path, e.line) from None


# ----------------------------------------------------------------------------- reading files
def detect_version(text: str) -> str:
    """"2.0" if the text has ``(vnnlib-version ...)`` or ``(declare-network ...)``, else "1.0"."""
    if ";" in text:
        text = _COMMENT.sub("", text)
    return "2.0" if _V2_MARK.search(text) else "1.0"


def load_spec(path: str | os.PathLike, n_inputs: int | None = None, n_outputs: int | None = None) -> Spec:
    """Read a VNN-LIB 1.0 or 2.0 file (plain or gzip) into a :class:`Spec`; the version is detected."""
    text, real_path = read_spec_text(path)
    if detect_version(text) == "2.0":
        return parse_vnnlib2(text, real_path, n_inputs, n_outputs)
    return parse_vnnlib(text, real_path, n_inputs, n_outputs)


def load_query(path: str | os.PathLike) -> Query:
    """Read a 2.0 file into a :class:`Query` (declarations and the equivalent 1.0 text)."""
    text, real_path = read_spec_text(path)
    return parse_query(text, real_path)


def load_vnnlib2(path: str | os.PathLike, n_inputs: int | None = None, n_outputs: int | None = None) -> Spec:
    return load_query(path).to_spec(n_inputs, n_outputs)


def parse_vnnlib2(text: str, path: str = "<string>", n_inputs: int | None = None,
                  n_outputs: int | None = None) -> Spec:
    return parse_query(text, path).to_spec(n_inputs, n_outputs)


def parse_query(text: str, path: str = "<string>") -> Query:
    return _Translator(text, path).run()


# ----------------------------------------------------------------------------- translation
class _Translator:
    """Tokens of the 2.0 text -> edits (start, end, replacement) that give the 1.0 text."""

    def __init__(self, text: str, path: str):
        if ";" in text:  # blank comments, keeping offsets
            text = _COMMENT.sub(lambda m: " " * len(m.group()), text)
        self.text = text
        self.path = path
        self.edits: list[tuple[int, int, str]] = []
        self.vars: dict[str, tuple[TensorDecl, str]] = {}  # name -> (decl, "X" | "Y")
        self.names: set[str] = set()  # every declared name (networks and tensors)
        self.version = ""

    def line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def error(self, msg: str, pos: int | None = None) -> SpecError:
        return SpecError(msg, self.path, None if pos is None else self.line(pos))

    # --------------------------------------------------------------- S-expressions
    def read(self) -> list:
        """Top-level statements as lists ``[start, end, item...]``; atoms ``(text, start, end)``."""
        top: list = []
        stack: list = []
        cur = top
        for m in _TOK.finditer(self.text):
            t, s, e = m.group(), m.start(), m.end()
            if t == "(":
                node = [s, None]
                cur.append(node)
                stack.append(cur)
                cur = node
            elif t == ")":
                if not stack:
                    raise self.error("unexpected ')' (no '(' is open)", s)
                cur[1] = e
                cur = stack.pop()
            elif not stack:
                raise self.error(f"unexpected {t!r} outside parentheses", s)
            elif t in ("[", "]") or (len(t) == 1 and t in '"'):
                raise self.error(f"unbalanced {t!r}", s)
            else:
                cur.append((t, s, e))
        if stack:
            opened = top[-1][0] if top else 0
            raise self.error(f"missing ')' for the '(' opened at line {self.line(opened)} (end of file)", opened)
        return top

    @staticmethod
    def head(node) -> str | None:
        if isinstance(node, list) and len(node) > 2 and isinstance(node[2], tuple):
            return node[2][0]
        return None

    # --------------------------------------------------------------- top level
    def run(self) -> Query:
        stmts = self.read()
        if not stmts:
            raise self.error("empty file: no declarations and no assertions")
        networks: list[NetworkDecl] = []
        net_pos: list[int] = []
        asserts = []
        for st in stmts:
            h = self.head(st)
            if h == "vnnlib-version":
                self.read_version(st)
            elif h == "declare-network":
                if asserts:
                    raise self.error("network declarations must come before the assertions", st[0])
                networks.append(self.read_network(st))
                net_pos.append(st[0])
            elif h == "assert":
                asserts.append(st)
            elif h in _COMMANDS_V1:
                raise self.error(f"'{h}' is VNN-LIB 1.0; a 2.0 query declares its variables in "
                                 "(declare-network ...)", st[0])
            elif h in _IGNORED:
                self.blank(st[0], st[1])
            else:
                what = f"unknown command {h!r}" if h else "expected a command like (assert ...)"
                raise self.error(what, st[0])
        if not networks:
            raise self.error("no (declare-network ...) in the query")
        if len(networks) > 1:
            names = ", ".join(n.name for n in networks)
            raise self.error(f"the query declares {len(networks)} networks ({names}); only single-network "
                             "queries (theory SNET) are supported", net_pos[1])
        if not asserts:
            raise self.error("no assertions in the file")
        for st in asserts:
            self.translate_assert(st)
        return Query(self.version or "2.0", tuple(networks), self.apply(), self.path)

    def read_version(self, st: list) -> None:
        items = st[3:]
        if len(items) != 1 or not isinstance(items[0], tuple):
            raise self.error("expected (vnnlib-version <2.0>)", st[0])
        tok, pos, _ = items[0]
        m = re.fullmatch(r"<?([0-9]+)\.([0-9]+)>?", tok)
        if not m:
            raise self.error(f"bad version {tok!r}; expected <2.0>", pos)
        if m.group(1) != "2":
            raise self.error(f"VNN-LIB version {m.group(1)}.{m.group(2)} is not supported (2.x here; "
                             "1.0 files have no version line)", pos)
        self.version = f"{m.group(1)}.{m.group(2)}"
        self.blank(st[0], st[1])

    def read_network(self, st: list) -> NetworkDecl:
        items = st[3:]
        if not items or not isinstance(items[0], tuple) or not _NAME.fullmatch(items[0][0]):
            raise self.error("expected (declare-network NAME (declare-input ...) (declare-output ...))", st[0])
        name = items[0][0]
        self.check_new_name(name, items[0][1])
        ins, outs, hidden, equiv = [], [], [], None
        inner_edits = []
        for it in items[1:]:
            h = self.head(it)
            if h in ("equal-to", "isomorphic-to"):
                if len(it) != 4 or not isinstance(it[3], tuple):
                    raise self.error(f"expected ({h} NETWORK)", it[0])
                equiv = (h, it[3][0])
            elif h in ("declare-input", "declare-output", "declare-hidden"):
                decl = self.read_tensor(it, h.split("-")[1])
                {"input": ins, "output": outs, "hidden": hidden}[decl.kind].append(decl)
                inner_edits.append((it, decl))
            else:
                raise self.error("expected (declare-input ...), (declare-output ...), (declare-hidden ...), "
                                 "(equal-to ...) or (isomorphic-to ...) in a network declaration",
                                 it[0] if isinstance(it, list) else it[1])
        if equiv is not None:
            raise self.error(f"({equiv[0]} {equiv[1]}) refers to another network; only single-network queries "
                             "(theory SNET) are supported", st[0])
        if hidden:
            raise self.error(f"hidden node declarations ({hidden[0].name}) are not supported (theory NH only)",
                             st[0])
        if len(ins) != 1 or len(outs) != 1:
            raise self.error(f"network {name} declares {len(ins)} inputs and {len(outs)} outputs; exactly one "
                             "of each is supported (theory SIO)", st[0])
        # the network statement becomes declare-const lines at its input and output declarations
        pos = st[0]
        for it, decl in inner_edits:
            letter = "X" if decl.kind == "input" else "Y"
            self.vars[decl.name] = (decl, letter)
            self.blank(pos, it[0])
            consts = " ".join(f"(declare-const {letter}_{i} Real)" for i in range(decl.size))
            self.edits.append((it[0], it[1], consts + "\n" * self.text.count("\n", it[0], it[1])))
            pos = it[1]
        self.blank(pos, st[1])
        return NetworkDecl(name, tuple(ins), tuple(outs), tuple(hidden), equiv, self.line(st[0]))

    def read_tensor(self, it: list, kind: str) -> TensorDecl:
        items = it[3:]
        usage = f"(declare-{kind} NAME TYPE [d1,...,dn]" + (' "onnx-name")' if kind == "hidden" else ")")
        if len(items) < 3 or not all(isinstance(x, tuple) for x in items):
            raise self.error(f"expected {usage}", it[0])
        (name, npos, _), (dtype, tpos, _), (shape_tok, spos, _) = items[:3]
        if not _NAME.fullmatch(name):
            raise self.error(f"bad variable name {name!r} (letters, digits and _, starting with a letter)", npos)
        self.check_new_name(name, npos)
        if dtype.lower() != REAL_TYPE and dtype not in ONNX_ELEMENT_TYPES:
            raise self.error(f"unknown element type {dtype!r} for {name}; use Real or an ONNX type such as "
                             "float32", tpos)
        shape = self.parse_dims(shape_tok, spos, f"shape of {name}")
        if any(d <= 0 for d in shape):
            raise self.error(f"shape of {name} has a zero dimension", spos)
        onnx_name = None
        for extra, epos, _ in items[3:]:
            if extra.startswith('"') and onnx_name is None:
                onnx_name = extra[1:-1]
            elif extra == "initialized" and kind == "input":
                continue
            else:
                raise self.error(f"unexpected {extra!r} in the declaration of {name}", epos)
        if kind == "hidden" and onnx_name is None:
            raise self.error(f"hidden node {name} needs the ONNX node name as a string", it[0])
        return TensorDecl(name, kind, dtype, shape, onnx_name, self.line(it[0]))

    def parse_dims(self, tok: str, pos: int, what: str) -> tuple[int, ...]:
        if not (tok.startswith("[") and tok.endswith("]")):
            raise self.error(f"expected the {what} like [1,5], got {tok!r}", pos)
        inner = tok[1:-1].strip()
        if not inner:
            return ()
        parts = [p.strip() for p in inner.split(",")]
        if not all(re.fullmatch(r"[0-9]+", p) for p in parts):
            raise self.error(f"bad {what} {tok!r}: expected non-negative integers separated by commas", pos)
        return tuple(int(p) for p in parts)

    def check_new_name(self, name: str, pos: int) -> None:
        if name in self.names:
            raise self.error(f"{name} is declared twice (names must be unique in a query)", pos)
        self.names.add(name)

    # --------------------------------------------------------------- assertions
    def translate_assert(self, st: list) -> None:
        self._walk(st, top=True)

    def _walk(self, node: list, top: bool = False) -> None:
        items = node[2:]
        i = 0
        while i < len(items):
            it = items[i]
            if isinstance(it, list):
                self._walk(it)
                i += 1
                continue
            tok, s, e = it
            nxt = items[i + 1] if i + 1 < len(items) else None
            bracket = nxt if isinstance(nxt, tuple) and nxt[0].startswith("[") else None
            if tok.startswith("["):
                raise self.error(f"index {tok} does not follow a variable name", s)
            if top and i == 0:
                i += 1  # "assert"
                continue
            if tok in self.vars:
                decl, letter = self.vars[tok]
                if bracket is not None:
                    idx = self.parse_dims(bracket[0], bracket[1], f"index of {tok}")
                    end = bracket[2]
                    i += 2
                else:
                    idx, end = (), e
                    i += 1
                flat = self.flat_index(decl, idx, s)
                gap = self.text.count("\n", s, end)
                self.edits.append((s, end, f"{letter}_{flat}" + "\n" * gap))
                continue
            if tok in _OPERATORS:
                if _OPERATORS[tok] != tok:
                    self.edits.append((s, e, _OPERATORS[tok]))
            elif tok == "!=":
                raise self.error("'!=' is not supported (the closure of its set is the whole space)", s)
            elif tok.startswith('"'):
                raise self.error(f"unexpected string {tok} in an assertion", s)
            elif not _NUMBERISH.match(tok):
                if _NAME.fullmatch(tok):
                    raise self.error(f"undeclared variable {tok}", s)
                raise self.error(f"unknown symbol {tok!r}", s)
            # numbers go through: the 1.0 reader checks them
            if bracket is not None:
                raise self.error(f"index {bracket[0]} after {tok!r}, which is not a tensor variable", bracket[1])
            i += 1

    def flat_index(self, decl: TensorDecl, idx: tuple[int, ...], pos: int) -> int:
        if len(idx) != len(decl.shape):
            n = len(decl.shape)
            want = f"{n} ind{'ex' if n == 1 else 'ices'}" if n else "no index (it is a scalar)"
            raise self.error(f"{decl.name} has shape [{','.join(map(str, decl.shape))}] and needs {want}; got "
                             f"{len(idx)}", pos)
        flat = 0
        for k, (i, d) in enumerate(zip(idx, decl.shape)):
            if i >= d:
                raise self.error(f"index {i} is out of range for dimension {k} of {decl.name} (size {d})", pos)
            flat = flat * d + i
        return flat

    # --------------------------------------------------------------- edits
    def blank(self, s: int, e: int) -> None:
        if e > s:
            self.edits.append((s, e, "\n" * self.text.count("\n", s, e)))

    def apply(self) -> str:
        out, pos = [], 0
        for s, e, rep in sorted(self.edits, key=lambda t: (t[0], t[1])):
            if s < pos:  # nested edits cannot happen by construction; be safe
                continue
            out.append(self.text[pos:s])
            out.append(rep)
            pos = e
        out.append(self.text[pos:])
        return "".join(out)


def _rename(message: str, net: NetworkDecl) -> str:
    """Map the 1.0 names (X_3, Y_0) in a message back to the 2.0 ones (X[0,3], Y[0,0])."""
    decls = {"X": net.inputs[0], "Y": net.outputs[0]}

    def sub(m: re.Match) -> str:
        d = decls[m.group(1)]
        i = int(m.group(2))
        return d.index_text(i) if i < d.size else m.group()

    message = message.replace("(declare-const X_0 Real)", f"(declare-input {net.inputs[0].name} ...)")
    message = message.replace("VNN-LIB 1.0 input constraints must be boxes (X_i vs a number)",
                              "input constraints must be boxes (one input element against a number)")
    return re.sub(r"\b([XY])_([0-9]+)\b", sub, message)
