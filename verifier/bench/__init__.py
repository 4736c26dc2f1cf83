"""Benchmark runs (``verify bench``): instances.csv (``instances``), one verifier process per instance
(``job``), the results CSV (``results``), progress (``progress``), the run itself (``runner``) and VNN-COMP
scoring, summaries and cactus plots (``scoring``)."""
