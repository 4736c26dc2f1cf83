"""What every command line entry point wraps itself in: a clean stdout, a last-resort guard, a fast exit.

- ``clean_stdout()``: for the whole command, file descriptor 1 is pointed at stderr and Python's
  ``sys.stdout`` writes to the real stdout (a duplicate of the old descriptor 1). What the solver
  libraries print from C (HiGHS's banner, Gurobi's licence line, CBC's log, also inherited by
  subprocesses) lands on stderr, whatever thread prints it and whenever: the first line of stdout
  stays the verdict. Inside pytest's ``capsys`` (``sys.stdout`` not on descriptor 1) Python's
  ``sys.stdout`` is left alone.
- ``internal_error(exc)``: the one stderr line of an unexpected exception (a bug, not a
  ``VerifierError``): ``internal error: <Type>: <message> (at file:line; rerun with -v for the
  traceback)``; ``MemoryError`` is "out of memory", ``RecursionError`` "recursion too deep";
  ``report_internal_error`` prints it (and the traceback with ``-v``).
- ``fast_exit(code)``: the end of a run as a program: streams flushed, then ``os._exit`` (the
  interpreter's shutdown with torch loaded takes 0.6-1 s, which ``--timeout`` counts; worker threads
  still running end with the process).
"""
from __future__ import annotations

import ctypes
import io
import logging
import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

from verifier.ir.errors import VerifierError

_ROOT = Path(__file__).resolve().parents[2]
# seconds of --timeout kept for the end of a run as a program (printing the verdict, the result file, the exit:
# 0.1-0.3 s measured with a large model's memory to give back): its phases end this much before the budget
END_RESERVE_S = 0.5


try:
    _LIBC = ctypes.CDLL(None)
except OSError:  # pragma: no cover - no C library (not Linux / macOS)
    _LIBC = None


def _flush_c_stdio() -> None:
    """Flush the C library's stdio buffers: what a solver printed leaves before descriptor 1 changes."""
    if _LIBC is None:
        return
    try:
        _LIBC.fflush(None)
    except (OSError, AttributeError):  # pragma: no cover
        pass


def _on_fd1(stream) -> bool:
    try:
        return stream is not None and stream.fileno() == 1
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


@contextmanager
def clean_stdout():
    """Inside the block, descriptor 1 is stderr and ``sys.stdout`` (when it wrote to descriptor 1) the real stdout."""
    old_stdout = sys.stdout
    if not _on_fd1(old_stdout):  # stdout captured in Python (capsys, a StringIO): C output cannot reach it anyway
        with _fd1_to_stderr():
            yield
        return
    old_stdout.flush()
    with _fd1_to_stderr() as real:
        if real is None:
            yield
            return
        stream = io.TextIOWrapper(io.FileIO(real, "w", closefd=False), encoding=old_stdout.encoding,
                                  errors=old_stdout.errors, line_buffering=old_stdout.line_buffering)
        sys.stdout = stream
        try:
            yield
        finally:
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
            sys.stdout = old_stdout


@contextmanager
def _fd1_to_stderr():
    """Descriptor 1 pointed at descriptor 2 inside the block; yields a duplicate of the old descriptor 1 (or None)."""
    try:
        sys.stderr.flush()
        _flush_c_stdio()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no descriptor 1: nothing to protect
        yield None
        return
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(saved)
        yield None
        return
    try:
        yield saved
    finally:
        _flush_c_stdio()
        try:
            os.dup2(saved, 1)
        finally:
            os.close(saved)


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame of ``exc``'s traceback (relative to the project where inside it)."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ is not None else []
    if not frames:
        return "unknown location"
    last = frames[-1]
    path = Path(last.filename)
    try:
        path = path.resolve().relative_to(_ROOT)
    except (ValueError, OSError):
        pass
    return f"{path}:{last.lineno}"


def internal_error(exc: BaseException) -> str:
    """The message of an unexpected exception (without the ``error: `` prefix)."""
    where = _where(exc)
    hint = f"at {where}; rerun with -v for the traceback"
    if isinstance(exc, MemoryError):
        return f"out of memory ({hint})"
    if isinstance(exc, RecursionError):
        return f"recursion too deep: the model or the spec nests too deeply ({hint})"
    text = " ".join(str(exc).split())
    if len(text) > 500:
        text = text[:497] + "..."
    return f"internal error: {type(exc).__name__}: {text} ({hint})" if text else \
        f"internal error: {type(exc).__name__} ({hint})"


def report_internal_error(exc: BaseException, verbose: bool) -> str:
    """Print the traceback of ``exc`` on stderr with ``verbose``; returns its one-line message."""
    msg = internal_error(exc)
    if verbose:
        try:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        except MemoryError:  # pragma: no cover - the traceback needs memory too
            pass
    exc.__traceback__ = None  # frames (and the tensors they hold) can go
    return msg


def error_message(exc: BaseException, verbose: bool) -> str:
    """The message of any exception a command ends with: a ``VerifierError``'s own, else ``internal_error``."""
    if isinstance(exc, VerifierError):
        return str(exc)
    return report_internal_error(exc, verbose)


def fast_exit(code: int) -> None:
    """Flush what was written and end the process now (no interpreter shutdown)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        logging.shutdown()
    except Exception:  # pragma: no cover - a handler that cannot flush
        pass
    _flush_c_stdio()
    os._exit(code)
