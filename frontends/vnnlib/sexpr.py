"""The S-expression reader shared by the VNN-LIB 1.0 and 2.0 grammars.

A :class:`Source` is the text being read (``;`` comments blanked, every offset and line kept) with its
path; it turns an offset into a 1-based line and makes the :class:`~verifier.ir.errors.SpecError` for it.
:func:`read` splits the text into tokens with one regex (a grammar's :class:`Lexicon`) and builds the
tree of top-level statements:

* a list is ``[start, child, ...]``, ``start`` the offset of its ``(``;
* an atom is ``(text, start)``.

:func:`end` gives the offset just past a node (the grammars that rewrite the text need it).

With the plain lexicon (atoms are runs of anything but space and parentheses) three fast paths read a
whole ``(declare-const NAME TYPE)`` statement, a whole ``(assert (<= a b))`` / ``(assert (>= a b))``
statement, and a comparison ``(<= a b)`` / ``(>= a b)`` anywhere, in one regex match each: these make
up almost all of a big file (comparisons include the strict ``<`` / ``>``). They give the same tree as
reading token by token. A fourth reads an ``(and ...)`` made of comparisons ``(op X_i number)`` alone
(the disjuncts of the big benchmark files, hundreds of comparisons each) as the list
``[start, ("and", start), Comparisons]``: a :class:`Comparisons` keeps only where its text lies, for
the grammar to read in bulk (:meth:`Comparisons.items`) or as the nodes the token path would have given
(:meth:`Comparisons.nodes`). Tokens are ASCII-defined (``re.ASCII``: a non-ASCII blank is no separator).

The reading budget travels with the source: ``limits`` (:class:`~verifier.settings.inputs.LimitSettings`)
and ``deadline``. :func:`read` refuses nesting deeper than ``limits.nesting_depth`` as it reads (so the
grammars' recursive walkers stay shallow) and checks the deadline every few thousand tokens
(:class:`~verifier.ir.errors.DeadlineExpired`); a read gets :data:`READ_GRACE_S` past the deadline (see
:func:`reading_deadline`). :meth:`Source.over_limit` makes the error for a limit.

The readers build millions of small objects that live until the spec is made: :func:`gc_paused` (a decorator
the grammars' entry points wear) keeps Python's cyclic collector off meanwhile, since its full collections
over a growing heap made reading superlinear (a 50 MB spec: 31 s with it, 13 s without) and made the gaps
between two looks at the deadline grow with the file.
"""
from __future__ import annotations

import functools
import gc
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass

from frontends.vnnlib.numbers import NUMBER_PATTERN
from verifier.ir.deadline import Deadline
from verifier.ir.errors import DeadlineExpired, SpecError
from verifier.settings.inputs import LimitSettings

COMMENT = re.compile(r";[^\n]*")
PLAIN_ATOM = r"[^\s()]+"

# Groups 1-2 are the block fast path: an (and ...) of comparisons (op X_i number) only, read as one match (see
# Comparisons). Groups 3-5, 6-10 and 11-14: whole (declare-const ..) and (assert (<= a b)) statements, and a
# comparison (<= a b) at any depth. ``Match.lastindex`` says which one matched (None: a plain token). Every
# repetition is unambiguous (a failed match costs one scan, not a backtracking blow-up).
COMPARISON = rf"\(\s*(<=|>=|<|>)\s+([XY]_[0-9]+)\s+({NUMBER_PATTERN})\s*\)"  # (op variable number): op, name, number
_FAST_PATHS = (rf"(\(\s*and\s*((?:\(\s*(?:<=|>=|<|>)\s+[XY]_[0-9]+\s+{NUMBER_PATTERN}\s*\)\s*)+)\))"
               r"|(\(\s*declare-const\s+([^\s()]+)\s+([^\s()]+)\s*\))"
               r"|(\(\s*assert\s*(\(\s*(<=|>=|<|>)\s+([^\s()]+)\s+([^\s()]+)\s*\))\s*\))"
               r"|(\(\s*(<=|>=|<|>)\s+([^\s()]+)\s+([^\s()]+)\s*\))")
_BLOCK, _DECLARE, _ASSERT, _COMPARE = 1, 3, 6, 11
_COMPARE_NODE = re.compile(r"(\(\s*(<=|>=|<|>)\s+([^\s()]+)\s+([^\s()]+)\s*\))", re.ASCII)
_TICK = 1 << 14  # tokens (or 16 characters of a block) between two looks at the deadline


