"""Logging of every subcommand: to stderr, ``-v`` for progress and statistics, ``-q`` for errors only."""
from __future__ import annotations

import logging
import sys


def setup_logging(verbose: bool, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else (logging.ERROR if quiet else logging.WARNING)
    logging.basicConfig(stream=sys.stderr, level=level, format="[%(name)s] %(message)s", force=True)
    if verbose:
        for noisy in ("matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
