"""What an op handler of the ONNX loader works with: the load's state (``LoadContext``) and one node (``OnnxNode``).

``LoadContext`` holds the folded constants, the shape of every graph value, the aliases that ``Identity``
and ``Dropout`` leave behind, and the graph nodes built so far; ``add`` appends a node after checking
that its operator applies to its inputs. ``OnnxNode`` is one ONNX node read for the handlers: its op
type, its label for messages (``'name' (OpType)``), its attributes, inputs, output and which inputs
are constant.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import torch

from verifier.ir.errors import ModelError
from verifier.ir.graph import Node


def node_error(label: str, message: str, source: str) -> ModelError:
    """The ModelError ``node <label>: <message>`` of ``source``, naming the node."""
    return ModelError(f"node {label}: {message}", source, nodes=[label])


@dataclass(frozen=True)
class OnnxNode:
    """One ONNX node as the handlers see it."""

    op_type: str
    label: str
    attrs: dict
    inputs: list[str]
    out: str
    is_const: list[bool]  # per input: an omitted optional input ("") or a known constant
    outs: tuple[str, ...] = ()  # every output (``out`` is the first): Split has several

    @classmethod
    def read(cls, proto, consts: dict[str, np.ndarray]) -> OnnxNode:
        ins = list(proto.input)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute}
        return cls(proto.op_type, node_label(proto), attrs, ins, proto.output[0] if proto.output else "",
                   [i == "" or i in consts for i in ins], tuple(proto.output))

    def has_input(self, k: int) -> bool:
        """Whether optional input ``k`` is given (present and not the empty name)."""
        return len(self.inputs) > k and bool(self.inputs[k])


def node_label(proto) -> str:
    return f"'{proto.name or (proto.output[0] if proto.output else '')}' ({proto.op_type})"


@dataclass
class LoadContext:
    """The state of one load: constants, shapes, aliases and the graph nodes built so far."""

    source: str  # names the model in messages
    dtype: torch.dtype  # of the tensors handed to the operators
    consts: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]  # per graph value, without the batch axis
    nodes: list[Node] = field(default_factory=list)
    alias: dict[str, str] = field(default_factory=dict)
    opset: int = 0  # of the default ONNX domain (handlers that run a node in onnxruntime need it)

    def error(self, label: str, message: str) -> ModelError:
        return node_error(label, message, self.source)

    def name_of(self, t: str) -> str:
        """The graph value that ``t`` stands for (following Identity/Dropout aliases)."""
        while t in self.alias:
            t = self.alias[t]
        return t

    def check_inputs(self, n: OnnxNode) -> None:
        """Every input of ``n`` is an omitted optional one, a constant, or a graph value made by an earlier node
        (the network input included): ONNX lists nodes in topological order."""
        for t in n.inputs:
            if t and t not in self.consts and self.name_of(t) not in self.shapes:
                raise self.error(n.label, f"input '{t}' is neither an initializer nor the output of an earlier node")

    def tens(self, a: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.array(a, dtype=np.float64), dtype=self.dtype)

    def add(self, out: str, op, ins: list[str], label: str) -> None:
        """Append the node ``out = op(*ins)``; its shape is that of ``op`` applied to zeros (float64)."""
        ins = [self.name_of(i) for i in ins]
        sample = [torch.zeros((1, *self.shapes[i]), dtype=torch.float64) for i in ins]
        try:
            y = op.to(dtype=torch.float64).forward(*sample)
        except Exception as e:
            raise self.error(label, f"cannot apply to inputs of shape {[self.shapes[i] for i in ins]}: {e}") from None
        self.shapes[out] = tuple(y.shape[1:])
        self.nodes.append(Node(out, op, tuple(ins), self.shapes[out], label))

    def scale_const(self, c: np.ndarray, x_shape, label: str) -> torch.Tensor:
        """A constant operand of an elementwise op on a value of shape ``x_shape``; it must not broadcast that value."""
        c = np.asarray(c, dtype=np.float64)
        while c.ndim > len(x_shape) and c.shape[0] == 1:
            c = c.reshape(c.shape[1:])
        if np.broadcast_shapes(c.shape, tuple(x_shape)) != tuple(x_shape):
            raise self.error(label, f"constant of shape {c.shape} would broadcast the input of shape {tuple(x_shape)}")
        return self.tens(c)