@dataclass(frozen=True)
class Lexicon:
    """What a grammar reads as tokens; make one with :func:`lexicon`."""

    token: re.Pattern  # '(' , ')', an atom, or (in groups) a fast-path form
    commands: frozenset[str]  # heads that begin a statement: met nested inside one, its ')' is missing
    unbalanced: frozenset[str]  # one-character tokens that are errors ('[' with no ']', ...)


def lexicon(atoms: str | None = None, commands: frozenset[str] = frozenset(),
            unbalanced: frozenset[str] = frozenset()) -> Lexicon:
    """Plain atoms and the fast paths if ``atoms`` is None; else the regex ``atoms`` (no capturing groups)
    and no fast paths (they read plain atoms only)."""
    token = rf"{_FAST_PATHS}|[()]|{PLAIN_ATOM}" if atoms is None else rf"[()]|{atoms}"
    return Lexicon(re.compile(token, re.ASCII), commands, unbalanced)


class Source:
    """A text being read, with its comments blanked (offsets and lines unchanged), its path and its reading
    budget (``limits``, default :class:`LimitSettings`; ``deadline``, default none)."""

    def __init__(self, text: str, path: str, limits: LimitSettings | None = None, deadline: Deadline | None = None):
        self.path = path
        self.limits = limits or LimitSettings()
        self.deadline = reading_deadline(deadline)
        self.depth = 0  # an upper bound of the nesting depth, once read
        if self.limits.spec_bytes and len(text) > self.limits.spec_bytes:
            raise self.over_limit("spec_bytes", f"the spec has more than {self.limits.spec_bytes} characters",
                                  need=len(text))
        self.check_time()
        if ";" in text:
            text = COMMENT.sub(lambda m: " " * len(m.group()), text)
        self.text = text

    def line(self, pos: int) -> int:
        """The 1-based line of offset ``pos``."""
        return self.text.count("\n", 0, pos) + 1

    def error(self, msg: str, pos: int | None = None) -> SpecError:
        """The error for ``msg`` at offset ``pos`` (None: the whole file)."""
        return SpecError(msg, self.path, None if pos is None else self.line(pos))

    def over_limit(self, name: str, what: str, pos: int | None = None, need: int | None = None) -> SpecError:
        """The error for a spec past ``limits.<name>``: ``what`` it asks, the limit and how to raise it."""
        return self.error(limit_message(self.limits, name, what, need), pos)

    def check_time(self, pos: int | None = None) -> None:
        """Raise :class:`DeadlineExpired` if the deadline has passed (``pos``: how far reading got)."""
        if self.deadline is not None and self.deadline.expired():
            where = f" (at line {self.line(pos)})" if pos is not None and hasattr(self, "text") else ""
            raise DeadlineExpired(f"{self.path}: timed out while reading the spec{where}")

    def unclosed(self, top: list, why: str) -> SpecError:
        """A ')' is missing for the last top-level statement, seen because of ``why``."""
        opened = top[-1][0]
        return self.error(f"missing ')' for the '(' opened at line {self.line(opened)} ({why})", opened)


