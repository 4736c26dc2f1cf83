"""VNN-LIB 1.0 grammar: a property file becomes a :class:`~verifier.ir.spec.Spec`.

Supported:

* ``(declare-const X_i Real)`` / ``(declare-const Y_j Real)``; indices contiguous from 0.
* ``;`` comments, statements spanning lines, plain or gzipped files.
* ``(assert F)`` where ``F`` is a comparison ``(<= a b)``, ``(>= a b)``, the strict ``(< a b)``,
  ``(> a b)`` (SMT-LIB has them; they stay strict), ``(= a b)`` (also chained, ``(<= a b c)``), or
  ``(and F ...)`` / ``(or F ...)`` nested freely.
* Terms: ``X_i``, ``Y_j``, numbers (ASCII decimal literals: ``1``, ``-2.5``, ``1e-5``, ``.5``; see
  :mod:`frontends.vnnlib.numbers`) and linear terms ``(+ ...)``, ``(- ...)``, ``(* k t)``.
* A comparison on inputs must bound one ``X_i`` by a number (a box; ``<`` / ``>`` make an open
  bound); one on outputs becomes a row of ``C y <= d`` (``<`` / ``>``: a strict row ``C_i y < d_i``),
  ``=`` two rows. Mixing X and Y in one comparison is an error. A comparison without variables is
  true or false (``(<= Y_0 Y_0)`` is true and adds no row; ``(< Y_0 Y_0)`` is false and removes its
  disjunct).

The text is read by :mod:`frontends.vnnlib.sexpr` (with its fast paths for the statement forms of
big files, and the nesting depth and the deadline checked as it reads); each assert becomes a DNF, and
:mod:`frontends.vnnlib.dnf` makes the cross product of the asserts into the spec (at most
``limits.disjuncts`` disjuncts).

Every problem raises :class:`~verifier.ir.errors.SpecError` with the file and the 1-based line
where the offending statement or token starts; a deadline that passes while reading raises
:class:`~verifier.ir.errors.DeadlineExpired`.
"""
from __future__ import annotations

import os
import re

from frontends.vnnlib.dnf import LOWER, LOWER_OPEN, ROW, ROW_STRICT, UPPER, UPPER_OPEN, Assertions, build_spec
from frontends.vnnlib.files import read_spec_text
from frontends.vnnlib.numbers import finite, literal_value, why_not
from frontends.vnnlib.sexpr import Comparisons, Source, gc_paused, lexicon, read, recursion_room
from verifier.ir.deadline import Deadline
from verifier.ir.spec import Spec
from verifier.settings.inputs import LimitSettings

_VAR = re.compile(r"([XY])_(0|[1-9][0-9]{0,17})", re.ASCII)
_COMPARISONS = {"<=": (True, False, False), ">=": (False, True, False), "=": (True, True, False),
                "<": (True, False, True), ">": (False, True, True)}  # op -> (a <= b, a >= b, strict)
_BLOCK_KINDS = {"<=": (UPPER, ROW, True), ">=": (LOWER, ROW, False), "<": (UPPER_OPEN, ROW_STRICT, True),
                ">": (LOWER_OPEN, ROW_STRICT, False)}  # op -> (atom on an input, atom on an output, var <= number)
_INF = float("inf")
_TICK = 1 << 6  # statements (or disjuncts of one 'or') between two looks at the deadline
IGNORED_COMMANDS = frozenset({"check-sat", "get-model", "exit", "set-logic", "set-info", "set-option"})
LEXICON = lexicon(commands=frozenset({"assert", "declare-const"}))


def load_vnnlib(path: str | os.PathLike, n_inputs: int | None = None, n_outputs: int | None = None,
                limits: LimitSettings | None = None, deadline: Deadline | None = None) -> Spec:
    """Read a VNN-LIB file (plain or gzip) into a :class:`Spec`.

    If ``path`` does not exist but ``path + ".gz"`` does, that file is read (``instances.csv``
    names files without ``.gz``). Gzip is recognised by its magic bytes. ``n_inputs`` /
    ``n_outputs``, when given (from the network), must equal the declared counts. ``limits``
    (default :class:`LimitSettings`) bound what the file may ask; ``deadline`` is checked as it is read.
    """
    text, real_path = read_spec_text(path, limits, deadline)
    return parse_vnnlib(text, real_path, n_inputs, n_outputs, limits, deadline)


