"""Registry of verification methods selectable by name (``verify --method NAME``).

A method is a callable ``fn(problem, options, deadline) -> Result``. The modules of this package register
theirs when ``verifier.methods`` is imported: ``attack``, ``ibp``, ``crown``, ``alpha-crown``
(``bound_methods``), ``milp``, ``lp``, ``dual`` (``solvers``), ``bab``, ``auto`` (``bab``) and
``lipschitz`` (``lipschitz``). Each registered method first lets ``trivial.decide_by_shape`` answer the specs that the
shape of their disjuncts decides (no disjunct left: ``unsat``; a disjunct without output rows: ``sat`` with a
validated point), so no method meets a spec without rows.
"""
from __future__ import annotations

from typing import Callable

from verifier.methods.trivial import decide_by_shape
from verifier.settings.methods import METHODS

_METHODS: dict[str, Callable] = {}


def register_method(name: str, fn: Callable) -> None:
    """Register ``fn`` under ``name``, a name of the catalogue ``verifier.settings.methods.METHODS`` (which holds
    its description, so that the names are listed without importing the methods)."""
    if name not in METHODS:
        raise ValueError(f"method {name!r} is not in verifier.settings.methods.METHODS")
    def method(problem, options, deadline):
        early = decide_by_shape(problem, name)
        return early if early is not None else fn(problem, options, deadline)

    method.__name__ = getattr(fn, "__name__", name)
    method.__wrapped__ = fn
    _METHODS[name] = method


def get_method(name: str) -> Callable:
    if name not in _METHODS:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def available_methods() -> dict[str, str]:
    """The registered methods' names and descriptions, sorted by name."""
    return {name: METHODS[name] for name in sorted(_METHODS)}
