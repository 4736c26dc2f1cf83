"""PGD falsifier: searches each input region for a point meeting a disjunct.

For every disjunct the loss of a point is ``max_i (C_i y - d_i)``: it is <= 0
exactly when the point meets the disjunct. Batches of starts for all disjuncts
of a region descend that loss with signed gradient steps projected onto the box;
any point reaching <= 0 is validated through onnxruntime before it is returned
(see ``verifier.validate``).

Starts: half of each batch are the best of a cheap screening sample (many
uniform points, forward pass only; worthwhile when the input is small, as in
ACAS Xu), the other half uniform points (plus the box centre in round 0). The
first step is a fraction of the box width that cycles over the rounds
(``step_size / 2``, ``/ 10``, ``/ 50``): large first steps alone settle in the
same basins round after round. Steps decay (cosine) to ``1e-4`` of the width.

The gradient steps run on ``surrogate.attack_forward``: the exact values, with
surrogate gradients through step ops (Sign, Floor) whose true gradient is zero.
"""
from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from verifier.attack.surrogate import attack_forward
from verifier.attack.validate import validate_candidate
from verifier.ir.deadline import Deadline
from verifier.ir.graph import Graph
from verifier.ir.result import Counterexample
from verifier.ir.spec import Spec
from verifier.settings.options import AttackSettings

log = logging.getLogger("verifier.attack")

STEP_CYCLE = (0.5, 0.1, 0.02)  # first step of round r: step_size * STEP_CYCLE[r % 3] of the box width
STEP_END = 1e-4  # last step, fraction of the box width
SCREEN_VALUES = 100_000  # screening sample size x input size per round and disjunct
SCREEN_MAX = 20_000
CHUNK_DISJUNCTS = 4096  # disjuncts of one region attacked in one batch


def _padded_rows(spec: Spec, disjuncts: list[int], dtype, device):
    """C (J, m, n_out), d (J, m): each disjunct's rows, padded by repeating its first row."""
    m = max(spec.disjuncts[j].C.shape[0] for j in disjuncts)
    Cs = np.empty((len(disjuncts), m, spec.n_outputs))
    ds = np.empty((len(disjuncts), m))
    for k, j in enumerate(disjuncts):
        C, d = spec.disjuncts[j].C, spec.disjuncts[j].d
        r = C.shape[0]
        Cs[k, :r], ds[k, :r] = C, d
        Cs[k, r:], ds[k, r:] = C[:1], d[:1]
    return torch.tensor(Cs, dtype=dtype, device=device), torch.tensor(ds, dtype=dtype, device=device)


