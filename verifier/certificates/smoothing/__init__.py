"""Randomized smoothing (Cohen et al. 2019): statistics (``stats``), sampling the base classifier
(``sampling``), predict / certify (``certify``), the certify log (``records``), plots (``plot``) and
Gaussian-noise training of small classifiers (``train``)."""
