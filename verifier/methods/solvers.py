"""The methods ``milp``, ``lp`` and ``dual``: the solver backends (``backends``) run on the problem."""
from __future__ import annotations

from backends import run_backend
from verifier.methods.registry import register_method


def _make(name: str):
    def method(problem, options, deadline):
        return run_backend(name, problem, options, deadline)

    method.__name__ = f"{name}_method"
    return method


register_method("milp", _make("milp"))
register_method("lp", _make("lp"))
register_method("dual", _make("dual"))
