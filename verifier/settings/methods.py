"""The catalogue of the verification methods that ``--method`` accepts: each name with its one-line description.

It lives here, below the packages that implement the methods, so that ``verify methods`` and ``--help`` can list
them without importing torch; ``verifier.methods.registry`` registers each method under a name of this table and
takes its description from it (a test checks that the two agree).
"""
from __future__ import annotations

METHODS: dict[str, str] = {
    "alpha-crown": "optimised alpha-CROWN bounds, then attack",
    "attack": "PGD falsifier (sat or unknown)",
    "auto": ("default: CROWN and an attack, then a schedule planned from the problem (exact MILP for few unstable "
             "ReLUs, raced against input or ReLU splitting on two cores; -v prints it)"),
    "bab": "branch and bound (input or ReLU splitting) with attacks: sat / unsat",
    "crown": "CROWN linear bounds (unsat or unknown), then attack",
    "dual": "Wong-Kolter dual network bound (incomplete, one backward pass): unsat only",
    "ibp": "interval bounds (unsat or unknown), then attack",
    "lipschitz": "Lipschitz fast path (unsat only)",
    "lp": ("triangle LP relaxation (incomplete): unsat, or sat where the LP optimum's input validates as a "
           "counterexample"),
    "milp": "complete MILP (big-M; --solver highs|gurobi|cbc): sat / unsat",
}
