"""VNN-LIB 2.0 network declarations: :class:`TensorDecl`, :class:`NetworkDecl`, and reading them.

``(declare-network NAME [(equal-to M) | (isomorphic-to M)] (declare-input X TYPE [d1,...] ["onnx-name"])...
(declare-hidden H TYPE [d1,...] "onnx-name")... (declare-output Y TYPE [d1,...] ["onnx-name"])...)`` as read by
:mod:`frontends.vnnlib.sexpr`: one or more inputs and outputs (theories SIO / MIO), hidden nodes (an
intermediate ONNX tensor named by its string, theory H), and an equivalence to another network (``equal-to``:
the same model, its own variables; ``isomorphic-to``: the same structure, its own model). Element types are
``real`` (also ``Real``) or an ONNX type name. A tensor of more than ``limits.tensor_elements`` elements (the
product of its dimensions) is refused as its declaration is read, before anything is made for it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from frontends.vnnlib.sexpr import Source, head

# ONNX tensor element type names (IR.md, "Set 1" as the standard asks) plus the standard's `real`
ONNX_ELEMENT_TYPES = frozenset({
    "float16", "float32", "float64", "bfloat16", "float8e4m3fn", "float8e5m2", "float8e4m3fnuz",
    "float8e5m2fnuz", "float4e2m1", "int4", "int8", "int16", "int32", "int64", "uint4", "uint8", "uint16",
    "uint32", "uint64", "bool", "complex64", "complex128", "string"})
REAL_SPELLINGS = frozenset({"real", "Real"})  # the standard's `real`, and `Real` as the SMT-LIB sort (symbols are
# case-sensitive: `REAL` is no type)
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # a network or tensor name
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_MAX_DIGITS = 18  # of a dimension or an index (a larger one is out of any range: refused before int())


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
        return self.dtype in REAL_SPELLINGS

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

    @property
    def declarations(self) -> tuple[TensorDecl, ...]:
        """Inputs, hidden nodes, outputs: the standard's order (that of a satisfying assignment)."""
        return self.inputs + self.hidden + self.outputs


def read_network(src: Source, st: list, names: set[str]) -> tuple[NetworkDecl, list[tuple[list, TensorDecl]]]:
    """The network that statement ``st`` declares, and its tensor declarations (node, decl) in order.

    Every name declared is added to ``names`` (and must not be there yet).
    """
    items = st[2:]
    if not items or not isinstance(items[0], tuple) or not NAME.fullmatch(items[0][0]):
        raise src.error("expected (declare-network NAME (declare-input ...) (declare-output ...))", st[0])
    name = items[0][0]
    _check_new_name(src, names, name, items[0][1])
    ins, outs, hidden, equiv = [], [], [], None
    tensors = []
    for it in items[1:]:
        h = head(it)
        if h in ("equal-to", "isomorphic-to"):
            if len(it) != 3 or not isinstance(it[2], tuple):
                raise src.error(f"expected ({h} NETWORK)", it[0])
            if equiv is not None:
                raise src.error(f"network {name} is declared {equiv[0]} {equiv[1]} already", it[0])
            equiv = (h, it[2][0])
        elif h in ("declare-input", "declare-output", "declare-hidden"):
            decl = _read_tensor(src, it, h.split("-")[1], names)
            {"input": ins, "output": outs, "hidden": hidden}[decl.kind].append(decl)
            tensors.append((it, decl))
        else:
            raise src.error("expected (declare-input ...), (declare-output ...), (declare-hidden ...), "
                            "(equal-to ...) or (isomorphic-to ...) in a network declaration",
                            it[0] if isinstance(it, list) else it[1])
    if not ins or not outs:
        raise src.error(f"network {name} declares {len(ins)} inputs and {len(outs)} outputs; a network needs at "
                        "least one of each", st[0])
    return NetworkDecl(name, tuple(ins), tuple(outs), tuple(hidden), equiv, src.line(st[0])), tensors


def _read_tensor(src: Source, it: list, kind: str, names: set[str]) -> TensorDecl:
    items = it[2:]
    usage = f"(declare-{kind} NAME TYPE [d1,...,dn]" + (' "onnx-name")' if kind == "hidden" else ")")
    if len(items) < 3 or not all(isinstance(x, tuple) for x in items):
        raise src.error(f"expected {usage}", it[0])
    (name, npos), (dtype, tpos), (shape_tok, spos) = items[:3]
    if not NAME.fullmatch(name):
        raise src.error(f"bad variable name {name!r} (letters, digits and _, starting with a letter)", npos)
    _check_new_name(src, names, name, npos)
    if dtype not in REAL_SPELLINGS and dtype not in ONNX_ELEMENT_TYPES:
        raise src.error(f"unknown element type {dtype!r} for {name}; use Real (or real) or an ONNX type such as "
                        "float32 (type names are case-sensitive)", tpos)
    shape = parse_dims(src, shape_tok, spos, f"shape of {name}")
    if any(d <= 0 for d in shape):
        raise src.error(f"shape of {name} has a zero dimension", spos)
    size, limit = math.prod(shape), src.limits.tensor_elements
    if limit and size > limit:
        raise src.over_limit("tensor_elements", f"{name} has {size} elements (shape {shape_tok})", spos, size)
    onnx_name = None
    for extra, epos in items[3:]:
        if extra.startswith('"') and onnx_name is None:
            onnx_name = extra[1:-1]
        elif extra == "initialized" and kind == "input":
            continue
        else:
            raise src.error(f"unexpected {extra!r} in the declaration of {name}", epos)
    if kind == "hidden" and onnx_name is None:
        raise src.error(f"hidden node {name} needs the ONNX node name as a string", it[0])
    return TensorDecl(name, kind, dtype, shape, onnx_name, src.line(it[0]))


def parse_dims(src: Source, tok: str, pos: int, what: str) -> tuple[int, ...]:
    """The integers of a bracket token ``[1,5]`` (a shape or an index; ``[]`` is ``()``)."""
    if not (tok.startswith("[") and tok.endswith("]")):
        raise src.error(f"expected the {what} like [1,5], got {tok!r}", pos)
    inner = tok[1:-1].strip()
    if not inner:
        return ()
    parts = [p.strip() for p in inner.split(",")]
    if not all(_DIGITS.fullmatch(p) for p in parts):
        raise src.error(f"bad {what} {tok!r}: expected non-negative integers separated by commas", pos)
    if any(len(p.lstrip("0")) > _MAX_DIGITS for p in parts):
        raise src.error(f"bad {what} {tok!r}: an integer of more than {_MAX_DIGITS} digits", pos)
    return tuple(int(p) for p in parts)


def _check_new_name(src: Source, names: set[str], name: str, pos: int) -> None:
    if name in names:
        raise src.error(f"{name} is declared twice (names must be unique in a query)", pos)
    names.add(name)
