#!/usr/bin/env bash
# VNN-COMP interface: verify one instance and write the result file.
# usage: run_instance.sh v1 CATEGORY ONNX_FILE VNNLIB_FILE RESULTS_FILE TIMEOUT
#
# The result file's first line is sat (then the counterexample), unsat, unknown, timeout or
# error. The verifier gets TIMEOUT minus a margin ($VERIFY_STARTUP_MARGIN, default 1 s; its budget
# counts from the start of its process, Python and torch loading included) and is killed at TIMEOUT + $VERIFY_KILL_SLACK (default 10) s if
# it overruns; a killed run writes `timeout`, a crash writes `error`. ONNX_FILE / VNNLIB_FILE may
# be gzipped, or named without the .gz of the file on disk.
# Environment: VERIFY_PYTHON (default python3), VERIFY_METHOD (default auto).
set -uo pipefail

if [ "$#" -ne 6 ]; then
    echo "usage: run_instance.sh v1 CATEGORY ONNX_FILE VNNLIB_FILE RESULTS_FILE TIMEOUT" >&2
    exit 1
fi
VERSION_STRING=$1
CATEGORY=$2
ONNX_FILE=$3
VNNLIB_FILE=$4
RESULTS_FILE=$5
TIMEOUT=$6
if [ "$VERSION_STRING" != "v1" ]; then
    echo "run_instance.sh: expected version string v1, got '$VERSION_STRING'" >&2
    exit 1
fi
if ! [[ "$TIMEOUT" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
    echo "run_instance.sh: TIMEOUT must be a number of seconds, got '$TIMEOUT'" >&2
    exit 1
fi

resolve() {  # the file itself, or the .gz next to it, or the file without .gz
    if [ -f "$1" ]; then echo "$1"
    elif [ -f "$1.gz" ]; then echo "$1.gz"
    elif [ -f "${1%.gz}" ]; then echo "${1%.gz}"
    else echo "$1"
    fi
}
ONNX_PATH=$(resolve "$ONNX_FILE")
VNNLIB_PATH=$(resolve "$VNNLIB_FILE")

PY=${VERIFY_PYTHON:-python3}
METHOD=${VERIFY_METHOD:-auto}
MARGIN=${VERIFY_STARTUP_MARGIN:-1}
BUDGET=$(awk -v t="$TIMEOUT" -v m="$MARGIN" 'BEGIN { b = t - m; if (b < 1) b = (t < 1 ? t : 1); print b }')
SLACK=${VERIFY_KILL_SLACK:-10}
HARD=$(awk -v t="$TIMEOUT" -v s="$SLACK" 'BEGIN { printf "%d", t + s + 0.999 }')
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PIDFILE="${TMPDIR:-/tmp}/nnverify_vnncomp_$(id -u).pid"

mkdir -p "$(dirname "$RESULTS_FILE")"
rm -f "$RESULTS_FILE" "$RESULTS_FILE.tmp"
echo "run_instance.sh: $CATEGORY $ONNX_PATH $VNNLIB_PATH timeout $TIMEOUT s (verifier budget $BUDGET s, method $METHOD)" >&2

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" timeout --signal=TERM --kill-after=5 "$HARD" \
    "$PY" -m verifier.cli "$ONNX_PATH" "$VNNLIB_PATH" --timeout "$BUDGET" --method "$METHOD" \
    --result-file "$RESULTS_FILE.tmp" -q >/dev/null &
CHILD=$!
echo "$CHILD" > "$PIDFILE"
wait "$CHILD"
RC=$?
rm -f "$PIDFILE"

if [ -s "$RESULTS_FILE.tmp" ]; then
    mv -f "$RESULTS_FILE.tmp" "$RESULTS_FILE"
elif [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
    rm -f "$RESULTS_FILE.tmp"
    echo "timeout" > "$RESULTS_FILE"
else
    rm -f "$RESULTS_FILE.tmp"
    echo "run_instance.sh: verifier exited with code $RC without a result" >&2
    echo "error" > "$RESULTS_FILE"
fi
echo "run_instance.sh: $(head -n 1 "$RESULTS_FILE") (exit code $RC)" >&2
exit 0
