"""nnverify: the verifier's packages, in layers (each imports only the ones above it in this list).

``ir`` (layer graph, operators, spec, results, deadline, problem) - ``settings`` (typed settings, TOML) -
``frontends`` (top-level package: ONNX, VNN-LIB, result files) - ``bounds`` (IBP, CROWN, alpha-CROWN) -
``attack`` (PGD, counterexample validation) - ``backends`` (top-level package: MILP / LP / dual solvers) -
``bab`` (branch and bound) - ``certificates`` (Lipschitz, randomized smoothing) - ``methods`` (the methods by
name) - ``api`` (``verify``, ``compare``) - ``bench`` (benchmark runs, scoring) - ``cli`` (the command lines).
``tests/test_architecture.py`` checks the order. Nothing is imported here.
"""
