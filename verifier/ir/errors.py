"""Error types raised for user mistakes (bad files, unsupported models).

Every error carries enough context (file, line, ONNX node) for a one-line
message; the CLI turns them into the verdict ``error`` without a traceback.
"""
from __future__ import annotations


class VerifierError(Exception):
    """Base class of every error caused by the user's input."""


class SpecError(VerifierError):
    """A VNN-LIB file that cannot be parsed or does not fit the network."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.detail = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class ModelError(VerifierError):
    """An ONNX model that cannot be loaded (malformed, unsupported operators, shapes)."""

    def __init__(self, message: str, path: str | None = None, nodes: list[str] | None = None):
        self.path = path
        self.nodes = list(nodes or [])
        self.detail = message
        where = f"{path}: " if path else ""
        super().__init__(where + message)


class DeadlineExpired(VerifierError):
    """The run's deadline passed while its inputs were being read: the answer is the verdict ``timeout`` (not
    ``error``: the input may be fine, the budget was too small)."""


class UnsupportedError(VerifierError):
    """A method that cannot handle this graph (for example CROWN on Sigmoid)."""
