"""Registry of verification methods selectable by name (``verify --method NAME``).

A method is a callable ``fn(problem, options, deadline) -> Result``. The core
registers ``attack``, ``ibp``, ``crown``, ``alpha-crown``; other packages
register theirs on import (``backends`` adds ``milp``, ``lp``, ``dual``; the
branch and bound adds ``bab`` and ``auto``; ``verifier.lipschitz_fastpath`` adds ``lipschitz``).
"""
from __future__ import annotations

import importlib
from typing import Callable

_METHODS: dict[str, Callable] = {}
_DESCRIPTIONS: dict[str, str] = {}
# modules that register more methods when imported
PLUGIN_MODULES = ("verifier.core_methods", "backends", "verifier.bab", "verifier.lipschitz_fastpath")


def register_method(name: str, fn: Callable, description: str = "") -> None:
    _METHODS[name] = fn
    _DESCRIPTIONS[name] = description


def _load_plugins() -> None:
    for mod in PLUGIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod and not mod.startswith(str(e.name)):
                raise


def get_method(name: str) -> Callable:
    _load_plugins()
    if name not in _METHODS:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def available_methods() -> dict[str, str]:
    _load_plugins()
    return dict(sorted(_DESCRIPTIONS.items()))
