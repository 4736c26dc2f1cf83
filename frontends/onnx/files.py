"""Reading model files: plain or gzipped ONNX, ``path.gz`` when ``path`` itself is absent (no torch here)."""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

from verifier.ir.errors import ModelError


def read_model_bytes(path: str | os.PathLike) -> bytes:
    p = Path(path)
    if not p.exists() and Path(str(p) + ".gz").exists():
        p = Path(str(p) + ".gz")
    if not p.exists():
        raise ModelError("file not found", str(path))
    data = p.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:  # a truncated file raises EOFError
            raise ModelError(f"corrupt gzip file: {e}", str(p)) from None
    return data
