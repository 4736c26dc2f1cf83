"""Branch and bound over the bound-propagation core: the search layer.

``search`` (each region of the spec in turn, input or ReLU splitting), ``common`` (what the searches share: the
region to search, how a search ended, the rows), ``portfolio`` (searches run in turn with other settings),
``input_split``, ``general`` (input splitting interleaved with PGD for networks with other nonlinearities than
ReLU); ReLU splitting: ``relu_split`` (the search loop), ``relu_start`` (the root and the choices made
once per search), ``relu_bounding`` (bounding a batch of domains), ``domains`` (the domains' state),
``branching`` (which neuron to split), ``smart_branching`` (split copies, filtered smart branching),
``relu_queue`` and ``domain_store`` (the open domains), ``exact_domains`` (domains decided by an LP or a small
MILP), ``refine`` (MILP-refined intermediate bounds).
Every search returns an outcome object (``common.RegionOutcome``, ``search.SearchOutcome``); the statistics
dict only reports.
The methods that use it (``bab``, ``auto``) are in ``verifier.methods.bab``; its settings are
``verifier.settings.BaBSettings``.
"""
