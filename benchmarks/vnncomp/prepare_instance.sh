#!/usr/bin/env bash
# VNN-COMP interface: prepare one instance (no analysis).
# usage: prepare_instance.sh v1 CATEGORY ONNX_FILE VNNLIB_FILE
#
# Stops what a previous run_instance.sh of this tool may have left running (by the process id
# it recorded, nothing else), and checks that the files exist (plain or .gz). Exit 0 = ready.
set -uo pipefail

if [ "$#" -ne 4 ]; then
    echo "usage: prepare_instance.sh v1 CATEGORY ONNX_FILE VNNLIB_FILE" >&2
    exit 1
fi
VERSION_STRING=$1
CATEGORY=$2
ONNX_FILE=$3
VNNLIB_FILE=$4
if [ "$VERSION_STRING" != "v1" ]; then
    echo "prepare_instance.sh: expected version string v1, got '$VERSION_STRING'" >&2
    exit 1
fi

PIDFILE="${TMPDIR:-/tmp}/nnverify_vnncomp_$(id -u).pid"
if [ -f "$PIDFILE" ]; then
    OLD=$(cat "$PIDFILE" 2>/dev/null || true)
    if [[ "$OLD" =~ ^[0-9]+$ ]] && kill -0 "$OLD" 2>/dev/null; then
        echo "prepare_instance.sh: stopping leftover verifier process $OLD" >&2
        # run_instance.sh records the pid of `timeout`, which leads its own process group
        kill -KILL -- "-$OLD" 2>/dev/null || kill -KILL "$OLD" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
fi

for f in "$ONNX_FILE" "$VNNLIB_FILE"; do
    if [ ! -f "$f" ] && [ ! -f "$f.gz" ] && [ ! -f "${f%.gz}" ]; then
        echo "prepare_instance.sh: $f not found (nor $f.gz)" >&2
        exit 1
    fi
done
echo "prepare_instance.sh: category $CATEGORY ready" >&2
exit 0
