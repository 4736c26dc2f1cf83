"""The open domains of ReLU splitting, in preallocated slots.

Each domain is a row of several tensors (its bounds, split signs, warm starts, parent bound...)
and a priority (its worst open bound; the smallest is bounded first). Taking the worst domains
and adding children touch only those rows: keeping the domains in concatenated tensors, as
before, copied every stored domain on every iteration, which over a long search costs more than
the bounding itself (tens of thousands of domains of a few thousand neurons each).
"""
from __future__ import annotations

import torch


class DomainStore:
    def __init__(self, fields: dict[str, torch.Tensor], pri: torch.Tensor, limit: int | None = None):
        """``fields``: name -> (n, ...) tensor of the first ``n`` domains; ``pri``: (n,) their priorities;
        ``limit``: how many domains the caller will ever keep (capacity does not grow far past it)."""
        n = pri.shape[0]
        self.data = {k: v.clone() for k, v in fields.items()}
        self.pri = pri.clone()
        self.alive = torch.ones(n, dtype=torch.bool, device=pri.device)
        self.count = n
        self.limit = limit

    def __len__(self) -> int:
        return self.count

    @property
    def capacity(self) -> int:
        return self.alive.shape[0]

    def worst(self) -> float | None:
        """The smallest priority stored (None when empty)."""
        return float(self.pri[self.alive].min()) if self.count else None

    def take(self, m: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Remove and return the ``m`` (at most ``len(self)``) domains of smallest priority: fields, priorities."""
        m = min(m, self.count)
        live = torch.nonzero(self.alive).flatten()  # among stored domains only, whatever their priority
        idx = live[torch.topk(self.pri[live], m, largest=False).indices]
        out = {k: v[idx] for k, v in self.data.items()}
        pri = self.pri[idx]
        self.alive[idx] = False
        self.count -= m
        return out, pri

    def add(self, fields: dict[str, torch.Tensor], pri: torch.Tensor) -> None:
        """Store ``pri.shape[0]`` new domains (every stored field must be given)."""
        m = pri.shape[0]
        if m == 0:
            return
        free = torch.nonzero(~self.alive).flatten()
        if free.numel() < m:
            self._grow(m - free.numel())
            free = torch.nonzero(~self.alive).flatten()
        slots = free[:m]
        for k, v in self.data.items():
            v[slots] = fields[k].to(v.dtype)
        self.pri[slots] = pri.to(self.pri.dtype)
        self.alive[slots] = True
        self.count += m

    def drop(self, names) -> None:
        """Forget some fields of every domain (e.g. warm starts past their memory budget)."""
        for k in list(names):
            self.data.pop(k, None)

    def _grow(self, need: int) -> None:
        cap = self.capacity
        extra = max(need, cap // 2, 64)
        if self.limit is not None:  # not far past what the caller keeps
            extra = max(need, min(extra, self.limit + need - cap))
        for k, v in self.data.items():
            self.data[k] = torch.cat([v, v.new_zeros((extra, *v.shape[1:]))])
        self.pri = torch.cat([self.pri, self.pri.new_full((extra,), float("inf"))])
        self.alive = torch.cat([self.alive, self.alive.new_zeros(extra)])
