"""Snapshot files of the PDQ match index: one self-checking file, replaced atomically.

A snapshot lets a web process start from a file instead of reading every PDQ value
from PostgreSQL, and lets the processes of a host share one copy of the index through
the page cache (the arrays are mapped read-only). A snapshot is only ever a cache of
PostgreSQL: one that is not exactly what was written is refused, and the caller
rebuilds from the database. This module knows nothing of Django: the caller supplies
the feed position and the name of the database.

Format
------
::

    bytes 0 .. 4095   header: b"CORDIALE-MATCH-INDEX\\n", then one line of JSON (UTF-8),
                      padded with spaces to 4096 bytes
    bytes 4096 ..     payload: the index's base arrays (``PDQIndex.base_arrays``), raw,
                      each starting at a multiple of 64 bytes from the payload's start

The header, e.g.::

    {"version": 2, "cursor": 123456, "database": "postgresql:cordiale",
     "entries": 1000000, "pdq": 999000, "vpdq_frames": 1000, "byteorder": "little",
     "payload_bytes": 100663808, "sha256": "<64 hex digits of the payload>",
     "arrays": {"ids": {"dtype": "<i8", "shape": [1000000], "offset": 0}, ...},
     "written_at": "2025-06-10T09:00:00+00:00", "header_sha256": "<64 hex digits>"}

``cursor`` is the change feed position (``exchange_feedentry.seq``) the index reflects:
a reader applies the feed rows after it. ``header_sha256`` is the SHA-256 of the header
JSON without that key (keys sorted, no spaces), so a damaged cursor or layout is caught
like a damaged payload. ``version`` changes whenever the layout does; a reader refuses
any other.

Reading (``read``) refuses, with ``SnapshotRefused`` and its ``reason``: a file that
does not start with the magic line (``foreign``), a header that does not parse or does
not match its checksum (``corrupt``), another version (``version``), another byte order
or database (``foreign``), a file shorter or longer than the header says
(``truncated``), a payload whose SHA-256 differs (``checksum``), arrays of the wrong
shape (``corrupt``). Hashing the payload reads it once: 1.4 GB/s on one core, so about
0.07 s at 1M hashes (96 MB), 0.6 s at 10M.

Writing (``write``) goes to a fresh temporary file in the same directory, which is
flushed to disk (fsync) and then renamed over the snapshot (``os.replace``, atomic),
and the directory is synced. Readers therefore see the old file or the new one, never
a mix; a process that mapped the old file keeps reading it (the inode lives on until
unmapped); two processes writing at once each replace a complete file, and the last
rename wins. A crash leaves at worst a ``.tmp`` file, removed by a later writer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from exchange.matching.pdq_index import PDQIndex

MAGIC = b"CORDIALE-MATCH-INDEX\n"
VERSION = 2  # 2: vpdq entries keep good and poor frames apart (exchange/matching/video.py)
HEADER_BYTES = 4096
ALIGN = 64
TMP_PREFIX = ".snapshot-"
TMP_SUFFIX = ".tmp"
_WRITE_CHUNK = 16 << 20
LEFTOVER_SECONDS = 3600.0


class SnapshotRefused(Exception):
    """A snapshot file that must not be used; ``reason`` names why, for logs and metrics."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Snapshot:
    """A verified snapshot: the index (mapped read-only) and the header it came with."""

    index: PDQIndex
    header: dict[str, Any]

    @property
    def cursor(self) -> int:
        return int(self.header["cursor"])

    @property
    def checksum(self) -> str:
        return str(self.header["sha256"])


