"""The command lines: ``verify`` (``main``: the front door and its subcommands, one module each) and
``vnnlib-solver`` (``vnnlib_solver``: the VNN-LIB 2.0 standard's solver interface)."""
