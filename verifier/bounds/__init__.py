"""Bound propagation core: IBP, CROWN and alpha-CROWN on the layer graph."""
from verifier.bounds.crown import backward_lower, intermediate_bounds, pre_activation_nodes
from verifier.bounds.objective import ObjectiveBounds, objective_bounds

__all__ = ["backward_lower", "intermediate_bounds", "pre_activation_nodes", "objective_bounds", "ObjectiveBounds"]
