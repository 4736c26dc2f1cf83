"""The intermediate representation every other layer builds on: the layer graph (``graph``, ``ops``), the
property (``spec``), a loaded problem (``problem``), verdicts and counterexamples (``result``), the run's
budget (``deadline``), user-facing errors (``errors``) and graph simplification (``simplify``)."""
