"""VNN-LIB 2.0 reader, and :func:`load_spec` that reads either version into a :class:`~verifier.ir.spec.Spec`.

VNN-LIB 2.0 (the standard of the VNNLIB organisation) declares the networks' interfaces instead of loose scalar
constants::

    (vnnlib-version <2.0>)
    (declare-network acas
        (declare-input  X float32 [1,5])
        (declare-output Y float32 [1,5]))
    (assert (<= X[0,0] 0.679857769))
    (assert (or (and (<= Y[0,0] Y[0,1]) (<= Y[0,0] Y[0,2])) (>= Y[0,4] 1.5)))

The whole language is read: one or more networks, each with one or more inputs and outputs (theories SIO / MIO),
hidden nodes (``(declare-hidden H float32 [1,8] "onnx-tensor")``, theory H), ``(equal-to M)`` (the same model as
network M, with variables of its own) and ``(isomorphic-to M)`` (the same structure, a model of its own); tensor
elements ``X[i,j,...]`` (full indexing, zero based, C order, also written ``X [i, j]``), bare names for scalar
tensors (shape ``[]``); comparisons ``<=``, ``>=``, the strict ``<``, ``>`` (kept strict: open input bounds and
strict output rows), ``==`` (also ``=``) and ``!=`` (``a != b`` is read as ``(or (< a b) (> a b))``); ``and`` /
``or``; linear terms ``+``, ``-``, ``*`` by constants (a product of variables is refused); numbers as in 1.0
(:mod:`frontends.vnnlib.numbers`). Any comparison may relate inputs, outputs and hidden nodes of any networks.

Layout (:class:`Query`): the query becomes one problem ``x in box, C y <= d`` over augmented vectors. ``x`` is
every declared input, flattened and concatenated in declaration order; ``y`` is every declared output and
hidden node in declaration order, then a pass-through copy of each input element that a comparison which is not
a box names (a comparison with two or more input elements, or an input element and an output or hidden one):
in such a comparison the input element is read as its copy among the outputs, which is an output row like any
other. The box is the box part of the input constraints: an input element without a finite lower and upper
bound of its own is refused, naming it (the methods need a bounded box). The model of that problem is the
query's networks composed (:mod:`frontends.vnnlib.compose`), so a counterexample of it is exactly a satisfying
assignment. A plain query (one network, one input, one output, no hidden node, no pass-through) is the
network's own model with the same indices. :func:`load_spec` (the main ``verify`` command) reads plain queries
only and refuses the others, naming ``vnnlib-solver verify``, which gives each network its model.

Element types: ``real`` (also ``Real``) or an ONNX type name (:class:`~frontends.vnnlib.v2_network.TensorDecl`);
the solver interface checks them against the models (section 5.3.2 of the standard: unless every declaration is
``real``, each must be the type of its ONNX tensor). What a declaration means for an answer: ``real`` asks about
the network in real arithmetic; ``float32`` / ``float64`` about the network as ONNX evaluates it in that type. A
``sat`` is always an assignment that onnxruntime, running the models in their declared float type, confirms
(float semantics exactly). An ``unsat`` comes from bounds that are sound over the reals and widened by a rounding
allowance of the float type they are computed in (``verifier.bounds.objective``), or from the exact rational
check (``verifier.bounds.exact``): it proves that no real input of the box reaches the unsafe set in the network
evaluated in real arithmetic. For float32 it is not a bit-exact statement: a point that meets a constraint only
through float rounding exactly at its boundary is not excluded by it (on a strict comparison's boundary such a
point is found and answered ``sat`` when the search meets it first).

The query is read by :mod:`frontends.vnnlib.sexpr` (with the 2.0 tokens: ``[i,j]`` indices, strings, ``<2.0>``),
its network declarations by :mod:`frontends.vnnlib.v2_network` (a tensor of more than ``limits.tensor_elements``
elements is refused there, before anything is made for it, and so are inputs or outputs of more elements in
all); then it is translated token by token into the 1.0 form over the augmented vectors (``X[0,3]`` becomes
``X_3``, the network declarations become blank lines: the 1.0 reader is told the sizes and the names used) with
every line kept where it was, and read by :mod:`frontends.vnnlib.v1`; error messages are mapped back to the 2.0
names, with the file and line of the original text.
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
_COMPARISON_WORDS = frozenset({"<=", ">=", "<", ">", "=", "==", "!="})
_COMMANDS_V1 = frozenset({"declare-const", "declare-fun"})
_TICK = 1 << 8  # statements between two looks at the deadline
_TOKEN_TICK = 1 << 13  # tokens of one statement between two looks at the deadline


@dataclass(frozen=True)
class Query:
    """A parsed 2.0 query: its declarations and the equivalent 1.0 text (same line numbers), whose variables
    ``names`` lists (1.0 name -> (is_input, flat index)); ``declared_lines`` holds the lines of the first input
    and the first output declaration.

    The 1.0 text is over the *augmented* vectors (see the module docstring): ``X_i`` is element ``i`` of every
    declared input flattened and concatenated in declaration order (``x_slots``: (offset, decl)), ``Y_j`` element
    ``j`` of every declared output and hidden node in declaration order (``y_slots``), then the pass-through copies
    of the input elements ``passthrough`` lists (those that a non-box constraint names)."""

    version: str
    networks: tuple[NetworkDecl, ...]
    v1_text: str
    path: str
    names: dict = field(default_factory=dict, compare=False)
    declared_lines: tuple[int, int] = (1, 1)
    x_slots: tuple[tuple[int, TensorDecl], ...] = ()
    y_slots: tuple[tuple[int, TensorDecl], ...] = ()
    passthrough: tuple[int, ...] = ()

    @property
    def network(self) -> NetworkDecl:
        return self.networks[0]

    @property
    def n_x(self) -> int:
        return sum(d.size for _, d in self.x_slots)

    @property
    def n_y(self) -> int:
        return sum(d.size for _, d in self.y_slots) + len(self.passthrough)

    @property
    def is_plain(self) -> bool:
        """One network, one input, one output, no hidden node, no pass-through: the model itself is the problem."""
        net = self.network
        return (len(self.networks) == 1 and len(net.inputs) == 1 and len(net.outputs) == 1 and not net.hidden
                and not self.passthrough)

    @property
    def declarations(self) -> tuple[TensorDecl, ...]:
        """Every declared tensor in the standard's order: per network, inputs, hidden nodes, outputs."""
        return tuple(d for net in self.networks for d in net.declarations)

    def element_name(self, is_input: bool, index: int) -> str:
        """``X[0,3]`` for an index of the augmented input (``is_input``) or output vector."""
        slots = self.x_slots if is_input else self.y_slots
        for off, d in slots:
            if off <= index < off + d.size:
                return d.index_text(index - off)
        k = index - sum(d.size for _, d in slots)
        if not is_input and 0 <= k < len(self.passthrough):
            return self.element_name(True, self.passthrough[k])
        return f"{'X' if is_input else 'Y'}_{index}"

    def values(self, x, y) -> list[tuple[TensorDecl, list]]:
        """(declaration, its values row-major) of every declared tensor, in the standard's order, from the
        augmented input ``x`` and output ``y``."""
        where = {d.name: (x, off) for off, d in self.x_slots} | {d.name: (y, off) for off, d in self.y_slots}
        out = []
        for d in self.declarations:
            vec, off = where[d.name]
            out.append((d, [vec[off + k] for k in range(d.size)]))
        return out

    @gc_paused
    def to_spec(self, n_inputs: int | None = None, n_outputs: int | None = None, limits: LimitSettings | None = None,
                deadline: Deadline | None = None) -> Spec:
        limits = replace(limits or LimitSettings(), spec_bytes=0)  # the query's own size was checked
        at = [_line_start(self.v1_text, line) for line in self.declared_lines]
        declared = ((self.n_x, at[0]), (self.n_y, at[1]))
        try:
            return parse_declared(Source(self.v1_text, self.path, limits, deadline), declared, self.names,
                                  n_inputs, n_outputs)
        except SpecError as e:
            raise SpecError(_rename(e.detail, self), e.path, e.line) from None


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
    return _plain(load_query(path, limits, deadline)).to_spec(n_inputs, n_outputs, limits, deadline)


