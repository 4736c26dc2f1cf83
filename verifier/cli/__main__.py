"""``python -m verifier.cli``: the ``verify`` command."""
import sys

from verifier.cli.main import main

sys.exit(main())