def _header_digest(header: dict[str, Any]) -> str:
    body = {k: v for k, v in header.items() if k != "header_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _layout(arrays: dict[str, npt.NDArray[Any]]) -> tuple[dict[str, dict[str, Any]], int]:
    layout: dict[str, dict[str, Any]] = {}
    offset = 0
    for name, array in arrays.items():
        offset = _aligned(offset)
        layout[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": offset}
        offset += array.nbytes
    return layout, offset


def write(path: Path, index: PDQIndex, *, cursor: int, database: str) -> dict[str, Any]:
    """Write ``index`` (compacted first) as the snapshot at ``path``; returns its header.

    Raises OSError when the directory cannot be written; nothing is left behind then.
    """
    arrays = {name: np.ascontiguousarray(a) for name, a in index.base_arrays().items()}
    layout, payload_bytes = _layout(arrays)
    ids = arrays["ids"]
    header: dict[str, Any] = {
        "version": VERSION,
        "cursor": int(cursor),
        "database": database,
        "entries": len(ids),
        "pdq": int(np.count_nonzero(ids >= 0)),
        "vpdq_frames": int(np.count_nonzero(ids < 0)),
        "byteorder": sys.byteorder,  # the tables hold native-endian uint16 chunks
        "payload_bytes": payload_bytes,
        "arrays": layout,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; the host's processes read it
        with os.fdopen(fd, "wb") as f:
            f.write(b"\0" * HEADER_BYTES)  # the header is written last, once the digest is known
            digest = hashlib.sha256()
            position = 0
            for name, array in arrays.items():
                padding = b"\0" * (layout[name]["offset"] - position)
                data = array.reshape(-1).view(np.uint8).data
                for chunk in (padding, *_chunks(data)):
                    f.write(chunk)
                    digest.update(chunk)
                position = layout[name]["offset"] + array.nbytes
            header["sha256"] = digest.hexdigest()
            header["header_sha256"] = _header_digest(header)
            f.seek(0)
            f.write(_encode_header(header))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _sync_directory(path.parent)
    return header


def _chunks(data: memoryview) -> list[memoryview]:
    return [data[i : i + _WRITE_CHUNK] for i in range(0, len(data), _WRITE_CHUNK)]


def _encode_header(header: dict[str, Any]) -> bytes:
    encoded = MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n"
    if len(encoded) > HEADER_BYTES:
        raise ValueError("snapshot header does not fit in its block")
    return encoded.ljust(HEADER_BYTES, b" ")


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (a crash after it keeps the new file)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_header(path: Path) -> dict[str, Any]:
    """The header of the snapshot at ``path``, checked against its own digest (not the
    payload: that is ``read``'s job). FileNotFoundError when there is none."""
    with open(path, "rb") as f:
        return _parse_header(f.read(HEADER_BYTES))


def _parse_header(block: bytes) -> dict[str, Any]:
    if not block.startswith(MAGIC):
        raise SnapshotRefused("foreign", "not a Cordiale match index snapshot")
    if len(block) < HEADER_BYTES:
        raise SnapshotRefused("truncated", f"header of {len(block)} bytes")
    try:
        header = json.loads(block[len(MAGIC) :].decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise SnapshotRefused("corrupt", f"header does not parse ({exc})") from None
    if not isinstance(header, dict) or header.get("header_sha256") != _header_digest(header):
        raise SnapshotRefused("corrupt", "header does not match its checksum")
    if header.get("version") != VERSION:
        raise SnapshotRefused(
            "version", f"format version {header.get('version')!r}, this server reads {VERSION}"
        )
    if header.get("byteorder") != sys.byteorder:
        raise SnapshotRefused("foreign", f"written on a {header.get('byteorder')}-endian machine")
    return header


def read(path: Path, *, database: str) -> Snapshot:
    """The verified snapshot at ``path``, its arrays mapped read-only.

    FileNotFoundError when there is none; SnapshotRefused when it is not exactly what a
    writer wrote for ``database``.
    """
    with open(path, "rb") as f:
        header = _parse_header(f.read(HEADER_BYTES))
        if header.get("database") != database:
            raise SnapshotRefused("foreign", f"written for {header.get('database')!r}")
        size = os.fstat(f.fileno()).st_size
        expected = HEADER_BYTES + int(header["payload_bytes"])
        if size != expected:
            raise SnapshotRefused("truncated", f"{size} bytes where the header says {expected}")
        # The map outlives the file object: the arrays below keep it (and the inode) alive.
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mapped)
    try:
        actual = hashlib.sha256(view[HEADER_BYTES:]).hexdigest()
    finally:
        view.release()
    if actual != header["sha256"]:
        raise SnapshotRefused("checksum", "the payload does not match its SHA-256")
    arrays: dict[str, npt.NDArray[Any]] = {}
    try:
        for name, spec in header["arrays"].items():
            dtype = np.dtype(spec["dtype"])
            shape = tuple(int(n) for n in spec["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            offset = HEADER_BYTES + int(spec["offset"])
            array = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset)
            arrays[name] = array.reshape(shape)
        index = PDQIndex.from_base_arrays(arrays, meta={"cursor": int(header["cursor"])})
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotRefused("corrupt", f"arrays do not fit the header ({exc})") from None
    return Snapshot(index=index, header=header)


def remove_leftovers(directory: Path, *, older_than: float = LEFTOVER_SECONDS) -> None:
    """Delete temporary files that writers left behind when they died, once they are
    older than any write takes (a live writer's file must stay: it renames it)."""
    cutoff = time.time() - older_than
    for leftover in directory.glob(f"{TMP_PREFIX}*{TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
