"""Operator classes of the layer graph, one per operation."""
from .activation import MaxPool, ReLU, Sigmoid, Tanh
from .affine import AddNodes, AveragePool, Conv, Linear, Scale
from .base import Op
from .shape import Reshape, Transpose

__all__ = ["Op", "Linear", "Conv", "Scale", "AveragePool", "AddNodes", "Reshape", "Transpose",
           "ReLU", "Sigmoid", "Tanh", "MaxPool"]
