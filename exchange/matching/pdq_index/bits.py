"""Hash layout and the vectorised bit operations of the PDQ index (numpy only)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

HASH_BYTES = 32
N_WORDS = 4  # 4 x uint64 per hash
N_CHUNKS = 16
CHUNK_BITS = 16
N_BUCKETS = 1 << CHUNK_BITS
DEFAULT_MAX_DISTANCE = 31
MAX_DISTANCE = 64

# ... and rows scanned at once per query.
_SCAN_BLOCK = 1 << 16

IntArray = npt.NDArray[np.int64]
U8Array = npt.NDArray[np.uint8]
U64Array = npt.NDArray[np.uint64]
Match = tuple[int, int]


def hex_to_bytes(value: str) -> bytes:
    """Return the 32 bytes of a PDQ hash written as 64 hexadecimal digits."""
    if len(value) != 2 * HASH_BYTES:
        raise ValueError(f"a PDQ hash has {2 * HASH_BYTES} hex digits, got {len(value)}")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError("a PDQ hash is written in hexadecimal digits only") from None
    if len(raw) != HASH_BYTES:
        raise ValueError("a PDQ hash is written in hexadecimal digits only")
    return raw


def hashes_from_hex(values: Sequence[str]) -> U8Array:
    """Return an (n, 32) uint8 array of PDQ hashes given as 64-digit hex strings."""
    if any(len(v) != 2 * HASH_BYTES for v in values):
        raise ValueError(f"a PDQ hash has {2 * HASH_BYTES} hex digits")
    try:
        raw = bytes.fromhex("".join(values))
    except ValueError:
        raise ValueError("a PDQ hash is written in hexadecimal digits only") from None
    if len(raw) != HASH_BYTES * len(values):
        raise ValueError("a PDQ hash is written in hexadecimal digits only")
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(values), HASH_BYTES).copy()


if hasattr(np, "bitwise_count"):

    def _popcount(x: U64Array) -> npt.NDArray[np.uint8]:
        return np.bitwise_count(x)

else:  # numpy < 2: byte-wise table look-up, same result
    _POP8 = np.array([i.bit_count() for i in range(256)], dtype=np.uint8)

    def _popcount(x: U64Array) -> npt.NDArray[np.uint8]:
        b = np.ascontiguousarray(x).view(np.uint8).reshape(*x.shape, 8)
        return _POP8[b].sum(axis=-1, dtype=np.uint8)


def _flips_needed(max_distance: int) -> int:
    """Bits per chunk to probe so that pigeonhole guarantees every match is a candidate.

    If every one of the 16 chunks differs in at least k + 1 bits, the distance is at
    least 16 (k + 1). So distance <= 16 k + 15 implies some chunk within k bits.
    """
    return max(0, math.ceil((max_distance - (CHUNK_BITS - 1)) / N_CHUNKS))


_FLIP_MASKS: dict[int, IntArray] = {}


def _flip_masks(k: int) -> IntArray:
    """All 16-bit masks with at most k bits set (17 for k = 1, 137 for k = 2)."""
    masks = _FLIP_MASKS.get(k)
    if masks is None:
        values = np.arange(N_BUCKETS, dtype=np.uint64)
        masks = values[_popcount(values) <= k].astype(np.int64)
        _FLIP_MASKS[k] = masks
    return masks


def _as_hash_matrix(hashes: U8Array | bytes | Sequence[bytes], name: str = "hashes") -> U8Array:
    if isinstance(hashes, bytes | bytearray | memoryview):
        arr = np.frombuffer(bytes(hashes), dtype=np.uint8)
        if arr.size != HASH_BYTES:
            raise ValueError(f"a PDQ hash is {HASH_BYTES} bytes, got {arr.size}")
        return arr.reshape(1, HASH_BYTES)
    arr = np.asarray(hashes)
    if arr.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {arr.dtype}")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != HASH_BYTES:
        raise ValueError(f"{name} must have shape (n, {HASH_BYTES}), got {arr.shape}")
    return np.ascontiguousarray(arr)


def _words(hashes: U8Array) -> U64Array:
    """View (n, 32) uint8 as (n, 4) uint64; popcount of XOR does not care about byte order."""
    return np.ascontiguousarray(hashes).view(np.uint64).reshape(-1, N_WORDS)


def _chunks(hashes: U8Array) -> npt.NDArray[np.uint16]:
    """View (n, 32) uint8 as (n, 16) uint16 chunk values (native byte order, used consistently)."""
    return np.ascontiguousarray(hashes).view(np.uint16).reshape(-1, N_CHUNKS)


def _distance_sum(xor: U64Array) -> IntArray:
    """Row sums of the popcounts of an (n, 4) XOR; column by column (a short-axis sum is slow)."""
    dist = _popcount(xor[:, 0]).astype(np.int64)
    for w in range(1, N_WORDS):
        dist += _popcount(xor[:, w])
    return dist


def _check_distance(max_distance: int) -> int:
    d = int(max_distance)
    if d != max_distance or not 0 <= d <= MAX_DISTANCE:
        raise ValueError(f"max_distance must be an integer in 0..{MAX_DISTANCE}")
    return d


def _scan(
    words: U64Array, queries: U64Array, max_distance: int
) -> tuple[IntArray, IntArray, IntArray]:
    """Vectorised brute force: every (query, row, distance) with distance <= max_distance."""
    out_q: list[IntArray] = []
    out_r: list[IntArray] = []
    out_d: list[IntArray] = []
    for r0 in range(0, len(words), _SCAN_BLOCK):
        block = words[r0 : r0 + _SCAN_BLOCK]
        for qi, query in enumerate(queries):
            # Column by column: XOR, popcount and add of 1-d arrays (measured fastest).
            dist = _popcount(block[:, 0] ^ query[0]).astype(np.uint16)
            for w in range(1, N_WORDS):
                dist += _popcount(block[:, w] ^ query[w])
            (hit,) = np.nonzero(dist <= max_distance)
            if hit.size:
                out_q.append(np.full(hit.size, qi, dtype=np.int64))
                out_r.append(hit + r0)
                out_d.append(dist[hit].astype(np.int64))
    if not out_q:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(out_q), np.concatenate(out_r), np.concatenate(out_d)


def _validated_entries(
    ids: npt.ArrayLike, hashes: U8Array, *, unique: bool = True
) -> tuple[IntArray, U8Array]:
    id_arr = np.asarray(ids)
    if id_arr.ndim != 1 or not (id_arr.size == 0 or np.issubdtype(id_arr.dtype, np.integer)):
        raise ValueError("ids must be a 1-d array of integers")
    id_arr = id_arr.astype(np.int64)
    hash_arr = _as_hash_matrix(hashes)
    if len(hash_arr) != len(id_arr):
        raise ValueError(f"{len(id_arr)} ids but {len(hash_arr)} hashes")
    if unique and len(np.unique(id_arr)) != len(id_arr):
        raise ValueError("ids must be unique")
    return id_arr, hash_arr
