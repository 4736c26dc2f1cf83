"""Certificates beside the complete search: Lipschitz bounds and radii (``lipschitz``, including the fast
path of ``auto``), randomized smoothing (``smoothing``), and what both share (``data``, ``threads``)."""