def parse_vnnlib2(text: str, path: str = "<string>", n_inputs: int | None = None, n_outputs: int | None = None,
                  limits: LimitSettings | None = None, deadline: Deadline | None = None) -> Spec:
    """The spec of a plain 2.0 query (one network, one input, one output, no hidden node, no pass-through)."""
    return _plain(parse_query(text, path, limits, deadline)).to_spec(n_inputs, n_outputs, limits, deadline)


def _plain(query: Query) -> Query:
    """``query`` if the network's own model is its problem; else a SpecError that names what it needs."""
    if query.is_plain:
        return query
    net = query.network
    if len(query.networks) > 1:
        what = f"declares {len(query.networks)} networks"
    elif len(net.inputs) > 1 or len(net.outputs) > 1:
        what = f"declares {len(net.inputs)} inputs and {len(net.outputs)} outputs"
    elif net.hidden:
        what = f"declares hidden node {net.hidden[0].name}"
    else:
        what = f"relates {query.element_name(True, query.passthrough[0])} to other variables"
    line = net.line if len(query.networks) == 1 else query.networks[1].line
    raise SpecError(f"this query {what}: it is a problem over the networks composed; run it with vnnlib-solver "
                    "verify QUERY --network NAME=MODEL", query.path, line)


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
        self.vars: dict[str, tuple[TensorDecl, str, int]] = {}  # name -> (decl, "X" | "Y", offset in that vector)
        self.names: set[str] = set()  # every declared name (networks and tensors)
        self.used: dict[str, tuple[bool, int]] = {}  # 1.0 names the translation wrote -> (is_input, index)
        self.declared_lines = [0, 0]  # lines of the first input and the first output declaration
        self.x_slots: list[tuple[int, TensorDecl]] = []
        self.y_slots: list[tuple[int, TensorDecl]] = []
        self.sizes = [0, 0]  # elements of the augmented input and output (before the pass-through) so far
        self.passthrough: dict[int, int] = {}  # augmented input index -> its pass-through position
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
        self.check_equivalences(networks, net_pos)
        if not asserts:
            raise self.error("no assertions in the file")
        for k, st in enumerate(asserts):
            if not k % _TICK:
                self.src.check_time(st[0])
            self.translate(st)
        return Query(self.version or "2.0", tuple(networks), self.apply(), self.src.path, self.used,
                     tuple(self.declared_lines), tuple(self.x_slots), tuple(self.y_slots), tuple(self.passthrough))

    def check_equivalences(self, networks: list[NetworkDecl], net_pos: list[int]) -> None:
        """``(equal-to M)`` / ``(isomorphic-to M)`` name another declared network with the same interface."""
        by_name = {n.name: n for n in networks}
        for net, pos in zip(networks, net_pos):
            if net.equivalence is None:
                continue
            how, other = net.equivalence
            target = by_name.get(other)
            if target is None or target is net:
                what = "itself" if target is net else f"{other}, which the query does not declare"
                raise self.error(f"network {net.name} is declared {how} {what}", pos)
            for kind in ("inputs", "outputs"):
                mine, theirs = getattr(net, kind), getattr(target, kind)
                if len(mine) != len(theirs) or any(a.shape != b.shape for a, b in zip(mine, theirs)):
                    shapes = [list(d.shape) for d in mine], [list(d.shape) for d in theirs]
                    raise self.error(f"network {net.name} is declared {how} {other} but its {kind} {shapes[0]} "
                                     f"differ from {other}'s {shapes[1]}", pos)

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
            is_y = decl.kind != "input"
            off = self.sizes[is_y]
            self.vars[decl.name] = (decl, "XY"[is_y], off)
            (self.y_slots if is_y else self.x_slots).append((off, decl))
            self.sizes[is_y] = off + decl.size
            if not self.declared_lines[is_y]:
                self.declared_lines[is_y] = self.src.line(it[0])
            limit = self.src.limits.tensor_elements
            if limit and self.sizes[is_y] > limit:
                raise self.src.over_limit("tensor_elements", f"the declared {'outputs' if is_y else 'inputs'} have "
                                          f"{self.sizes[is_y]} elements in all", it[0], self.sizes[is_y])
        self.blank(st[0], end(self.src, st))
        return net

    # --------------------------------------------------------------- assertions
    def translate(self, st: list) -> None:
        """Edits for the tokens of an ``(assert ...)`` statement."""
        self.walk(st[1:], 1, self.edits, False, st[0])

    def walk(self, items: list, i: int, edits: list, route: bool, at: int) -> None:
        """Edits (into ``edits``) for the tokens of ``items[i:]``, a walk with its own stack (no recursion).

        ``route``: input elements become their pass-through outputs (inside a comparison that is not a box)."""
        stack: list = []
        countdown = _TOKEN_TICK
        while True:
            countdown -= 1
            if countdown == 0:
                countdown = _TOKEN_TICK
                self.src.check_time(at)
            if i >= len(items):
                if not stack:
                    return
                items, i, route = stack.pop()
                continue
            it = items[i]
            if isinstance(it, list):
                h = head(it)
                inner = self.routes(it) if h in _COMPARISON_WORDS else route
                if h == "!=":
                    self.not_equal(it, edits, inner, at)
                    i += 1
                    continue
                stack.append((items, i + 1, route))
                items, i, route = it[1:], 0, inner
                continue
            tok, s = it
            e = s + len(tok)
            nxt = items[i + 1] if i + 1 < len(items) else None
            bracket = nxt if isinstance(nxt, tuple) and nxt[0].startswith("[") else None
            if tok.startswith("["):
                raise self.error(f"index {tok} does not follow a variable name", s)
            if tok in self.vars:
                i += self.variable(tok, s, e, bracket, edits, route)
                continue
            if tok in _OPERATORS:
                if _OPERATORS[tok] != tok:
                    edits.append((s, e, _OPERATORS[tok]))
            elif tok == "!=":
                raise self.error("'!=' needs two operands: (!= a b)", s)
            elif tok.startswith('"'):
                raise self.error(f"unexpected string {tok} in an assertion", s)
            elif literal_value(tok) is None:
                if NAME.fullmatch(tok) and not is_non_finite_word(tok):
                    raise self.error(f"undeclared variable {tok}", s)
                raise self.error(why_not(tok), s)
            if bracket is not None:
                raise self.error(f"index {bracket[0]} after {tok!r}, which is not a tensor variable", bracket[1])
            i += 1

    def routes(self, node: list) -> bool:
        """Whether comparison ``node`` is not a box on one input element: it names two or more input elements, or
        an input element and an output or hidden one. Its input elements are then read as pass-through outputs."""
        vars_ = self.vars
        if all(type(it) is tuple for it in node[1:]):  # the usual atom, tokens only: routed only with an input
            if not any(vars_[it[0]][1] == "X" for it in node[2:] if it[0] in vars_):
                return False
        inputs: set[int] = set()
        other = False
        stack = [node[1:]]
        while stack:
            items = stack.pop()
            for k, it in enumerate(items):
                if isinstance(it, list):
                    stack.append(it[1:])
                    continue
                v = self.vars.get(it[0])
                if v is None:
                    continue
                if v[1] != "X":
                    other = True
                    continue
                nxt = items[k + 1] if k + 1 < len(items) else None
                idx = self.index_of(it[0], nxt) if isinstance(nxt, tuple) and nxt[0].startswith("[") else ()
                inputs.add(v[2] + self.flat_index(v[0], idx, it[1]))
        return len(inputs) > 1 or (bool(inputs) and other)

    def not_equal(self, node: list, edits: list, route: bool, at: int) -> None:
        """``(!= a b)`` becomes ``(or (< a b) (> a b))`` (the operands translated), on the node's first line."""
        groups: list[list] = []  # operands: a list node, a token, or a variable and its index
        for it in node[2:]:
            if isinstance(it, tuple) and it[0].startswith("[") and groups and isinstance(groups[-1][-1], tuple) \
                    and groups[-1][-1][0] in self.vars and len(groups[-1]) == 1:
                groups[-1].append(it)
            else:
                groups.append([it])
        if len(groups) != 2:
            raise self.error(f"'!=' needs two operands, got {len(groups)}", node[0])
        texts = []
        for g in groups:
            s = g[0][0] if isinstance(g[0], list) else g[0][1]
            e = end(self.src, g[-1])
            local: list = []
            self.walk(g, 0, local, route, at)
            texts.append(" ".join(self.applied(s, e, local).split()))
        stop = end(self.src, node)
        a, b = texts
        edits.append((node[0], stop, f"(or (< {a} {b}) (> {a} {b}))" + "\n" * self.text.count("\n", node[0], stop)))

    def index_of(self, tok: str, bracket: tuple) -> tuple[int, ...]:
        idx = self.indices.get(bracket[0])
        if idx is None:
            idx = self.indices[bracket[0]] = parse_dims(self.src, bracket[0], bracket[1], f"index of {tok}")
        return idx

    def variable(self, tok: str, s: int, e: int, bracket: tuple | None, edits: list, route: bool) -> int:
        """The edit for a tensor element (``X[0,3]`` -> ``X_3``); how many tokens it took (1 or 2)."""
        decl, letter, off = self.vars[tok]
        if bracket is not None:
            idx = self.index_of(tok, bracket)
            stop, taken = bracket[1] + len(bracket[0]), 2
        else:
            idx, stop, taken = (), e, 1
        flat = off + self.flat_index(decl, idx, s)
        if letter == "X" and route:  # the input element's pass-through copy among the outputs
            flat = self.sizes[1] + self.passthrough.setdefault(flat, len(self.passthrough))
            letter = "Y"
        gap = self.text.count("\n", s, stop)
        name = f"{letter}_{flat}"
        self.used[name] = (letter == "X", flat)
        edits.append((s, stop, name + "\n" * gap))
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
        return self.applied(0, len(self.text), self.edits)

    def applied(self, start: int, stop: int, edits: list) -> str:
        """``text[start:stop]`` with ``edits`` (all inside it) made."""
        out, pos = [], start
        for s, e, rep in sorted(edits, key=lambda t: (t[0], t[1])):
            if s < pos:  # nested edits cannot happen by construction; be safe
                continue
            out.append(self.text[pos:s])
            out.append(rep)
            pos = e
        out.append(self.text[pos:stop])
        return "".join(out)


def _line_start(text: str, line: int) -> int:
    """The offset where 1-based ``line`` of ``text`` starts."""
    pos = 0
    for _ in range(line - 1):
        pos = text.index("\n", pos) + 1
    return pos


def _rename(message: str, query: Query) -> str:
    """Map the 1.0 names (X_3, Y_0) in a message back to the 2.0 ones (X[0,3], Y[0,0])."""
    first = query.x_slots[0][1].name if query.x_slots else "X"
    message = message.replace("(declare-const X_0 Real)", f"(declare-input {first} ...)")
    return re.sub(r"\b([XY])_([0-9]+)\b", lambda m: query.element_name(m.group(1) == "X", int(m.group(2))), message)
