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
up almost all of a big file. They give the same tree as reading token by token.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from verifier.ir.errors import SpecError

COMMENT = re.compile(r";[^\n]*")
PLAIN_ATOM = r"[^\s()]+"

# Groups 1-3, 4-8 and 9-12 are the fast paths: whole (declare-const ..) and (assert (<= a b)) statements,
# and a comparison (<= a b) at any depth. ``Match.lastindex`` says which one matched (None: a plain token).
_FAST_PATHS = (r"(\(\s*declare-const\s+([^\s()]+)\s+([^\s()]+)\s*\))"
               r"|(\(\s*assert\s*(\(\s*(<=|>=)\s+([^\s()]+)\s+([^\s()]+)\s*\))\s*\))"
               r"|(\(\s*(<=|>=)\s+([^\s()]+)\s+([^\s()]+)\s*\))")
_DECLARE, _ASSERT, _COMPARE = 1, 4, 9


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
    return Lexicon(re.compile(token), commands, unbalanced)


def strip_comments(text: str) -> str:
    """The text without its ``;`` comments (offsets change)."""
    return COMMENT.sub("", text) if ";" in text else text


class Source:
    """A text being read, with its comments blanked (offsets and lines unchanged), and its path."""

    def __init__(self, text: str, path: str):
        if ";" in text:
            text = COMMENT.sub(lambda m: " " * len(m.group()), text)
        self.text = text
        self.path = path

    def line(self, pos: int) -> int:
        """The 1-based line of offset ``pos``."""
        return self.text.count("\n", 0, pos) + 1

    def error(self, msg: str, pos: int | None = None) -> SpecError:
        """The error for ``msg`` at offset ``pos`` (None: the whole file)."""
        return SpecError(msg, self.path, None if pos is None else self.line(pos))

    def unclosed(self, top: list, why: str) -> SpecError:
        """A ')' is missing for the last top-level statement, seen because of ``why``."""
        opened = top[-1][0]
        return self.error(f"missing ')' for the '(' opened at line {self.line(opened)} ({why})", opened)


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
    if isinstance(node, tuple):
        return node[1] + len(node[0])
    after = end(src, node[-1]) if len(node) > 1 else node[0] + 1
    return src.text.index(")", after) + 1


def read(src: Source, lex: Lexicon) -> list:
    """The top-level statements of ``src``; see the module docstring for the tree."""
    top: list = []
    cur = top
    stack: list = []
    commands, unbalanced = lex.commands, lex.unbalanced
    for m in lex.token.finditer(src.text):
        fast = m.lastindex
        if fast is not None:
            s = m.start
            if fast == _COMPARE:
                cur.append([s(9), (m.group(10), s(10)), (m.group(11), s(11)), (m.group(12), s(12))])
                continue
            if stack:
                raise src.unclosed(top, f"a new statement starts at line {src.line(s())}")
            if fast == _DECLARE:
                top.append([s(), ("declare-const", s()), (m.group(2), s(2)), (m.group(3), s(3))])
            else:
                top.append([s(), ("assert", s()), [s(5), (m.group(6), s(6)), (m.group(7), s(7)),
                                                   (m.group(8), s(8))]])
            continue
        t = m.group()
        if t == "(":
            node = [m.start()]
            cur.append(node)
            stack.append(cur)
            cur = node
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
    return top
