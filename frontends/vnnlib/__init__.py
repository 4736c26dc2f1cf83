"""VNN-LIB front end: ``sexpr`` reads the S-expressions for both grammars (the nesting depth and the deadline
checked as it reads), ``numbers`` the numeric literals, ``v1`` is VNN-LIB 1.0 (with ``dnf`` making the spec),
``v2`` is 2.0 (with ``v2_network``; ``compose`` makes one model of a 2.0 query's networks), ``files`` reads plain
or gzipped files; ``load_spec`` reads either version. Every reader takes ``limits``
(:class:`~verifier.settings.inputs.LimitSettings`) and a ``deadline``."""
from .v2 import load_spec

__all__ = ["load_spec"]
