"""Bound propagation core: IBP, CROWN and alpha-CROWN on the layer graph."""
from .crown import backward_lower, intermediate_bounds, pre_activation_nodes
from .objective import METHODS, BoundSettings, ObjectiveBounds, objective_bounds

__all__ = ["backward_lower", "intermediate_bounds", "pre_activation_nodes", "objective_bounds", "BoundSettings",
           "ObjectiveBounds", "METHODS"]
