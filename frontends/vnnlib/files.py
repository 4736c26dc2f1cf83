"""Reading a VNN-LIB file's text: plain or gzip (by magic bytes), ``path.gz`` when ``path`` is absent."""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

from verifier.ir.errors import SpecError


def read_spec_text(path: str | os.PathLike) -> tuple[str, str]:
    """(text, the path actually read): plain or gzip (by magic bytes), ``path.gz`` if ``path`` is absent."""
    p = Path(path)
    if not p.exists():
        gz = Path(str(p) + ".gz")
        if not gz.exists():
            raise SpecError("no such file (nor a .gz next to it)", str(path))
        p = gz
    try:
        data = p.read_bytes()
    except OSError as e:
        raise SpecError(f"cannot read file: {e.strerror or e}", str(p)) from e
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise SpecError(f"corrupt gzip data: {e}", str(p)) from e
    try:
        return data.decode("utf-8-sig"), str(p)
    except UnicodeDecodeError as e:
        raise SpecError(f"not UTF-8 text (bad byte at offset {e.start})", str(p)) from e
