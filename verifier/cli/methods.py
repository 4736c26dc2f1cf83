"""``verify methods``: the methods that ``--method`` accepts."""
from __future__ import annotations

import argparse

from verifier.methods import available_methods


def add_parser(subparsers) -> argparse.ArgumentParser:
    return subparsers.add_parser("methods", help="list the verification methods for --method")


def run(args) -> int:
    for name, desc in available_methods().items():
        print(f"{name:12s} {desc}")
    return 0
