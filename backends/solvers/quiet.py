"""Solver output kept off stdout: ``solver_output()`` sends file descriptor 1 to file descriptor 2 for a while.

The solver libraries print from C, on file descriptor 1, not through Python's ``sys.stdout``: HiGHS
prints its banner ("Running HiGHS ...") when the first ``Highs()`` of the process is made, whatever
its options say, and every solver's log (HiGHS ``output_flag``, Gurobi ``OutputFlag``, CBC's
``msg``) goes there when switched on. stdout belongs to the verdict, so every adapter makes its
solver objects and, when its log is on (``-v``), runs its solves inside ``solver_output()``: what
the library writes in the block lands on stderr (the log).

gurobipy writes its log (and its licence line) through Python's ``sys.stdout`` instead:
``solver_output(python=True)`` also points ``sys.stdout`` at ``sys.stderr`` inside the block.

The redirection is process-wide; blocks may nest and overlap across threads (a count under a lock:
the first one in swaps the descriptor, the last one out puts it back). Python's ``sys.stdout`` is
flushed first so that nothing already printed is sent to stderr.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_saved: int | None = None
_py_depth = 0
_py_saved = None

try:
    _libc = ctypes.CDLL(None)
except OSError:  # pragma: no cover - no C library to flush (not Linux / macOS)
    _libc = None


def _flush_c_stdio() -> None:
    """Flush the C library's stdio buffers (what a solver printed must leave before fd 1 changes)."""
    if _libc is not None:
        try:
            _libc.fflush(None)
        except (AttributeError, OSError):  # pragma: no cover
            pass


def _flush_python_stdout() -> None:
    for stream in (sys.stdout, sys.__stdout__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed stream
            pass


@contextmanager
def solver_output(python: bool = False):
    """Inside the block, what is written on file descriptor 1 goes to file descriptor 2 (stderr); with
    ``python`` what is written on ``sys.stdout`` too."""
    if python:
        with _python_stdout_to_stderr(), solver_output():
            yield
        return
    global _depth, _saved
    with _lock:
        if _depth == 0:
            try:
                _flush_python_stdout()
                _flush_c_stdio()
                saved = os.dup(1)
                os.dup2(2, 1)
            except OSError:  # no fd 1 or 2 (a daemon): nothing to protect
                saved = None
            _saved = saved
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                _flush_c_stdio()
                try:
                    os.dup2(_saved, 1)
                finally:
                    os.close(_saved)
                    _saved = None


@contextmanager
def _python_stdout_to_stderr():
    global _py_depth, _py_saved
    with _lock:
        if _py_depth == 0:
            _flush_python_stdout()
            _py_saved = sys.stdout
            sys.stdout = sys.stderr
        _py_depth += 1
    try:
        yield
    finally:
        with _lock:
            _py_depth -= 1
            if _py_depth == 0:
                sys.stdout = _py_saved
                _py_saved = None


@contextmanager
def maybe_solver_output(verbose: bool, python: bool = False):
    """``solver_output(python)`` when the solver's log is on (``verbose``); nothing otherwise (the solver is silent)."""
    if verbose:
        with solver_output(python):
            yield
    else:
        yield
