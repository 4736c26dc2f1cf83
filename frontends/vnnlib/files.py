"""Reading a VNN-LIB file's text: plain or gzip (by magic bytes), ``path.gz`` when ``path`` is absent.

The text may not exceed ``limits.spec_bytes`` (after gunzip): a plain file's size is checked before it is
read, and gzip data is decompressed piece by piece and abandoned once past the limit (a small file that
inflates to gigabytes is refused without inflating it). The deadline is checked between pieces (with the
grace of :func:`~frontends.vnnlib.sexpr.reading_deadline`).
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

from frontends.vnnlib.sexpr import limit_message, reading_deadline
from verifier.ir.deadline import Deadline
from verifier.ir.errors import DeadlineExpired, SpecError
from verifier.settings.inputs import LimitSettings

GZIP_MAGIC = b"\x1f\x8b"
_PIECE = 1 << 22  # bytes read or inflated between two looks at the deadline and the limit


def read_spec_text(path: str | os.PathLike, limits: LimitSettings | None = None,
                   deadline: Deadline | None = None) -> tuple[str, str]:
    """(text, the path actually read): plain or gzip (by magic bytes), ``path.gz`` if ``path`` is absent."""
    limits = limits or LimitSettings()
    deadline = reading_deadline(deadline)
    p = Path(path)
    if not p.exists():
        gz = Path(str(p) + ".gz")
        if not gz.exists():
            raise SpecError("no such file (nor a .gz next to it)", str(path))
        p = gz
    where = str(p)
    try:
        with open(p, "rb") as f:
            if f.read(2) == GZIP_MAGIC:
                f.seek(0)
                data = _gunzip(f, limits, deadline, where)
            else:
                size = os.fstat(f.fileno()).st_size
                if limits.spec_bytes and size > limits.spec_bytes:
                    raise SpecError(limit_message(limits, "spec_bytes", f"the spec has {size} bytes", size), where)
                f.seek(0)
                data = _read_all(f, deadline, where)
    except OSError as e:
        raise SpecError(f"cannot read file: {e.strerror or e}", where) from e
    _check_time(deadline, where)
    try:
        return data.decode("utf-8-sig"), where
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(f"not UTF-8 text: byte 0x{data[e.start]:02x} at column {column} (offset {e.start}) is not "
                        "valid UTF-8", where, line) from e


def _check_time(deadline: Deadline | None, where: str) -> None:
    if deadline is not None and deadline.expired():
        raise DeadlineExpired(f"{where}: timed out while reading the spec")


def _read_all(f, deadline: Deadline | None, where: str) -> bytes:
    pieces = []
    while True:
        _check_time(deadline, where)
        piece = f.read(_PIECE)
        if not piece:
            return b"".join(pieces)
        pieces.append(piece)


def _gunzip(f, limits: LimitSettings, deadline: Deadline | None, where: str) -> bytes:
    """The inflated members of the gzip stream in ``f``, at most ``limits.spec_bytes`` of them."""
    cap = limits.spec_bytes
    out: list[bytes] = []
    size = 0
    d = zlib.decompressobj(wbits=31)
    pending = b""  # compressed bytes read but not yet given to d
    try:
        while True:
            _check_time(deadline, where)
            if not pending:
                pending = f.read(_PIECE)
                if not pending:
                    if not d.eof:
                        raise SpecError("corrupt gzip data: the stream ends before its end marker", where)
                    break
            piece = d.decompress(pending, _PIECE)
            pending = d.unconsumed_tail
            size += len(piece)
            if cap and size > cap:
                raise SpecError(limit_message(limits, "spec_bytes", f"the spec inflates to more than {cap} bytes"),
                                where)
            out.append(piece)
            if d.eof:  # a member ends: another may follow, after zero padding (as gzip.decompress reads)
                rest = (d.unused_data + pending).lstrip(b"\0")
                while len(rest) < 2:
                    more = f.read(_PIECE)
                    if not more:
                        break
                    rest = (rest + more).lstrip(b"\0")
                if not rest:
                    break
                if not rest.startswith(GZIP_MAGIC):
                    raise SpecError("corrupt gzip data: bytes after the end of the gzip stream", where)
                d = zlib.decompressobj(wbits=31)
                pending = rest
    except zlib.error as e:
        raise SpecError(f"corrupt gzip data: {e}", where) from e
    return b"".join(out)