def disjunct_loss(y: torch.Tensor, C: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """y (J, R, n_out) -> (J, R): max over the disjunct's rows of C y - d."""
    return (torch.einsum("jmo,jro->jrm", C, y) - d.unsqueeze(1)).max(-1).values


def pgd_attack(graph: Graph, spec: Spec, settings: AttackSettings, deadline: Deadline, reference=None,
               rounds: int | None = None, box: tuple[np.ndarray, np.ndarray] | None = None,
               stats: dict | None = None, starts: np.ndarray | None = None) -> Counterexample | None:
    """Return a validated counterexample or None when rounds or time run out.

    ``box`` optionally restricts the search to a sub-box (intersected with each region).
    ``starts`` (P, n) optionally gives starting points (clipped into each region) that replace
    random ones in the first round.
    ``reference`` is an ``OnnxReference``; without one nothing can be validated and
    no counterexample is returned.
    """

    gen = torch.Generator(device="cpu").manual_seed(settings.seed)
    dev, dt = graph.device, graph.dtype
    rounds = settings.rounds if rounds is None else rounds
    n_steps = settings.steps
    best = math.inf
    regions = []
    J_max = 0
    for lo, hi, idx in spec.regions():
        if box is not None:
            lo, hi = np.maximum(lo, box[0]), np.minimum(hi, box[1])
            if np.any(lo > hi):
                continue
        C, d = _padded_rows(spec, idx, dt, dev)
        lo_t, hi_t = torch.tensor(lo, dtype=dt, device=dev), torch.tensor(hi, dtype=dt, device=dev)
        J_max = max(J_max, len(idx))
        for s in range(0, len(idx), CHUNK_DISJUNCTS):  # a step's batch stays small: the deadline is looked at often
            regions.append((lo_t, hi_t, idx[s:s + CHUNK_DISJUNCTS], C[s:s + CHUNK_DISJUNCTS], d[s:s + CHUNK_DISJUNCTS]))
    if not regions:
        return None
    # keep a batch around a few thousand input values x points for large inputs (as many starts per disjunct as
    # the whole region would get in one batch)
    R = max(4, min(settings.restarts, int(2_000_000 / max(1, graph.n_inputs * J_max))))
    n_screen = min(SCREEN_MAX, int(SCREEN_VALUES / max(1, graph.n_inputs * J_max)))
    tried = 0
    per_point = 0.0  # seconds per point of the last step (forward and backward)
    for rnd in range(rounds):
        s0 = settings.step_size * STEP_CYCLE[rnd % len(STEP_CYCLE)]
        for lo, hi, idx, C, d in regions:
            if deadline.expired():
                if stats is not None:
                    stats.update(attack_rounds=rnd, attack_best=best)
                return None
            J = len(idx)
            width = hi - lo
            u = torch.rand((J, R, lo.numel()), generator=gen).to(dev, dt)
            if n_screen > 2 * R:  # half the starts: the best points of a larger uniform sample
                us = torch.rand((J, n_screen, lo.numel()), generator=gen).to(dev, dt)
                with torch.no_grad():
                    ys = graph.forward((lo + us * width).reshape(J * n_screen, -1)).reshape(J, n_screen, -1)
                    top = torch.topk(-disjunct_loss(ys, C, d), R // 2, dim=1).indices
                u[:, : R // 2] = torch.gather(us, 1, top.unsqueeze(-1).expand(-1, -1, lo.numel()))
            if rnd == 0:
                u[:, -1] = 0.5  # the box centre
                if starts is not None and len(starts):
                    s = torch.tensor(starts[: R - 1], dtype=dt, device=dev)
                    su = ((s - lo) / torch.where(width > 0, width, torch.ones_like(width))).clamp(0, 1)
                    u[:, : su.shape[0]] = su.unsqueeze(0).to(u.dtype)
            x = (lo + u * width).detach()
            for step in range(n_steps):
                if deadline.step_would_overrun(per_point * J * R):  # a step that would end after the run's end
                    break
                t_step = time.monotonic()
                x.requires_grad_(True)
                y = attack_forward(graph, x.reshape(J * R, -1)).reshape(J, R, -1)
                loss = disjunct_loss(y, C, d)
                g, = torch.autograd.grad(loss.sum(), x)
                with torch.no_grad():
                    cur_best = float(loss.min())
                    best = min(best, cur_best)
                    if cur_best <= 0:
                        cand = _validate_batch(x, loss, idx, spec, reference, C, d)
                        tried += 1
                        if cand is not None:
                            if stats is not None:
                                stats.update(attack_rounds=rnd + 1, attack_best=best)
                            return cand
                    frac = STEP_END + (s0 - STEP_END) * 0.5 * (1 + math.cos(math.pi * step / n_steps))
                    x = torch.minimum(torch.maximum(x - frac * width * torch.sign(g), lo), hi).detach()
                per_point = (time.monotonic() - t_step) / (J * R)
                if deadline.expired():
                    break
        log.debug("attack round %d: best loss %.6g", rnd, best)
    if stats is not None:
        stats.update(attack_rounds=rounds, attack_best=best)
    return None


def _validate_batch(x, loss, idx, spec, reference, C, d, limit: int = 8, near: float = 1e-4):
    """A validated counterexample among the (at most ``limit``) points of the batch with the lowest loss, or None.
    A point is tried on its own disjunct first, then on the other disjuncts of the region whose rows
    (``C``, ``d``) onnxruntime's output at it nearly meets (within ``near``): one matrix product over
    all of them, so that a region of 90,000 disjuncts does not mean 90,000 exact checks per point."""
    if reference is None:
        return None
    flat_loss = loss.reshape(-1)
    order = torch.argsort(flat_loss)[:limit]
    J, R = loss.shape
    Cn = dn = None
    for k in order.tolist():
        if float(flat_loss[k]) > 0:
            break
        j = k // R
        xc = x.reshape(J * R, -1)[k].detach().cpu().double().numpy()
        cex = validate_candidate(reference, spec, xc, disjuncts=[idx[j]])
        if cex is None and J > 1:
            if Cn is None:
                Cn, dn = C.detach().cpu().double().numpy(), d.detach().cpu().double().numpy()
            y = reference.run(xc.astype(np.float32))
            worst = (Cn @ y - dn).max(1)  # (J,): each disjunct's worst row at this point
            close = np.flatnonzero(worst <= near * (1.0 + np.abs(dn).max(1)))
            others = [idx[i] for i in close[np.argsort(worst[close])] if i != j]
            cex = validate_candidate(reference, spec, xc, disjuncts=others) if others else None
        if cex is not None:
            return cex
    return None
