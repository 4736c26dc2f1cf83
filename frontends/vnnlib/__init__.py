"""VNN-LIB front end: ``v1`` reads VNN-LIB 1.0, ``v2`` reads 2.0 (and ``load_spec`` either version)."""
from .v2 import load_spec

__all__ = ["load_spec"]
