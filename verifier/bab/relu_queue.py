"""The open domains of one ReLU-splitting search, kept in a ``DomainStore`` (slots) and taken and added as
``Domains`` batches (``DomainQueue``).

Per domain the store keeps: where intermediate bounds are re-derived, its bounds ("lo:"/"hi:" node; elsewhere a
domain's bounds are the root's with its splits clamped in, rebuilt from the signs when it is taken); its split
signs ("sgn:"); its groups done; the parent's bound per row (valid on every child, so a child is never bounded
worse); the layer (index among the pre-activation nodes) of the split that made it (layers up to it need no new
CROWN); and while the memory budget allows its best slopes and split multipliers per row ("alpha:"/"beta:"), the
warm start of its children's optimisation (restarting every child from the root's slopes loses the parent's
optimum). Past that many domains the warm starts are dropped and the children restart from the root's slopes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from verifier.bab.common import Rows
from verifier.bab.domain_store import DomainStore
from verifier.bab.domains import Domains, Splits, priority
from verifier.bab.smart_branching import split_domains
from verifier.bounds.crown import pre_activation_nodes
from verifier.bounds.linear import start_alphas

WARM_DTYPE = torch.float16  # stored warm starts (any slope in [0, 1] and multiplier >= 0 is sound)


@dataclass(frozen=True)
class RootBounds:
    """The root of a search: its bounds of every node, its optimised slopes on the rows still open (None:
    CROWN's) and those rows' bounds and rounding allowances (1, K)."""

    pre: dict
    alphas: dict | None
    lb: torch.Tensor
    tol: torch.Tensor


class DomainQueue:
    """The open domains, worst bound first (see the module). ``cap``: the most domains kept; ``warm_cap``: the
    most kept with their warm starts (``warm``: store them at all)."""

    def __init__(self, graph, rows: Rows, root: RootBounds, recompute: bool, warm: bool, warm_cap: int, cap: int):
        self.graph, self.rows, self.root, self.recompute = graph, rows, root, recompute
        self.pnodes = pre_activation_nodes(graph)
        self.warm, self.warm_cap, self.cap = warm, warm_cap, cap
        # priority: the worst open row bound (smaller = worse = first)
        self.store = DomainStore(self._root_fields(), torch.full((1,), -float("inf"), dtype=torch.float64,
                                                                 device=graph.device),
                                 limit=warm_cap if warm else cap)

    def _root_fields(self) -> dict:
        graph, root, dev = self.graph, self.root, self.graph.device
        K, G = self.rows.C.shape[0], len(self.rows.groups)
        fields = {}
        for p in self.pnodes:
            if self.recompute:
                fields[f"lo:{p}"], fields[f"hi:{p}"] = root.pre[p][0], root.pre[p][1]
            fields[f"sgn:{p}"] = torch.zeros((1, *graph.shape_of(p)), dtype=torch.int8, device=dev)
        fields["done"] = torch.zeros(1, G, dtype=torch.bool, device=dev)
        fields["plb"], fields["ptol"] = root.lb, root.tol
        fields["spl"] = torch.full((1,), len(self.pnodes), dtype=torch.long, device=dev)
        if self.warm:
            for node in graph.nonlinear_nodes():
                fields[f"alpha:{node.name}"] = start_alphas(node, root.pre, 1, K, root.alphas).to(WARM_DTYPE)
            for p in self.pnodes:
                fields[f"beta:{p}"] = torch.zeros((1, K, *graph.shape_of(p)), dtype=WARM_DTYPE, device=dev)
        return fields

    def __len__(self) -> int:
        return len(self.store)

    def worst(self) -> float | None:
        return self.store.worst()

    def take(self, m: int) -> Domains:
        """The ``m`` worst domains: split signs, bounds, warm starts (slopes, split multipliers; the root's
        slopes once the warm starts are dropped), the parents' bounds and groups done, the layers of their
        last splits."""
        d, _ = self.store.take(m)
        graph, dt = self.graph, self.graph.dtype
        sgn = {p: d[f"sgn:{p}"] for p in self.pnodes}
        if self.recompute:
            pre = {p: (d[f"lo:{p}"], d[f"hi:{p}"]) for p in self.pnodes}
        else:  # the root's bounds with the domain's splits: z >= 0 (sign 1), z <= 0 (sign -1)
            zero = torch.zeros((), dtype=dt, device=graph.device)
            rp = self.root.pre
            pre = {p: (torch.where(sgn[p] > 0, zero, rp[p][0]), torch.where(sgn[p] < 0, zero, rp[p][1]))
                   for p in self.pnodes}
        if self.warm:
            al = {node.name: d[f"alpha:{node.name}"].to(dt) for node in graph.nonlinear_nodes()}
            be = {p: d[f"beta:{p}"].to(dt) for p in self.pnodes}
        else:
            al, be = self.root.alphas, None
        return Domains(pre, sgn, al, be, d["plb"], d["ptol"], d["done"], split_layer=d["spl"])

    def crown_only(self, taken: Domains) -> dict:
        """node -> (B,) mask: the domains whose last split comes before the node (CROWN on the others would give
        their parent's bounds again)."""
        return {p: taken.split_layer < k for k, p in enumerate(self.pnodes)}

    def add_children(self, domains: Domains, best_idx, layout) -> bool:
        """Store both children of each domain (split on ``best_idx``): active (lower bound 0) and inactive copies.
        True when that drops the warm starts (more domains than ``warm_cap``)."""
        dev = domains.lb.device
        ch_pre, ch_sgn, k_layer = split_domains(self.graph, layout, domains.pre, Splits.children(best_idx),
                                                domains.sgn, bounds=self.recompute)  # else rebuilt when taken
        ok, lb, tol = domains.ok, domains.lb, domains.tol
        children = {"done": torch.cat([ok, ok]), "plb": torch.cat([lb, lb]), "ptol": torch.cat([tol, tol]),
                    "spl": torch.tensor([self.pnodes.index(p) for p, _ in layout], device=dev)[k_layer]}
        for p in self.pnodes:
            if self.recompute:
                children[f"lo:{p}"], children[f"hi:{p}"] = ch_pre[p]
            children[f"sgn:{p}"] = ch_sgn[p]
        if self.warm:  # a slope of each ReLU node and a multiplier of each split neuron, per row
            for k, v in domains.alphas.items():
                children[f"alpha:{k}"] = torch.cat([v, v])
            for k, v in domains.betas.items():
                children[f"beta:{k}"] = torch.cat([v, v])
        pri = priority(self.rows, lb, ok)
        self.store.add(children, torch.cat([pri, pri]))
        if self.warm and len(self.store) > self.warm_cap:
            self.warm = False
            self.store.drop([k for k in self.store.data if k.startswith(("alpha:", "beta:"))])
            self.store.limit = self.cap
            return True
        return False
