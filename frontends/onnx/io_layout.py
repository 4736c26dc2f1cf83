"""How the flat ``X_i`` / ``Y_j`` of a VNN-LIB 1.0 spec map onto a model's several inputs and outputs.

The convention: ``X`` is every network input (the graph inputs that no initializer backs) in the order the ONNX
graph lists them, each flattened in C order, concatenated; ``Y`` is every graph output in the graph's order,
each flattened in C order, concatenated. With one input and one output this is VNN-COMP's usual flattening.

Where it comes from. VNN-COMP's scoring scripts (``vnncomp2023_results/SCORING/vnnlib.py`` ``get_io_nodes``, the
same in 2022-2024) accept a single network input and output only, so no scored instance has several; the
competition's answer to a model with two inputs is to ship it with its inputs already concatenated. In
``dist_shift_2023`` the scored ``mnist_concat.onnx`` takes one input of 792 values and its specs declare
``X_0 .. X_791``: the first 784 are the image (fixed to the pixels), the last 8 the latent code (boxes). The
benchmark also ships the generator alone, ``mnist_generator.onnx``, with two inputs, ``input`` (1, 1, 28, 28)
then ``onnx::Concat_1`` (1, 8), whose first nodes are ``Concat(Reshape(input), onnx::Concat_1)``:
``mnist_concat`` is that generator with the concatenation done outside, in graph-input order. Fed the split of a
spec's ``X`` in this convention, the generator computes exactly the image tensor ``output`` inside
``mnist_concat`` (``tests/test_multi_io.py`` checks it). ``mnist_prior.onnx`` has one input and two outputs
(8 and 8 values: ``Y_0 .. Y_7`` then ``Y_8 .. Y_15``). The VNN-LIB 2.0 composition
(:mod:`frontends.vnnlib.compose`) lays out declared inputs and outputs the same way, in declaration order.

Shapes must be static: a symbolic first axis (a batch axis) counts as 1, any other symbolic or unknown dimension
of an input is an error naming it. onnxruntime lists a session's inputs and outputs in the graph's order, without
the initializer-backed inputs, so the loader (from the ModelProto) and the reference (from the session) agree.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from verifier.ir.errors import ModelError


def network_inputs(graph) -> list:
    """The ValueInfos of an ONNX GraphProto's network inputs: its inputs that no initializer backs, in order."""
    inits = {i.name for i in graph.initializer}
    return [i for i in graph.input if i.name not in inits]


def static_shape(name: str, dims, source: str) -> tuple[int, ...]:
    """The static shape of input ``name`` from its dimensions (ints, or names / None where symbolic): a symbolic
    first axis counts as 1 (a batch axis); any other is a ModelError naming the input."""
    shape = []
    for k, d in enumerate(dims):
        if isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0:
            shape.append(int(d))
        elif k == 0:
            shape.append(1)  # symbolic batch axis
        else:
            raise ModelError(f"input '{name}' has a symbolic dimension {d!r} at axis {k}: the verifier needs static "
                             "input dimensions", source)
    return tuple(shape)


def value_info_dims(value) -> list | None:
    """The dimensions of an ONNX ValueInfo (ints, the ``dim_param`` or None where unknown); None: no shape."""
    t = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


@dataclass(frozen=True)
class Slot:
    """One network input: its name, static shape (the batch axis as 1), numpy element type and place in X."""

    name: str
    shape: tuple[int, ...]
    dtype: type
    offset: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class InputLayout:
    """The network inputs of a model laid out in ``X`` (see the module docstring)."""

    def __init__(self, names, shapes, dtypes):
        self.slots: list[Slot] = []
        off = 0
        for name, shape, dtype in zip(names, shapes, dtypes):
            self.slots.append(Slot(name, tuple(shape), dtype, off))
            off += math.prod(shape)
        self.n_inputs = off

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slots]

    def feeds(self, x) -> dict[str, np.ndarray]:
        """onnxruntime's feeds at one point ``x`` (flat, ``n_inputs`` values; or shaped as the one input)."""
        x = np.asarray(x).reshape(-1)
        if x.size != self.n_inputs:
            raise ValueError(f"a point of {x.size} values for inputs of {self.n_inputs}")
        return {s.name: x[s.offset:s.offset + s.size].astype(s.dtype).reshape(s.shape) for s in self.slots}

    def batch_feeds(self, X) -> dict[str, np.ndarray]:
        """Feeds of a batch ``X`` (B, n_inputs) along each input's first axis (every input must have one free)."""
        X = np.asarray(X).reshape(len(X), self.n_inputs)
        return {s.name: X[:, s.offset:s.offset + s.size].astype(s.dtype).reshape(len(X), *s.shape[1:])
                for s in self.slots}


def join_outputs(outputs, batch: int | None = None) -> np.ndarray:
    """``Y``: the outputs flattened in C order and concatenated in order, float64 (``batch``: each (B, ...))."""
    if batch is None:
        return np.concatenate([np.asarray(y, dtype=np.float64).reshape(-1) for y in outputs])
    return np.concatenate([np.asarray(y, dtype=np.float64).reshape(batch, -1) for y in outputs], axis=1)
