"""The table of op handlers of the ONNX loader: ``HANDLERS[op_type](ctx, node)`` turns one node into graph nodes.

A handler registers itself with ``@handler("Relu")`` (one function may serve several op types); the
handler modules (``handlers_*``) fill the table when they are imported, which ``loader`` does.
"""
from __future__ import annotations

from collections.abc import Callable

from frontends.onnx.context import LoadContext, OnnxNode

Handler = Callable[[LoadContext, OnnxNode], None]
HANDLERS: dict[str, Handler] = {}


def handler(*op_types: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of ``op_types``."""
    def register(fn: Handler) -> Handler:
        for t in op_types:
            if t in HANDLERS:
                raise ValueError(f"two handlers for ONNX op type {t}")
            HANDLERS[t] = fn
        return fn
    return register
