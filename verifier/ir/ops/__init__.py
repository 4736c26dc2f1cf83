"""Operator classes of the layer graph, one per operation."""
from verifier.ir.ops.activation import MaxPool, ReLU, Sigmoid, Tanh
from verifier.ir.ops.affine import AddNodes, AveragePool, Conv, Linear, Scale
from verifier.ir.ops.base import Op
from verifier.ir.ops.shape import Reshape, Transpose

__all__ = ["Op", "Linear", "Conv", "Scale", "AveragePool", "AddNodes", "Reshape", "Transpose",
           "ReLU", "Sigmoid", "Tanh", "MaxPool"]
