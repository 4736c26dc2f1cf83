"""``Registry``: factories by name, for the solver adapters (``backends.solvers``) and the backends
(``backends.backend``)."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories of one kind (``"solver"``, ``"backend"``); ``get`` builds one with keyword settings."""

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str, factory: Callable[..., T]) -> None:
        self._factories[name] = factory

    def get(self, name: str, **settings) -> T:
        if name not in self._factories:
            raise KeyError(f"unknown {self.kind} {name!r}; available: {', '.join(sorted(self._factories))}")
        return self._factories[name](**settings)

    def names(self) -> list[str]:
        return sorted(self._factories)
