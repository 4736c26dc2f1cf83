"""The bracket [certified, attacked] on each example's minimal adversarial perturbation (``verify radius``).

The attacked (upper) end: the distance of the closest validated adversarial example found by PGD
(:func:`verifier.attack.pgd_attack` on l_inf boxes; the margin PGD of :mod:`~verifier.robustness.gradient`
on l2 balls) in a binary search over the radius, then SimBA where PGD finds nothing at ``eps_max``. Every
attacked radius is the distance of a point that onnxruntime confirmed (:mod:`~verifier.robustness.adversarial`).

The certified (lower) end: the Lipschitz radius (:mod:`verifier.certificates.lipschitz`: global and local
bounds; in l_inf the l2 radius / sqrt(n) or the local l_inf one), raised by a binary search with each
verifier method in turn on the local-robustness property (``unsat`` at eps: eps is certified; for l2 the box
of half-width eps holds the l2 ball of radius eps). Each verifier call has ``time_per_call`` seconds; a
``sat`` that a method returns lowers the attacked end too. Randomized smoothing's l2 radius (a claim about
the smoothed classifier, holding with probability 1 - alpha) is a separate column, never mixed in.

The bracket is exact when the two ends meet within ``tol`` (relative).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from frontends.onnx.reference import OnnxReference
from verifier.api import verify_problem
from verifier.attack.pgd import pgd_attack
from verifier.certificates.lipschitz.global_bound import global_lipschitz
from verifier.certificates.lipschitz.local import local_certified_radius
from verifier.certificates.lipschitz.radii import certified_radius
from verifier.certificates.smoothing.certify import certify
from verifier.certificates.threads import torch_threads
from verifier.ir.deadline import Deadline
from verifier.ir.errors import UnsupportedError
from verifier.ir.graph import Graph
from verifier.ir.problem import Problem
from verifier.ir.result import Verdict
from verifier.robustness.adversarial import Adversarial, check_adversarial, robustness_spec
from verifier.robustness.gradient import gradient_attack
from verifier.robustness.oracle import Oracle
from verifier.robustness.simba import simba
from verifier.settings.options import AttackSettings, VerifyOptions
from verifier.settings.robustness import RadiusSettings

log = logging.getLogger("verifier.robustness")


@dataclass
class Bracket:
    index: int
    label: int
    prediction: int
    norm: str
    certified: float
    certified_by: str
    attacked: float  # inf where no adversarial example was found within eps_max
    attacked_by: str
    adversarial: Adversarial | None
    lipschitz: float = math.nan  # the Lipschitz certified radius alone
    smoothing: float = math.nan  # randomized smoothing's l2 radius (probabilistic; nan: not asked)
    calls: int = 0  # verifier calls
    time_s: float = 0.0
    tol: float = 0.01

    @property
    def exact(self) -> bool:
        return math.isfinite(self.attacked) and self.attacked - self.certified <= self.tol * self.attacked

    @property
    def consistent(self) -> bool:
        return self.certified <= self.attacked


class RadiusSearch:
    """Brackets of the examples of one model (``graph`` and its onnxruntime ``reference``)."""

    def __init__(self, graph: Graph, reference: OnnxReference, settings: RadiusSettings, model_path: str = ""):
        self.graph, self.reference, self.s = graph, reference, settings
        self.model_path = model_path
        self.n_out = graph.n_outputs
        self.oracle = Oracle(reference)
        self.lip = None
        self.message = ""
        if settings.lipschitz:
            try:
                self.lip = global_lipschitz(graph, "product")
            except UnsupportedError as e:
                self.message = f"Lipschitz radius not available: {e}"

    # ------------------------------------------------------------------ attacked end
    def pgd(self, x0: np.ndarray, label: int, eps: float) -> Adversarial | None:
        s = self.s
        if s.norm == "linf":
            spec = robustness_spec(x0, label, eps, self.n_out, s.domain)
            att = AttackSettings(restarts=s.attack_restarts, steps=s.attack_steps, rounds=s.attack_rounds, seed=s.seed)
            cex = pgd_attack(self.graph, spec, att, Deadline(s.attack_time), reference=self.reference)
            cand = None if cex is None else cex.x
        else:  # one targeted margin PGD per other class; the closest validated point
            others = [j for j in range(self.n_out) if j != label]
            x = torch.as_tensor(np.repeat(np.asarray(x0, dtype=np.float32)[None], len(others), 0),
                                dtype=self.graph.dtype)
            lab = torch.full((len(others),), label, dtype=torch.long)
            cands = gradient_attack(self.graph.forward, x, lab, eps, "l2", s.attack_steps, s.domain, "margin",
                                    targets=torch.tensor(others), stop_early=True).detach().cpu().numpy()
            advs = [check_adversarial(self.reference, x0, label, c, s.norm, self.n_out, None, s.domain) for c in cands]
            advs = [a for a in advs if a is not None]
            return min(advs, key=lambda a: a.distance) if advs else None
        if cand is None:
            return None
        return check_adversarial(self.reference, x0, label, cand, s.norm, self.n_out, None, s.domain)

    def black_box(self, x0: np.ndarray, label: int, eps: float) -> Adversarial | None:
        s = self.s
        return simba(self.oracle, x0, label, eps, s.norm, s.blackbox_queries, None, s.domain, s.seed).adversarial

    def attacked_end(self, x0: np.ndarray, label: int) -> tuple[Adversarial | None, str]:
        """The closest validated adversarial example found and the attack that found it."""
        s = self.s
        attack, by = self.pgd, "pgd"
        best = attack(x0, label, s.eps_max)
        if best is None and s.blackbox:
            attack, by = self.black_box, "simba"
            best = attack(x0, label, s.eps_max)
        if best is None:
            return None, "-"
        lo, hi = 0.0, best.distance
        for _ in range(s.attack_search_steps):
            if hi - lo <= s.tol * hi:
                break
            mid = 0.5 * (lo + hi)
            a = attack(x0, label, mid)
            if a is not None and a.distance <= mid:
                best, hi = (a if a.distance < best.distance else best), min(hi, a.distance)
            else:
                lo = mid
        return best, by

    # ------------------------------------------------------------------ certified end
    def verify_at(self, x0: np.ndarray, label: int, eps: float, method: str):
        """The verdict of ``method`` on the box of half-width ``eps`` and its validated adversarial example."""
        s = self.s
        spec = robustness_spec(x0, label, eps, self.n_out, s.domain)
        problem = Problem(self.graph, spec, self.model_path, "", reference=self.reference)
        opts = VerifyOptions(method=method, timeout=s.time_per_call, threads=s.threads,
                             attack=AttackSettings(seed=s.seed, rounds=s.attack_rounds))
        r = verify_problem(problem, opts, Deadline(s.time_per_call))
        adv = None
        if r.verdict is Verdict.SAT:
            adv = check_adversarial(self.reference, x0, label, r.counterexample.x, s.norm, self.n_out, None, s.domain)
        elif r.verdict is Verdict.ERROR:
            log.warning("%s at eps %.4g: %s", method, eps, r.message)
        return r.verdict, adv

    def lipschitz_radius(self, x0: np.ndarray) -> float:
        if self.lip is None:
            return math.nan
        g = certified_radius(self.graph, x0, self.lip)
        loc = local_certified_radius(self.graph, x0, self.lip, "crown")
        return max(g.l2, loc.l2) if self.s.norm == "l2" else max(g.linf, loc.linf)

    def smoothing_radius(self, x0: np.ndarray, label: int) -> float:
        s = self.s
        c = certify(self.graph, np.asarray(x0).reshape(self.graph.input_shape), s.smoothing_sigma, n0=100,
                    n=s.smoothing_n, seed=s.seed, threads=s.threads)
        return c.radius if c.prediction == label else 0.0

    # ------------------------------------------------------------------ one example
    def bracket(self, index: int, x0: np.ndarray, label: int) -> Bracket:
        """The bracket of example ``index`` (input ``x0``, label ``label``), on ``threads`` torch threads."""
        with torch_threads(self.s.threads):
            return self._bracket(index, x0, label)

    def _bracket(self, index: int, x0: np.ndarray, label: int) -> Bracket:
        s = self.s
        t0 = time.perf_counter()
        x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
        pred = int(np.argmax(self.oracle.scores(x0[None], count=False)[0]))
        smooth = self.smoothing_radius(x0, label) if s.smoothing_sigma > 0 else math.nan
        if pred != label:  # the clean input is its own counterexample
            adv = check_adversarial(self.reference, x0, label, x0, s.norm, self.n_out, 0.0, s.domain)
            if adv is not None:
                return Bracket(index, label, pred, s.norm, 0.0, "-", 0.0, "clean", adv, 0.0, smooth,
                               time_s=time.perf_counter() - t0, tol=s.tol)
        best, by = self.attacked_end(x0, label)
        cert, cert_by = 0.0, "-"
        lip = self.lipschitz_radius(x0)
        if lip > cert:
            cert, cert_by = lip, "lipschitz"
        calls = 0
        for method in s.methods:
            lo = cert
            hi = best.distance if best is not None else s.eps_max
            for _ in range(s.max_steps):
                if hi - lo <= s.tol * hi:
                    break
                mid = 0.5 * (lo + hi)
                verdict, adv = self.verify_at(x0, label, mid, method)
                calls += 1
                if verdict is Verdict.UNSAT:
                    lo = mid
                    if mid > cert:
                        cert, cert_by = mid, method
                else:
                    hi = mid
                    if adv is not None and (best is None or adv.distance < best.distance):
                        best, by = adv, method
        attacked = best.distance if best is not None else math.inf
        if cert > attacked:
            log.error("example %d: certified %.6g above the attacked %.6g (%s vs %s)", index, cert, attacked,
                      cert_by, by)
        return Bracket(index, label, pred, s.norm, cert, cert_by, attacked, by, best, lip, smooth, calls,
                       time.perf_counter() - t0, s.tol)
