"""``verify attack-blackbox`` as a function: the substitute transfer attack, SimBA and random noise on the
same examples, each example's adversarial example validated on onnxruntime.

The first ``substitute.initial`` examples of the data (or a separate initial set) seed the substitute; the
attacks run on the others (on all of them when the substitute attack is not run) that the real model
classifies correctly (the clean evaluation is not counted as attack queries). The substitute's training
queries are a one-off cost shared by every example attacked.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from frontends.onnx.reference import OnnxReference
from verifier.robustness.adversarial import AttackOutcome
from verifier.robustness.noise import noise_attack
from verifier.robustness.oracle import Oracle
from verifier.robustness.simba import simba
from verifier.robustness.substitute import Substitute, train_substitute
from verifier.robustness.transfer import transfer_attack
from verifier.settings.robustness import BlackboxSettings

log = logging.getLogger("verifier.robustness")


@dataclass
class AttackSummary:
    name: str
    attacked: int  # examples attacked (correctly classified ones)
    successes: int  # validated adversarial examples
    queries: int  # oracle queries spent on the examples
    setup_queries: int = 0  # one-off queries (the substitute's training)
    distances: list[float] = field(default_factory=list)
    time_s: float = 0.0

    @property
    def success_rate(self) -> float:
        return self.successes / self.attacked if self.attacked else 0.0

    @property
    def queries_per_example(self) -> float:
        return self.queries / self.attacked if self.attacked else 0.0

    @property
    def mean_perturbation(self) -> float:
        return float(np.mean(self.distances)) if self.distances else math.nan


def summarize(name: str, outcomes: list[AttackOutcome], setup_queries: int = 0, time_s: float = 0.0) -> AttackSummary:
    return AttackSummary(name, len(outcomes), sum(o.success for o in outcomes), sum(o.queries for o in outcomes),
                         setup_queries, [o.adversarial.distance for o in outcomes if o.success], time_s)


@dataclass
class BlackboxReport:
    summaries: list[AttackSummary]
    outcomes: dict[str, list[AttackOutcome]]
    substitute: Substitute | None
    clean_accuracy: float
    n_initial: int


def run_blackbox(reference: OnnxReference, X: np.ndarray, y: np.ndarray, settings: BlackboxSettings,
                 initial: np.ndarray | None = None, max_examples: int = -1,
                 attacks=("substitute", "simba", "noise"), substitute: Substitute | None = None) -> BlackboxReport:
    """Run ``attacks`` (of substitute, simba, noise) on the labelled data ``X``, ``y``.

    ``substitute``: one already trained on the same initial examples (its training queries still count as
    the setup cost), e.g. to compare FGSM with PGD on one substitute."""
    oracle = Oracle(reference)
    X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    n_init = settings.substitute.initial
    if "substitute" not in attacks:  # no substitute: every example is attacked
        x_init, Xa, ya, offset = X[:0], X, y, 0
    elif initial is None:
        if len(X) <= n_init:
            raise ValueError(f"the data holds {len(X)} examples: more than --initial {n_init} are needed (the first "
                             f"{n_init} seed the substitute, the others are attacked)")
        x_init, Xa, ya, offset = X[:n_init], X[n_init:], y[n_init:], n_init
    else:
        x_init, Xa, ya, offset = np.asarray(initial, dtype=np.float32).reshape(len(initial), -1)[:n_init], X, y, 0
    if max_examples >= 0:
        Xa, ya = Xa[:max_examples], ya[:max_examples]
    n_out = oracle.scores(X[:1], count=False).shape[1]
    pred = oracle.labels(Xa, count=False)
    ok = pred == ya
    idx = np.flatnonzero(ok) + offset
    Xc, yc = Xa[ok], ya[ok]
    t = settings.transfer
    summaries, outcomes, sub = [], {}, None
    if "substitute" in attacks:
        t0 = time.perf_counter()
        sub = substitute or train_substitute(oracle, x_init, n_out, settings.substitute, t.domain, settings.threads)
        log.info("substitute trained: %d oracle queries, |S| = %s, agreement %.3f", sub.queries, sub.sizes,
                 sub.agreement)
        res = transfer_attack(sub.model, oracle, Xc, yc, n_out, t, idx)
        name = f"substitute-{t.attack}"
        outcomes[name] = res
        summaries.append(summarize(name, res, sub.queries, time.perf_counter() - t0))
    if "simba" in attacks:
        t0 = time.perf_counter()
        s = settings.score
        res = [simba(oracle, x0, int(c), t.eps, t.norm, s.queries, s.step, t.domain, s.seed + int(i), int(i))
               for x0, c, i in zip(Xc, yc, idx)]
        outcomes["simba"] = res
        summaries.append(summarize("simba", res, 0, time.perf_counter() - t0))
    if "noise" in attacks:
        t0 = time.perf_counter()
        res = noise_attack(oracle, Xc, yc, t.eps, t.norm, n_out, settings.noise_tries, t.domain,
                           settings.substitute.seed, idx)
        outcomes["noise"] = res
        summaries.append(summarize("noise", res, 0, time.perf_counter() - t0))
    return BlackboxReport(summaries, outcomes, sub, float(ok.mean()) if len(ok) else 0.0, len(x_init))
