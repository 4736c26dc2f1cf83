"""Registry of verification methods selectable by name (``verify --method NAME``).

A method is a callable ``fn(problem, options, deadline) -> Result``. The modules of this package register
theirs when ``verifier.methods`` is imported: ``attack``, ``ibp``, ``crown``, ``alpha-crown``
(``bound_methods``), ``milp``, ``lp``, ``dual`` (``solvers``), ``bab``, ``auto`` (``bab``) and
``lipschitz`` (``lipschitz``).
"""
from __future__ import annotations

from typing import Callable

_METHODS: dict[str, Callable] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_method(name: str, fn: Callable, description: str = "") -> None:
    _METHODS[name] = fn
    _DESCRIPTIONS[name] = description


def get_method(name: str) -> Callable:
    if name not in _METHODS:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def available_methods() -> dict[str, str]:
    return dict(sorted(_DESCRIPTIONS.items()))
