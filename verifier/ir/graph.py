"""The layer graph: a DAG of typed nodes, each holding one operator.

Nodes are stored in topological order. Every node has the ONNX shape of its
output (``shape``); batched tensors carry one extra leading axis. The graph has
one input and one output; ``n_inputs`` / ``n_outputs`` are the flattened sizes
that VNN-LIB's ``X_i`` / ``Y_j`` index in C order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from verifier.ir.ops import Op


@dataclass(frozen=True)
class Node:
    name: str  # the ONNX tensor this node produces
    op: Op
    inputs: tuple[str, ...]  # names of producing nodes or the graph input
    shape: tuple[int, ...]  # ONNX output shape (no extra batch axis)
    onnx_node: str = ""  # ONNX node name, for messages


def exact_float32_on_cuda() -> None:
    """Turn off TF32 (10-bit mantissas) in CUDA convolutions and matrix products.

    cuDNN convolutions use TF32 by default on Ampere and later GPUs; the rounding allowances of the bounds
    (``verifier.bounds.crown.rel_tol``) assume float32 arithmetic, and TF32 errors are ~1000 times larger
    (measured on an H200: interval bounds of a residual conv net 4e-4 away from the CPU's). Process-wide,
    as torch has it; set whenever a graph is placed on a CUDA device.
    """
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


class Graph:
    def __init__(self, input_name: str, input_shape, nodes: list[Node], output_name: str,
                 source: str = "", dtype=torch.float32, device="cpu"):
        self.input_name = input_name
        self.input_shape = tuple(int(s) for s in input_shape)
        self.nodes = list(nodes)
        self.output_name = output_name
        self.source = source
        self.dtype = dtype
        self.device = torch.device(device)
        if self.device.type == "cuda":
            exact_float32_on_cuda()
        self.by_name = {n.name: n for n in self.nodes}
        if output_name == input_name:
            self.output_shape = self.input_shape
        else:
            self.output_shape = self.by_name[output_name].shape
        self.n_inputs = math.prod(self.input_shape)
        self.n_outputs = math.prod(self.output_shape)

    # ------------------------------------------------------------------ helpers
    def shape_of(self, name: str) -> tuple[int, ...]:
        return self.input_shape if name == self.input_name else self.by_name[name].shape

    def offsets(self) -> dict[str, torch.Tensor | None]:
        """|f(0)| of every affine node (its constant term), for rounding allowances; cached."""
        if getattr(self, "_offsets", None) is None:
            offs: dict[str, torch.Tensor | None] = {}
            with torch.no_grad():
                for n in self.nodes:
                    if not n.op.affine:
                        continue
                    zeros = [torch.zeros((1, *self.shape_of(i)), dtype=self.dtype, device=self.device)
                             for i in n.inputs]
                    f0 = n.op.forward(*zeros).abs()[0]
                    offs[n.name] = f0 if bool((f0 != 0).any()) else None
            self._offsets = offs
        return self._offsets

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {self.input_name: []}
        for n in self.nodes:
            out.setdefault(n.name, [])
            for i in n.inputs:
                out.setdefault(i, []).append(n.name)
        return out

    def nonlinear_nodes(self) -> list[Node]:
        return [n for n in self.nodes if not n.op.affine]

    def to(self, device=None, dtype=None) -> "Graph":
        """The graph on ``device`` in ``dtype``; converted copies are made once and kept."""
        device = torch.device(device) if device is not None else self.device
        dtype = dtype or self.dtype
        if device == self.device and dtype == self.dtype:
            return self
        cache = self.__dict__.setdefault("_converted", {})
        key = (str(device), dtype)
        if key not in cache:
            nodes = [replace(n, op=n.op.to(device, dtype)) for n in self.nodes]
            cache[key] = Graph(self.input_name, self.input_shape, nodes, self.output_name, self.source, dtype, device)
        return cache[key]

    def as_input(self, x) -> torch.Tensor:
        """Convert flat (B, n_inputs) or shaped input to a (B, *input_shape) tensor on the graph's device."""
        t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
        t = t.to(device=self.device, dtype=self.dtype)
        return t.reshape(-1, *self.input_shape)

    # ------------------------------------------------------------------ execution
    def forward_all(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        vals = {self.input_name: x.reshape(x.shape[0], *self.input_shape)}
        for n in self.nodes:
            vals[n.name] = n.op.forward(*[vals[i] for i in n.inputs])
        return vals

    def forward(self, x) -> torch.Tensor:
        """Batched forward pass: input ``(B, n_inputs)`` or ``(B, *input_shape)``, output ``(B, n_outputs)``."""
        if not torch.is_tensor(x):
            x = self.as_input(x)
        x = x.reshape(x.shape[0], *self.input_shape)
        if self.output_name == self.input_name:
            return x.reshape(x.shape[0], -1)
        vals = {self.input_name: x}
        last_use = self._last_use()
        for k, n in enumerate(self.nodes):
            vals[n.name] = n.op.forward(*[vals[i] for i in n.inputs])
            for i in n.inputs:  # free what no later node needs
                if last_use.get(i) == k and i != self.output_name:
                    vals.pop(i, None)
        return vals[self.output_name].reshape(x.shape[0], -1)

    def _last_use(self) -> dict[str, int]:
        if not hasattr(self, "_last_use_cache"):
            lu: dict[str, int] = {}
            for k, n in enumerate(self.nodes):
                for i in n.inputs:
                    lu[i] = k
            self._last_use_cache = lu
        return self._last_use_cache

    def ibp(self, lo: torch.Tensor, hi: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Interval bounds of every node for input boxes ``(B, n_inputs)``."""
        b = {self.input_name: (lo.reshape(lo.shape[0], *self.input_shape), hi.reshape(hi.shape[0], *self.input_shape))}
        for n in self.nodes:
            b[n.name] = n.op.ibp(*[b[i] for i in n.inputs])
        return b

    def summary(self) -> str:
        lines = [f"input {self.input_name} {self.input_shape}"]
        for n in self.nodes:
            lines.append(f"  {n.name}: {n.op.describe()} <- {', '.join(n.inputs)} -> {n.shape}")
        lines.append(f"output {self.output_name} {self.output_shape}")
        return "\n".join(lines)
