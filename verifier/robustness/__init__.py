"""Empirical and certified robustness of a classifier on a labelled data set.

``verify attack-blackbox``: black-box attacks that see only the ONNX model's answers through an onnxruntime
:class:`~verifier.robustness.oracle.Oracle` that counts queries: the substitute-model attack of Papernot et
al. 2017 (``substitute``: Jacobian-based dataset augmentation; ``transfer``: FGSM / PGD crafted on the
substitute), the score-based SimBA baseline (``simba``) and random noise of the same norm (``noise``);
``blackbox`` runs them side by side.

``verify radius``: for each example a bracket [certified, attacked] on the minimal adversarial perturbation
(``radius``): the certified end by binary searches with the verifier's methods (and the Lipschitz radius),
the attacked end by PGD then SimBA. Every attacked radius and every reported adversarial example is a point
validated on onnxruntime (``adversarial``, through :func:`verifier.attack.validate_candidate`).
``records`` writes the CSV files, ``plot`` the bracket plot (matplotlib optional).
"""
