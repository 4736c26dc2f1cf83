"""Complete verification: branch and bound over the bound-propagation core, with attacks.

Registers the methods ``bab`` and ``auto``.
"""
from .search import auto_method, bab_method  # noqa: F401  (registers the methods)
from .settings import BaBSettings

__all__ = ["BaBSettings"]
