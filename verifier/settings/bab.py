"""Settings of the branch and bound, in one typed object."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

INPUT_BRANCHINGS = ("smear-all", "smear", "widest", "best")


@dataclass(frozen=True)
class BaBSettings:
    batch: int = 1024  # domains bounded per call
    max_domains: int = 300_000  # cap on stored domains (boxes are taken depth first); past it: unknown
    input_split_max_dim: int = 32  # input splitting when the input has at most this many dimensions
    input_alpha_iters: int = 3  # alpha-CROWN steps on the objective of each box (input splitting)
    # input splitting heuristic (bab/input_split.py)
    input_branching: Literal["smear-all", "smear", "widest", "best"] = "smear-all"
    input_max_aspect: float = 128.0  # split the widest side of a box whose chosen side is this many times
    # narrower (relative to the region); 0: no limit
    input_alpha_ax: bool = False  # split by the alpha-optimised coefficients instead of CROWN's
    # input splitting runs these (branching, alpha_iters, alpha_ax) configurations in turn, each
    # with its share of the time left (the last takes the rest): the heuristics are erratic
    # from instance to instance, and a restart with another one often finishes in seconds
    # ("best" proves some ACAS Xu properties in seconds where the smear scores need minutes, and the
    # reverse); the last one resumes from the boxes the first left open
    input_portfolio: tuple[tuple[str, int, bool, float], ...] = (
        ("smear-all", 3, False, 0.2), ("best", 3, False, 0.15), ("smear-all", 10, True, 0.35), ("smear", 3, False, 1.0))
    relu_batch: int = 64  # domains bounded per call in ReLU splitting
    relu_alpha_iters: int | None = None  # alpha/beta-CROWN steps on the objective of each ReLU-split domain
    # (None: 64 where intermediate bounds are re-derived per domain, 8 elsewhere; they stop once every row is
    # proven). mnist_fc 256x4, k=12, 120 s: prop_11_0.05 open at -0.21 with 8, proven in 45 s with 16, 15 s
    # with 32; prop_14_0.05 -0.32 with 16, proven in 105 s with 64. oval21 (bounds not re-derived) base img876:
    # proven in 74 s with 8, open after 100 s with 32
    relu_warm_domains: int | None = None  # children start from their parent's optimised slopes and split
    # multipliers while at most this many domains are stored (None: while the memory budget allows; 0: never)
    # which neuron a domain is split on (bab/branching.py): "gradient" (a first-order estimate of the worse child's
    # gain from the domain's own slopes and multipliers) or "babsr" (objective coefficient times relaxation area);
    # None: "gradient" where intermediate bounds are not re-derived per domain, "babsr" where they are (the estimate
    # does not see a split tighten the later layers). oval21 at 90 s: base img2578 proven in 8.8 s with "gradient",
    # open at -0.037 with "babsr"; mnist_fc 256x4 prop_11_0.05 proven in 20 s with "babsr", open at -0.95 after 40 s
    # with "gradient"
    relu_branching: Literal["gradient", "babsr"] | None = None
    relu_fsb: int | None = None  # filtered smart branching: the best of this many top-scored neurons (1: the
    # top score); None: 12 with the "babsr" score (``relu_fsb_portfolio`` where intermediate bounds are
    # re-derived per domain), 1 with "gradient" (oval21 base img876, 60 s: worst open bound -0.0016 with 1,
    # -0.091 with 12: the estimate picks as well and the search bounds 5x the domains)
    # (width, share of the time left) of the searches run in turn where intermediate bounds are re-derived: the one-
    # pass estimate does not see how a split tightens the later layers' bounds there, and which width suits an
    # instance is erratic (mnist_fc 256x4 prop_8_0.03: k=4 1.9 s, k=12 58 s; 256x2 prop_10_0.05: k=4 > 120 s, k=12
    # 0.7 s); k=4 wins quickly where it wins, while k=12 may need long runs (256x4 prop_11_0.05: stuck at -1.17 with
    # k=4, -0.69 -> -0.30 in 225 s)
    relu_fsb_portfolio: tuple[tuple[int, float], ...] = ((4, 0.1), (12, 1.0))
    relu_refine_share: float = 0.5  # share of the time left after the first search of the FSB portfolio spent
    # refining the root's intermediate bounds by MILP (bab/refine.py; Gurobi) before the next searches start
    # from them (0: off). mnist_fc 256x6 prop_0_0.05: root bound -838 -> -0.064 after 100 s (unstable ReLUs
    # 913 -> 432); 256x4 prop_5_0.05: -0.97 -> -0.30 after 60 s
    relu_refine_neuron_s: float = 1.0  # time limit of each neuron's MILP (its dual bound is used either way);
    # 256x4 prop_5_0.05: 120 solves of 1 s: -0.30, 105 of 0.3 s (20 s): -0.62
    relu_refine_threads: int | None = None  # MILPs solved side by side (None: the cores, at most 4)
    relu_milp_max_unstable: int = 0  # MILP fallback: a domain with at most this many unstable ReLUs is solved
    # by one small MILP (HiGHS) instead of being split further (0: off; domains with none use an exact LP)
    relu_root_slopes: bool = True  # re-derived intermediate bounds use the root's optimised intermediate slopes
    # (alpha-CROWN's, per bounded neuron) instead of CROWN's adaptive ones
    relu_recompute: bool | None = None  # re-derive intermediate bounds per domain (None: when <= 2048 neurons)
    root_alpha: bool = True  # try alpha-CROWN once at the root before branching (ReLU splitting)
    attack_first: bool = True  # a short attack before the search (after CROWN)
    attack_fraction: float = 0.1  # at most this share of the time for the first attack
    attack_rounds: int = 2  # rounds of random restarts in the first attack
    attack_every: int = 20  # PGD on the worst domains every N iterations (ReLU splitting) ...
    attack_share: float = 0.03  # ... while those attacks have taken at most this share of the search time
    log_every: float = 2.0  # seconds between progress lines with --verbose

    def __post_init__(self):
        for entry in self.input_portfolio:
            if entry[0] not in INPUT_BRANCHINGS:
                raise ValueError(f"BaBSettings.input_portfolio: unknown branching {entry[0]!r}; choose from "
                                 f"{', '.join(INPUT_BRANCHINGS)}")
        if not 0.0 <= self.relu_refine_share < 1.0:
            raise ValueError(f"BaBSettings.relu_refine_share must be in [0, 1), not {self.relu_refine_share!r}")
        if self.relu_branching not in (None, "gradient", "babsr"):
            raise ValueError("BaBSettings.relu_branching must be 'gradient', 'babsr' or None, "
                             f"not {self.relu_branching!r}")