def gc_paused(fn):
    """``fn`` run with the cyclic garbage collector off (its previous state restored after; nesting is fine).
    The trees and DNFs a reader builds hold no cycles, so nothing is left for the collector to find."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        was_on = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was_on:
                gc.freeze()  # what was made meanwhile skips the collections to come (a full one could take 1 s)
                gc.enable()
    return wrapper


READ_GRACE_S = 0.2  # seconds a read always gets, even past the deadline


def reading_deadline(deadline: Deadline | None) -> Deadline | None:
    """The deadline a read keeps to: ``deadline``, but at least :data:`READ_GRACE_S` from now. A small spec is
    always read to its end, so that a bad one is the verdict ``error`` even when the budget is spent (by then
    the run answers ``timeout`` anyway); a big one is stopped soon after the deadline."""
    if deadline is None:
        return None
    return Deadline(max(deadline.left(), READ_GRACE_S))


def limit_message(limits: LimitSettings, name: str, what: str, need: int | None = None) -> str:
    """``what`` a spec asks beyond ``limits.<name>``, the limit, and the setting that raises it (to ``need``)."""
    limit = getattr(limits, name)
    to = need if need is not None and need > limit else 10 * limit
    return f"{what}: limits.{name} is {limit}; raise it with --set limits.{name}={to} (0: no limit)"


@contextmanager
def recursion_room(depth: int):
    """Room for a recursive walk of a tree ``depth`` deep (a few frames a level) on top of the current stack."""
    old = sys.getrecursionlimit()
    if 3 * depth + 200 > old // 2:
        sys.setrecursionlimit(old + 3 * depth + 200)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


class Comparisons:
    """The comparisons ``(op X_i number)`` that an ``(and ...)`` is made of, read in one match: their text is
    ``src.text[start:stop]``."""

    __slots__ = ("start", "stop")
    _ITEM = re.compile(COMPARISON, re.ASCII)

    def __init__(self, start: int, stop: int):
        self.start, self.stop = start, stop

    def items(self, src: Source) -> list[tuple[str, str, str]]:
        """(operator, variable, number) of each comparison, as written."""
        return self._ITEM.findall(src.text, self.start, self.stop)

    def nodes(self, src: Source) -> list:
        """The comparisons as the nodes that reading token by token gives (with offsets, for error messages)."""
        return [[m.start(1), (m.group(2), m.start(2)), (m.group(3), m.start(3)), (m.group(4), m.start(4))]
                for m in _COMPARE_NODE.finditer(src.text, self.start, self.stop)]


def head(node) -> str | None:
    """The operator or command of a list whose first item is an atom; None otherwise."""
    if isinstance(node, list) and len(node) > 1 and isinstance(node[1], tuple):
        return node[1][0]
    return None


def end(src: Source, node) -> int:
    """The offset just past ``node``, a node that :func:`read` gave for ``src``.

    Only blanks (comments were blanked) lie between a list's last item and its ``)``, so that ``)`` is the
    first one after the last item (after the ``(`` for an empty list); reading keeps no end offsets, which
    makes it faster.
    """
    chain = []  # the lists from node down its last items
    while isinstance(node, list):
        chain.append(node)
        if len(node) == 1:
            break
        node = node[-1]
    if isinstance(node, Comparisons):
        pos = node.stop
    else:
        pos = node[1] + len(node[0]) if isinstance(node, tuple) else node[0] + 1
    for _ in chain:
        pos = src.text.index(")", pos) + 1
    return pos


def read(src: Source, lex: Lexicon) -> list:
    """The top-level statements of ``src``; see the module docstring for the tree."""
    top: list = []
    cur = top
    stack: list = []
    commands, unbalanced = lex.commands, lex.unbalanced
    limit = src.limits.nesting_depth or sys.maxsize
    deepest = 0
    countdown = _TICK if src.deadline is not None else -1
    for m in lex.token.finditer(src.text):
        countdown -= 1
        if countdown == 0:
            countdown = _TICK
            src.check_time(m.start())
        fast = m.lastindex
        if fast is not None:
            s = m.start
            if fast == _COMPARE:
                if len(stack) >= limit:
                    raise _too_deep(src, s())
                cur.append([s(11), (m.group(12), s(12)), (m.group(13), s(13)), (m.group(14), s(14))])
                continue
            if fast == _BLOCK:
                if len(stack) + 1 >= limit:
                    raise _too_deep(src, s())
                cur.append([s(), ("and", src.text.index("and", s())), Comparisons(s(2), m.end(2))])
                if countdown > 0:  # a block is long (hundreds of comparisons): it counts for more tokens
                    countdown = max(1, countdown - (m.end(2) - s(2) >> 4))
                continue
            if stack:
                raise src.unclosed(top, f"a new statement starts at line {src.line(s())}")
            if fast == _DECLARE:
                top.append([s(), ("declare-const", s()), (m.group(4), s(4)), (m.group(5), s(5))])
            else:
                if limit < 2:
                    raise _too_deep(src, s(7))
                top.append([s(), ("assert", s()), [s(7), (m.group(8), s(8)), (m.group(9), s(9)),
                                                   (m.group(10), s(10))]])
            continue
        t = m.group()
        if t == "(":
            if len(stack) >= limit:
                raise _too_deep(src, m.start())
            node = [m.start()]
            cur.append(node)
            stack.append(cur)
            cur = node
            if len(stack) > deepest:
                deepest = len(stack)
        elif t == ")":
            if not stack:
                raise src.error("unexpected ')' (no '(' is open)", m.start())
            cur = stack.pop()
        elif not stack:
            raise src.error(f"unexpected {t!r} outside parentheses", m.start())
        elif t in unbalanced:
            raise src.error(f"unbalanced {t!r}", m.start())
        else:
            if len(cur) == 1 and len(stack) > 1 and t in commands:
                raise src.unclosed(top, f"a new '{t}' starts at line {src.line(m.start())}")
            cur.append((t, m.start()))
    if stack:
        raise src.unclosed(top, "end of file")
    src.depth = deepest + 2  # a fast-path comparison lies one level below its list
    src.check_time()
    return top


def _too_deep(src: Source, pos: int) -> SpecError:
    limit = src.limits.nesting_depth
    return src.over_limit("nesting_depth", f"parentheses nest deeper than {limit}", pos)
