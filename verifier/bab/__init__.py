"""Branch and bound over the bound-propagation core: the search layer.

``search`` (each region of the spec in turn, input or ReLU splitting), ``input_split``, ``relu_split``,
``branching`` (which neuron to split), ``domain_store`` (the open ReLU-split domains), ``exact_domains``
(domains decided by an LP or a small MILP), ``refine`` (MILP-refined intermediate bounds).
The methods that use it (``bab``, ``auto``) are in ``verifier.methods.bab``; its settings are
``verifier.settings.BaBSettings``.
"""
