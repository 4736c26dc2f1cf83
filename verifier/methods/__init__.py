"""Verification methods by name: each module registers its methods on import (``registry``)."""
from verifier.methods import bab, bound_methods, lipschitz, solvers  # noqa: F401  (register the methods)
from verifier.methods.registry import available_methods, get_method, register_method

__all__ = ["available_methods", "get_method", "register_method"]