@gc_paused
def parse_vnnlib(text: str, path: str = "<string>", n_inputs: int | None = None, n_outputs: int | None = None,
                 limits: LimitSettings | None = None, deadline: Deadline | None = None) -> Spec:
    """Parse VNN-LIB text; ``path`` is only used in error messages and ``Spec.source``."""
    return _Parser(Source(text, path, limits, deadline)).run(n_inputs, n_outputs)


def parse_declared(src: Source, declared: tuple[tuple[int, int], tuple[int, int]], names: dict[str, tuple[bool, int]],
                   n_inputs: int | None, n_outputs: int | None) -> Spec:
    """Parse 1.0 text whose variables are declared already (a translated 2.0 query, see
    :mod:`frontends.vnnlib.v2`): ``declared`` is ((inputs, offset of their declaration), (outputs, offset)),
    ``names`` maps the ``X_i`` / ``Y_j`` names that the text uses to (is_input, index)."""
    return _Parser(src, declared, names).run(n_inputs, n_outputs)


class _Parser:
    """One parse of the statements that :func:`frontends.vnnlib.sexpr.read` gives."""

    def __init__(self, src: Source, declared: tuple[tuple[int, int], tuple[int, int]] | None = None,
                 names: dict[str, tuple[bool, int]] | None = None):
        self.src = src
        self.error = src.error
        self.names: dict[str, tuple[bool, int]] = dict(names or {})  # name -> (is_input, index)
        self.decl_pos: tuple[dict[int, int], dict[int, int]] = ({}, {})  # outputs, inputs
        self.declared = declared
        self.saw_input_bound = False
        self.max_disjuncts = src.limits.disjuncts or float("inf")

    # ----------------------------------------------------------------------- top level
    def run(self, n_inputs: int | None, n_outputs: int | None) -> Spec:
        stmts = read(self.src, LEXICON)
        if not stmts:
            raise self.error("empty file: no declarations and no assertions")
        with recursion_room(self.src.depth):
            asserts = self.statements(stmts)
        if self.declared is None:
            n_in = self.check_decls(True, n_inputs)
            n_out = self.check_decls(False, n_outputs)
            input_pos = self.decl_pos[True].__getitem__
        else:
            (n_in, in_pos), (n_out, out_pos) = self.declared
            for n, given, pos, word in ((n_in, n_inputs, in_pos, "inputs"), (n_out, n_outputs, out_pos, "outputs")):
                if given is not None and given != n:
                    raise self.error(f"spec declares {n} {word} but the network has {given}", pos)
            input_pos = lambda i: in_pos  # noqa: E731 (every element is declared at the tensor)
        return build_spec(self.src, asserts, n_in, n_out, input_pos)

    def statements(self, stmts: list) -> Assertions:
        base: list = []   # atoms conjoined into every disjunct
        base_pos: list = []  # (index in base of its first atom, position) of each assert that feeds base
        multi: list = []  # (dnf, pos) of asserts with several (or zero) disjuncts
        n_asserts = 0
        check_time = self.src.check_time
        for k, st in enumerate(stmts):
            if not k % _TICK:
                check_time(st[0])
            command = st[1][0] if len(st) > 1 and isinstance(st[1], tuple) else None  # sexpr.head, inlined
            if command == "declare-const" and self.declared is None:
                self.declare(st)
            elif command == "assert":
                if len(st) != 3:
                    raise self.error("assert takes exactly one formula", st[0])
                n_asserts += 1
                dnf = self.formula(st[2])
                if len(dnf) == 1:
                    base_pos.append((len(base), st[0]))
                    base.extend(dnf[0])
                else:
                    multi.append((dnf, st[0]))
            elif command not in IGNORED_COMMANDS:
                what = f"unknown command {command!r}" if command else "expected a command like (assert ...)"
                raise self.error(what, st[0])
        if n_asserts == 0:
            raise self.error("no assertions in the file")
        return Assertions(base, multi, self.saw_input_bound, base_pos)

    def declare(self, st: list) -> None:
        if len(st) != 4 or not all(isinstance(a, tuple) for a in st[2:]):
            raise self.error("expected (declare-const NAME Real)", st[0])
        (name, npos), (typ, tpos) = st[2], st[3]
        if typ != "Real":
            raise self.error(f"{name} is declared {typ}; VNN-LIB 1.0 supports only Real", tpos)
        m = _VAR.fullmatch(name)
        if m is None:
            raise self.error(f"unsupported variable name {name!r}: expected X_<i> (input) "
                             "or Y_<j> (output)", npos)
        if name in self.names:
            raise self.error(f"{name} is declared twice", npos)
        is_input, idx = m.group(1) == "X", int(m.group(2))
        self.names[name] = (is_input, idx)
        self.decl_pos[is_input][idx] = npos

    def check_decls(self, is_input: bool, given: int | None) -> int:
        """Declared count of X (or Y); indices must be 0..n-1; must match ``given``."""
        table = self.decl_pos[is_input]
        letter, word = ("X", "inputs") if is_input else ("Y", "outputs")
        if not table:
            raise self.error(f"no {word} declared (expected (declare-const {letter}_0 Real) ...)")
        n = len(table)
        if max(table) != n - 1:
            gap = min(set(range(n)) - table.keys())
            after = min(i for i in table if i > gap)
            raise self.error(f"{letter}_{gap} is not declared but {letter}_{after} is; "
                             f"{word} must be {letter}_0 .. {letter}_<n-1>", table[after])
        if given is not None and given != n:
            raise self.error(f"spec declares {n} {word} but the network has {given}",
                             table[n - 1])
        return n

    # ----------------------------------------------------------------------- formulas
    def formula(self, node) -> list[list]:
        """A formula as a DNF: a list of conjunctions (lists of atoms). [] = false, [[]] = true."""
        if not isinstance(node, list):
            raise self.error(f"expected a constraint like (<= a b), got {node[0]!r}", node[1])
        if len(node) < 2 or not isinstance(node[1], tuple):
            raise self.error("expected an operator after '('", node[0])
        op, args = node[1][0], node[2:]
        if op == "and":
            dnf: list[list] = [[]]
            for a in args:
                if type(a) is Comparisons:
                    atoms = self.comparisons(a)
                    if atoms is not None:
                        for conj in dnf:
                            conj.extend(atoms)
                        continue
                    subs = [self.formula(n) for n in a.nodes(self.src)]  # one of them raises the error
                else:
                    subs = [self.formula(a)]
                for sub in subs:
                    if len(sub) == 1:
                        for conj in dnf:
                            conj.extend(sub[0])
                    else:
                        if len(dnf) * len(sub) > self.max_disjuncts:
                            raise self.src.over_limit("disjuncts", f"'and' expands to more than "
                                                      f"{self.max_disjuncts} disjuncts", node[0], len(dnf) * len(sub))
                        dnf = [c + s for c in dnf for s in sub]
            return dnf
        if op == "or":
            dnf = []
            for k, a in enumerate(args):
                if not k % _TICK:
                    self.src.check_time(node[0])
                dnf.extend(self.formula(a))
                if len(dnf) > self.max_disjuncts:
                    raise self.src.over_limit("disjuncts", f"'or' has more than {self.max_disjuncts} disjuncts",
                                              node[0])
            return dnf
        how = _COMPARISONS.get(op)
        if how is not None:
            if len(args) == 2 and op != "=" and type(args[0]) is tuple and type(args[1]) is tuple:
                fast = self.simple_compare(op, args[0], args[1])
                if fast is not None:
                    return fast
            if len(args) < 2:
                raise self.error(f"'{op}' needs at least two operands", node[0])
            le, ge, strict = how
            terms = [self.term(a) for a in args]
            conj: list = []
            ok = True
            for a, b in zip(terms, terms[1:]):
                if le:
                    ok &= self.compare(a, b, conj, node[0], strict)
                if ge:
                    ok &= self.compare(b, a, conj, node[0], strict)
            return [conj] if ok else []
        raise self.error(f"unknown operator {op!r}", node[1][1])

    def comparisons(self, block: Comparisons) -> list | None:
        """The atoms of a block of comparisons ``(op X_i number)`` (the atoms :meth:`simple_compare` gives, made in
        one loop); None if one of them is wrong (an undeclared name, a number out of range): the caller reads the
        block node by node for the error."""
        names = self.names
        atoms: list = []
        inputs = False
        for op, var, num in block.items(self.src):
            va = names.get(var)
            v = float(num)  # the block's pattern matched num as a number
            if va is None or v == _INF or v == -_INF:
                return None
            input_kind, row_kind, upper = _BLOCK_KINDS[op]
            if va[0]:
                atoms.append((input_kind, va[1], v))
                inputs = True
            elif upper:
                atoms.append((row_kind, [(va[1], 1.0)], v))
            else:
                atoms.append((row_kind, [(va[1], -1.0)], -v))
        if inputs:
            self.saw_input_bound = True
        return atoms

    def simple_compare(self, op: str, a: tuple, b: tuple) -> list[list] | None:
        """Fast path for variable vs number (either side); None for anything else."""
        va, vb = self.names.get(a[0]), self.names.get(b[0])
        if (va is None) == (vb is None):
            return None
        upper = op[0] == "<"  # True: var <= number (or <)
        if va is None:
            va, b, upper = vb, a, not upper
        v = self.number(*b)
        strict = len(op) == 1
        if va[0]:
            self.saw_input_bound = True
            kind = (UPPER_OPEN if upper else LOWER_OPEN) if strict else (UPPER if upper else LOWER)
            return [[(kind, va[1], v)]]
        return [[(ROW_STRICT if strict else ROW, [(va[1], 1.0 if upper else -1.0)], v if upper else -v)]]

    def term(self, t) -> tuple[dict[str, float], float]:
        """A linear term as ({variable name: coefficient}, constant)."""
        if isinstance(t, tuple):
            s, pos = t
            if s in self.names:
                return {s: 1.0}, 0.0
            return {}, self.number(s, pos)
        if len(t) < 2 or not isinstance(t[1], tuple):
            raise self.error("expected an operator after '('", t[0])
        op = t[1][0]
        if op not in ("+", "-", "*") or len(t) < 3:
            raise self.error(f"'{op}' needs operands" if op in ("+", "-", "*") else
                             f"unknown operator {op!r} in a term", t[1][1])
        args = [self.term(a) for a in t[2:]]
        if op == "-":
            if len(args) == 1:
                args = [({}, 0.0)] + args
            args = args[:1] + [({k: -c for k, c in co.items()}, -k0) for co, k0 in args[1:]]
        if op in ("+", "-"):
            coefs: dict[str, float] = {}
            const = 0.0
            for co, k0 in args:
                for k, c in co.items():
                    coefs[k] = coefs.get(k, 0.0) + c
                const += k0
            return coefs, const
        scale, linear = 1.0, None  # '*': at most one non-constant factor
        for co, k0 in args:
            if co:
                if linear is not None:
                    raise self.error("nonlinear term (product of variables)", t[0])
                linear = (co, k0)
            else:
                scale *= k0
        if linear is None:
            return {}, scale
        return {k: scale * c for k, c in linear[0].items()}, scale * linear[1]

    def number(self, s: str, pos: int) -> float:
        v = literal_value(s)
        if v is not None:
            return v
        if _VAR.fullmatch(s):
            raise self.error(f"undeclared variable {s}", pos)
        raise self.error(why_not(s), pos)

    def compare(self, a, b, conj: list, pos: int, strict: bool = False) -> bool:
        """Append the atom for ``a <= b`` (``a < b`` if ``strict``) to ``conj``; False if it is constant and false."""
        coefs = dict(a[0])
        for k, c in b[0].items():
            coefs[k] = coefs.get(k, 0.0) - c
        coefs = {k: c for k, c in coefs.items() if c != 0.0}
        rhs = b[1] - a[1]
        if not finite(rhs) or not all(finite(c) for c in coefs.values()):
            raise self.error("a coefficient or a constant of this comparison is out of float64's range", pos)
        if not coefs:
            return 0.0 < rhs if strict else 0.0 <= rhs
        xs = [k for k in coefs if self.names[k][0]]
        if not xs:
            conj.append((ROW_STRICT if strict else ROW, [(self.names[k][1], c) for k, c in coefs.items()], rhs))
            return True
        if len(xs) != len(coefs):
            ys = [k for k in coefs if k not in xs]
            raise self.error(f"constraint mixes inputs and outputs ({xs[0]} and {ys[0]}); "
                             "not supported", pos)
        if len(xs) > 1:
            raise self.error(f"input constraint relates {xs[0]} and {xs[1]}; VNN-LIB 1.0 "
                             "input constraints must be boxes (X_i vs a number)", pos)
        c = coefs[xs[0]]
        self.saw_input_bound = True
        v = rhs / c
        if not finite(v):
            raise self.error(f"the bound of {xs[0]} is out of float64's range", pos)
        if strict:
            conj.append((UPPER_OPEN if c > 0 else LOWER_OPEN, self.names[xs[0]][1], v))
        else:
            conj.append((UPPER if c > 0 else LOWER, self.names[xs[0]][1], v))
        return True
