#!/usr/bin/env bash
# VNN-COMP interface: install the verifier.   usage: install_tool.sh v1
#
# Installs this repository (editable) into the Python named by $VERIFY_PYTHON (default python3),
# then checks that the verifier and onnxruntime import. Run once per machine, before any instance.
set -euo pipefail

VERSION_STRING=${1:-}
if [ "$VERSION_STRING" != "v1" ]; then
    echo "install_tool.sh: expected version string v1, got '${VERSION_STRING}'" >&2
    exit 1
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=${VERIFY_PYTHON:-python3}

if ! command -v "$PY" >/dev/null 2>&1; then
    echo "install_tool.sh: $PY not found; install Python 3.10+ (or set VERIFY_PYTHON)" >&2
    exit 1
fi
"$PY" - <<'PYEOF'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"install_tool.sh: Python 3.10+ is needed, this is {sys.version.split()[0]}")
PYEOF

if ! "$PY" -m pip --version >/dev/null 2>&1; then
    echo "install_tool.sh: pip is missing; installing python3-pip" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -y && $SUDO apt-get install -y python3-pip
fi

echo "install_tool.sh: installing $ROOT with $PY" >&2
"$PY" -m pip install -e "$ROOT"
"$PY" -c "import onnxruntime, torch, verifier.api, verifier.cli; print('nnverify installed:', verifier.api.__file__)"
