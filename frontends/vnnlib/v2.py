"""VNN-LIB 2.0 reader, and :func:`load_spec` that reads either version into a :class:`~verifier.ir.spec.Spec`.

VNN-LIB 2.0 (the draft standard of the VNNLIB organisation) declares a network's interface
instead of loose scalar constants::

    (vnnlib-version <2.0>)
    (declare-network acas
        (declare-input  X Real [1,5])
        (declare-output Y Real [1,5]))
    (assert (<= X[0,0] 0.679857769))
    (assert (or (and (<= Y[0,0] Y[0,1]) (<= Y[0,0] Y[0,2])) (>= Y[0,4] 1.5)))

Supported here: one network (theory SNET) with one input and one output tensor (SIO), no hidden
nodes (NH); element types ``Real`` or an ONNX type name (recorded in
:class:`~frontends.vnnlib.v2_network.TensorDecl` for the solver interface to check); tensor
elements ``X[i,j,...]`` (full indexing, zero based, C order, also written ``X [i, j]``), bare names
for scalar tensors (shape ``[]``); comparisons ``<=``, ``>=``, the strict ``<``, ``>`` (kept strict, as
in 1.0: open input bounds and strict output rows), ``==`` (also ``=``); ``and`` / ``or``; linear terms
``+``, ``-``, ``*`` by constants; numbers as in 1.0 (:mod:`frontends.vnnlib.numbers`). ``!=`` is
rejected: ``a != b`` is the disjunction ``a < b`` or ``a > b``, which the query can say with ``or``. As
in 1.0, constraints on the input must be boxes (one input element against a number), output
constraints are linear.

The query is read by :mod:`frontends.vnnlib.sexpr` (with the 2.0 tokens: ``[i,j]`` indices, strings,
``<2.0>``), its network declaration by :mod:`frontends.vnnlib.v2_network` (a tensor of more than
``limits.tensor_elements`` elements is refused there, before anything is made for it); then it is
translated token by token into the 1.0 form (``X[0,3]`` becomes ``X_3``, the network declaration becomes
blank lines: the 1.0 reader is told the sizes and the names used) with every line kept where it was, and
read by :mod:`frontends.vnnlib.v1`; error messages are mapped back to the 2.0 names, with the file and line
of the original text.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace

from frontends.vnnlib.files import read_spec_text
from frontends.vnnlib.numbers import is_non_finite_word, literal_value, why_not
from frontends.vnnlib.sexpr import Source, end, gc_paused, head, lexicon, read, reading_deadline
from frontends.vnnlib.v1 import IGNORED_COMMANDS, parse_declared, parse_vnnlib
from frontends.vnnlib.v2_network import NAME, NetworkDecl, TensorDecl, parse_dims, read_network
from verifier.ir.deadline import Deadline
from verifier.ir.errors import DeadlineExpired, SpecError
from verifier.ir.spec import Spec
from verifier.settings.inputs import LimitSettings

SUPPORTED_VERSIONS = ("1.0", "2.0")

_V2_WORDS = ("vnnlib-version", "declare-network")
_V2_MARK = re.compile(r"\(\s*(?:vnnlib-version|declare-network)(?:[^\w-]|\Z)")  # from the '(' to one past the word
_LEXICON = lexicon(atoms=r'\[[^\[\]()]*\]|"(?:[^"\\]|\\.)*"|<[0-9]+(?:\.[0-9]+)*>|[^\s()\[\]"]+|\S',
                   unbalanced=frozenset({"[", "]", '"'}))
_OPERATORS = {"and": "and", "or": "or", "+": "+", "-": "-", "*": "*", "<=": "<=", ">=": ">=", "=": "=",
              "==": "=", "<": "<", ">": ">"}
_COMMANDS_V1 = frozenset({"declare-const", "declare-fun"})
_TICK = 1 << 8  # statements between two looks at the deadline
_TOKEN_TICK = 1 << 13  # tokens of one statement between two looks at the deadline


@dataclass(frozen=True)
class Query:
    """A parsed 2.0 query: its declarations and the equivalent 1.0 text (same line numbers), whose variables
    ``names`` lists (1.0 name -> (is_input, flat index)); ``declared_lines`` holds the lines of the input and
    output declarations."""

    version: str
    networks: tuple[NetworkDecl, ...]
    v1_text: str
    path: str
    names: dict = field(default_factory=dict, compare=False)
    declared_lines: tuple[int, int] = (1, 1)

    @property
    def network(self) -> NetworkDecl:
        return self.networks[0]

    @gc_paused
    def to_spec(self, n_inputs: int | None = None, n_outputs: int | None = None, limits: LimitSettings | None = None,
                deadline: Deadline | None = None) -> Spec:
        net = self.network
        limits = replace(limits or LimitSettings(), spec_bytes=0)  # the query's own size was checked
        at = [_line_start(self.v1_text, line) for line in self.declared_lines]
        declared = ((net.inputs[0].size, at[0]), (net.outputs[0].size, at[1]))
        try:
            return parse_declared(Source(self.v1_text, self.path, limits, deadline), declared, self.names,
                                  n_inputs, n_outputs)
        except SpecError as e:
            raise SpecError(_rename(e.detail, net), e.path, e.line) from None


# ----------------------------------------------------------------------------- reading files
def detect_version(text: str) -> str:
    """"2.0" if the text has ``(vnnlib-version ...)`` or ``(declare-network ...)`` outside a comment, else "1.0".

    The words are found with ``str.find`` and each place checked (a ``(`` before it, on a line where no ``;``
    comes first): a big 1.0 file is scanned at memory speed, with no copy of it."""
    for word in _V2_WORDS:
        i = text.find(word)
        while i >= 0:
            if _V2_MARK.fullmatch(text, text.rfind("(", 0, i), i + len(word) + 1):
                line_start = text.rfind("\n", 0, i) + 1
                if ";" not in text[line_start:i]:
                    return "2.0"
            i = text.find(word, i + 1)
    return "1.0"


@gc_paused
def load_spec(path: str | os.PathLike, n_inputs: int | None = None, n_outputs: int | None = None,
              limits: LimitSettings | None = None, deadline: Deadline | None = None) -> Spec:
    """Read a VNN-LIB 1.0 or 2.0 file (plain or gzip) into a :class:`Spec`; the version is detected.

    ``limits`` (default :class:`LimitSettings`) bound what the file may ask of the machine, each error naming
    its limit; ``deadline`` is checked while the file is read (:class:`~verifier.ir.errors.DeadlineExpired`)."""
    deadline = reading_deadline(deadline)
    text, real_path = read_spec_text(path, limits, deadline)
    version = detect_version(text)
    if deadline is not None and deadline.expired():
        raise DeadlineExpired(f"{real_path}: timed out while reading the spec")
    if version == "2.0":
        return parse_vnnlib2(text, real_path, n_inputs, n_outputs, limits, deadline)
    return parse_vnnlib(text, real_path, n_inputs, n_outputs, limits, deadline)


def load_query(path: str | os.PathLike, limits: LimitSettings | None = None, deadline: Deadline | None = None) -> Query:
    """Read a 2.0 file into a :class:`Query` (declarations and the equivalent 1.0 text)."""
    text, real_path = read_spec_text(path, limits, deadline)
    return parse_query(text, real_path, limits, deadline)


def load_vnnlib2(path: str | os.PathLike, n_inputs: int | None = None, n_outputs: int | None = None,
                 limits: LimitSettings | None = None, deadline: Deadline | None = None) -> Spec:
    return load_query(path, limits, deadline).to_spec(n_inputs, n_outputs, limits, deadline)


def parse_vnnlib2(text: str, path: str = "<string>", n_inputs: int | None = None, n_outputs: int | None = None,
                  limits: LimitSettings | None = None, deadline: Deadline | None = None) -> Spec:
    return parse_query(text, path, limits, deadline).to_spec(n_inputs, n_outputs, limits, deadline)


@gc_paused
def parse_query(text: str, path: str = "<string>", limits: LimitSettings | None = None,
                deadline: Deadline | None = None) -> Query:
    return _Translator(Source(text, path, limits, deadline)).run()


# ----------------------------------------------------------------------------- translation
class _Translator:
    """Statements of the 2.0 text -> edits (start, end, replacement) that give the 1.0 text."""

    def __init__(self, src: Source):
        self.src = src
        self.text = self.src.text
        self.error = self.src.error
        self.edits: list[tuple[int, int, str]] = []
        self.vars: dict[str, tuple[TensorDecl, str]] = {}  # name -> (decl, "X" | "Y")
        self.names: set[str] = set()  # every declared name (networks and tensors)
        self.used: dict[str, tuple[bool, int]] = {}  # 1.0 names the translation wrote -> (is_input, index)
        self.declared_lines = [1, 1]  # lines of the input and the output declaration
        self.indices: dict[str, tuple[int, ...]] = {}  # index token ([0,3]) -> its integers
        self.version = ""

    # --------------------------------------------------------------- top level
    def run(self) -> Query:
        stmts = read(self.src, _LEXICON)
        if not stmts:
            raise self.error("empty file: no declarations and no assertions")
        networks: list[NetworkDecl] = []
        net_pos: list[int] = []
        asserts = []
        for st in stmts:
            h = head(st)
            if h == "vnnlib-version":
                self.read_version(st)
            elif h == "declare-network":
                if asserts:
                    raise self.error("network declarations must come before the assertions", st[0])
                networks.append(self.declare_network(st))
                net_pos.append(st[0])
            elif h == "assert":
                asserts.append(st)
            elif h in _COMMANDS_V1:
                raise self.error(f"'{h}' is VNN-LIB 1.0; a 2.0 query declares its variables in "
                                 "(declare-network ...)", st[0])
            elif h in IGNORED_COMMANDS:
                self.blank(st[0], end(self.src, st))
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
        for k, st in enumerate(asserts):
            if not k % _TICK:
                self.src.check_time(st[0])
            self.translate(st)
        return Query(self.version or "2.0", tuple(networks), self.apply(), self.src.path, self.used,
                     tuple(self.declared_lines))

    def read_version(self, st: list) -> None:
        items = st[2:]
        if len(items) != 1 or not isinstance(items[0], tuple):
            raise self.error("expected (vnnlib-version <2.0>)", st[0])
        tok, pos = items[0]
        m = re.fullmatch(r"<?([0-9]+)\.([0-9]+)>?", tok)
        if not m:
            raise self.error(f"bad version {tok!r}; expected <2.0>", pos)
        if m.group(1) != "2":
            raise self.error(f"VNN-LIB version {m.group(1)}.{m.group(2)} is not supported (2.x here; "
                             "1.0 files have no version line)", pos)
        self.version = f"{m.group(1)}.{m.group(2)}"
        self.blank(st[0], end(self.src, st))

    def declare_network(self, st: list) -> NetworkDecl:
        """Read the network; its statement becomes blank lines (the 1.0 reader is told the sizes)."""
        net, tensors = read_network(self.src, st, self.names)
        for it, decl in tensors:
            letter = "X" if decl.kind == "input" else "Y"
            self.vars[decl.name] = (decl, letter)
            self.declared_lines[letter == "Y"] = self.src.line(it[0])
        self.blank(st[0], end(self.src, st))
        return net

    # --------------------------------------------------------------- assertions
    def translate(self, st: list) -> None:
        """Edits for the tokens of an ``(assert ...)`` statement (a walk with its own stack: no recursion)."""
        stack: list = []
        items, i = st[1:], 1  # items[0] is "assert"
        countdown = _TOKEN_TICK
        while True:
            countdown -= 1
            if countdown == 0:
                countdown = _TOKEN_TICK
                self.src.check_time(st[0])
            if i >= len(items):
                if not stack:
                    return
                items, i = stack.pop()
                continue
            it = items[i]
            if isinstance(it, list):
                stack.append((items, i + 1))
                items, i = it[1:], 0
                continue
            tok, s = it
            e = s + len(tok)
            nxt = items[i + 1] if i + 1 < len(items) else None
            bracket = nxt if isinstance(nxt, tuple) and nxt[0].startswith("[") else None
            if tok.startswith("["):
                raise self.error(f"index {tok} does not follow a variable name", s)
            if tok in self.vars:
                i += self.variable(tok, s, e, bracket)
                continue
            if tok in _OPERATORS:
                if _OPERATORS[tok] != tok:
                    self.edits.append((s, e, _OPERATORS[tok]))
            elif tok == "!=":
                raise self.error("'!=' is not supported: a != b is the disjunction of a < b and a > b; write "
                                 "(or (< a b) (> a b))", s)
            elif tok.startswith('"'):
                raise self.error(f"unexpected string {tok} in an assertion", s)
            elif literal_value(tok) is None:
                if NAME.fullmatch(tok) and not is_non_finite_word(tok):
                    raise self.error(f"undeclared variable {tok}", s)
                raise self.error(why_not(tok), s)
            if bracket is not None:
                raise self.error(f"index {bracket[0]} after {tok!r}, which is not a tensor variable", bracket[1])
            i += 1

    def variable(self, tok: str, s: int, e: int, bracket: tuple | None) -> int:
        """The edit for a tensor element (``X[0,3]`` -> ``X_3``); how many tokens it took (1 or 2)."""
        decl, letter = self.vars[tok]
        if bracket is not None:
            idx = self.indices.get(bracket[0])
            if idx is None:
                idx = self.indices[bracket[0]] = parse_dims(self.src, bracket[0], bracket[1], f"index of {tok}")
            stop, taken = bracket[1] + len(bracket[0]), 2
        else:
            idx, stop, taken = (), e, 1
        flat = self.flat_index(decl, idx, s)
        gap = self.text.count("\n", s, stop)
        name = f"{letter}_{flat}"
        self.used[name] = (letter == "X", flat)
        self.edits.append((s, stop, name + "\n" * gap))
        return taken

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


def _line_start(text: str, line: int) -> int:
    """The offset where 1-based ``line`` of ``text`` starts."""
    pos = 0
    for _ in range(line - 1):
        pos = text.index("\n", pos) + 1
    return pos


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
