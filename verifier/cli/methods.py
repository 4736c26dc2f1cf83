"""``verify methods``: the methods that ``--method`` accepts (from the catalogue, without importing torch)."""
from __future__ import annotations

import argparse

from verifier.settings.methods import METHODS


def add_parser(subparsers) -> argparse.ArgumentParser:
    return subparsers.add_parser("methods", help="list the verification methods for --method")


def run(args) -> int:
    for name, desc in sorted(METHODS.items()):
        print(f"{name:12s} {desc}")
    return 0
