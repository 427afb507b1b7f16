"""The index: base snapshot, delta, persistence and search (see the package docstring)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .bits import (
    DEFAULT_MAX_DISTANCE,
    HASH_BYTES,
    N_BUCKETS,
    N_CHUNKS,
    N_WORDS,
    IntArray,
    Match,
    U8Array,
    U64Array,
    _as_hash_matrix,
    _check_distance,
    _chunks,
    _distance_sum,
    _flip_masks,
    _flips_needed,
    _scan,
    _validated_entries,
    _words,
)

FORMAT_VERSION = 1

# Measured crossovers (see the package docstring): below this many base entries a
# vectorised scan beats the fixed cost of 16 x probes table look-ups ...
BRUTE_FORCE_BELOW = 12_000
# ... and multi-index hashing is used only while its expected candidate count times
# this factor (the cost of one random gather + verify relative to one sequential
# scanned row) stays below the number of base entries.
CANDIDATE_COST_FACTOR = 8.0
# Work per vectorised step: candidates verified at once (measured at 1M hashes, 1,000
# queries: 2,600 q/s at 2**15, 2,000 at 2**17, 710 at 2**21: small steps stay in cache) ...
_PROBE_BLOCK = 1 << 15


class PDQIndex:
    """Exact Hamming-distance index of PDQ hashes keyed by int64 ids; see the package docstring.

    A base snapshot (immutable, possibly memory-mapped) plus an in-memory delta of
    added entries and a set of base ids hidden by `remove` or replaced by `add`.
    Not safe for concurrent mutation; concurrent queries are fine. To update an index
    that other threads search, update a `copy` and publish it (copy-on-write).
    """

    def __init__(self) -> None:
        self._ids: IntArray = np.empty(0, dtype=np.int64)  # sorted ascending
        self._hashes: U8Array = np.empty((0, HASH_BYTES), dtype=np.uint8)
        self._offsets: IntArray = np.zeros((N_CHUNKS, N_BUCKETS + 1), dtype=np.int64)
        self._perm_lo: npt.NDArray[np.uint16] = np.empty((N_CHUNKS, 0), dtype=np.uint16)
        self._perm_hi: npt.NDArray[np.unsignedinteger[Any]] = np.empty(
            (N_CHUNKS, 0), dtype=np.uint8
        )
        self._hidden: set[int] = set()  # base ids removed or superseded by the delta
        self._hidden_sorted: IntArray | None = None
        self._hidden_in_base = 0
        self._delta_pos: dict[int, int] = {}
        self._delta_ids: IntArray = np.empty(0, dtype=np.int64)
        self._delta_hashes: U8Array = np.empty((0, HASH_BYTES), dtype=np.uint8)
        self._delta_n = 0
        self._delta_sorted: IntArray | None = None  # cache of `count_between`
        self.meta: dict[str, Any] = {}

    # -- construction -------------------------------------------------------------

    @classmethod
    def build(
        cls, ids: npt.ArrayLike, hashes: U8Array, *, meta: dict[str, Any] | None = None
    ) -> PDQIndex:
        """Build a base snapshot from unique int64 ids and their (n, 32) uint8 hashes."""
        index = cls()
        index._set_base(*_validated_entries(ids, hashes))
        index.meta = dict(meta or {})
        return index

    def _set_base(self, ids: IntArray, hashes: U8Array) -> None:
        order = np.argsort(ids, kind="stable")
        ids = np.ascontiguousarray(ids[order])
        hashes = np.ascontiguousarray(hashes[order])
        if ids.size > 1 and bool(np.any(ids[1:] == ids[:-1])):
            raise ValueError("ids must be unique")
        n = len(ids)
        if n >= 1 << 32:
            raise ValueError("at most 2**32 - 1 entries per base snapshot")
        hi_dtype = np.uint8 if n <= 1 << 24 else np.uint16
        chunks = _chunks(hashes)
        offsets = np.empty((N_CHUNKS, N_BUCKETS + 1), dtype=np.int64)
        perm_lo = np.empty((N_CHUNKS, n), dtype=np.uint16)
        perm_hi = np.empty((N_CHUNKS, n), dtype=hi_dtype)
        for t in range(N_CHUNKS):
            col = np.ascontiguousarray(chunks[:, t])
            perm = np.argsort(col, kind="stable")  # radix sort for uint16
            offsets[t, 0] = 0
            np.cumsum(np.bincount(col, minlength=N_BUCKETS), out=offsets[t, 1:])
            perm_lo[t] = perm.astype(np.uint16)  # keeps the low 16 bits
            perm_hi[t] = (perm >> 16).astype(hi_dtype)
        self._ids, self._hashes = ids, hashes
        self._offsets, self._perm_lo, self._perm_hi = offsets, perm_lo, perm_hi
        self._hidden = set()
        self._hidden_sorted = None
        self._hidden_in_base = 0
        self._delta_pos = {}
        self._delta_ids = np.empty(0, dtype=np.int64)
        self._delta_hashes = np.empty((0, HASH_BYTES), dtype=np.uint8)
        self._delta_n = 0
        self._delta_sorted = None

    # -- persistence --------------------------------------------------------------

    _FILES = ("ids", "hashes", "offsets", "perm_lo", "perm_hi")

    def base_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The arrays of the base snapshot by name, after folding in the delta (`compact`).

        What `from_base_arrays` takes back: a file format of its own (the match index's
        snapshot files) stores these instead of the .npy files of `save`.
        """
        self.compact()
        return {
            "ids": self._ids,
            "hashes": self._hashes,
            "offsets": self._offsets,
            "perm_lo": self._perm_lo,
            "perm_hi": self._perm_hi,
        }

    @classmethod
    def from_base_arrays(
        cls, arrays: dict[str, npt.NDArray[Any]], *, meta: dict[str, Any] | None = None
    ) -> PDQIndex:
        """An index over arrays of `base_arrays` (kept as they are: maps stay maps).

        Checks their shapes and dtypes (ValueError), not their content: a format that
        stores them must verify that itself (a checksum).
        """
        if set(arrays) != set(cls._FILES):
            raise ValueError(f"expected the arrays {', '.join(cls._FILES)}")
        n = len(arrays["ids"])
        expected = {
            "ids": ((n,), np.int64),
            "hashes": ((n, HASH_BYTES), np.uint8),
            "offsets": ((N_CHUNKS, N_BUCKETS + 1), np.int64),
            "perm_lo": ((N_CHUNKS, n), np.uint16),
        }
        for name, (shape, dtype) in expected.items():
            if arrays[name].shape != shape or arrays[name].dtype != dtype:
                raise ValueError(f"{name} has an unexpected shape or dtype")
        hi_dtype = np.uint8 if n <= 1 << 24 else np.uint16
        if arrays["perm_hi"].shape != (N_CHUNKS, n) or arrays["perm_hi"].dtype != hi_dtype:
            raise ValueError("perm_hi has an unexpected shape or dtype")
        index = cls()
        index._ids, index._hashes = arrays["ids"], arrays["hashes"]
        index._offsets = arrays["offsets"]
        index._perm_lo, index._perm_hi = arrays["perm_lo"], arrays["perm_hi"]
        index.meta = dict(meta or {})
        return index

    def save(self, directory: str | Path, *, meta: dict[str, Any] | None = None) -> None:
        """Write the index as .npy files plus meta.json (written last, as the commit mark).

        Pending adds and removes are folded into the base first (`compact`). Write to a
        fresh directory and switch readers over atomically (rename or symlink swap):
        files of a directory that a process has mapped must not be overwritten.
        """
        if meta is not None:
            self.meta = dict(meta)
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        arrays = self.base_arrays()
        for name, arr in arrays.items():
            np.save(path / f"{name}.npy", np.ascontiguousarray(arr))
        info = {
            "format": "cordiale-pdq-mih",
            "version": FORMAT_VERSION,
            "count": len(self._ids),
            "byteorder": sys.byteorder,  # chunk values are native-endian uint16
        }
        (path / "meta.json").write_text(json.dumps({**info, "meta": self.meta}, indent=1))

    @classmethod
    def load(cls, directory: str | Path, mmap: bool = True) -> PDQIndex:
        """Open a saved index; with mmap the arrays are read-only maps shared via the page cache."""
        path = Path(directory)
        info = json.loads((path / "meta.json").read_text())
        if info.get("format") != "cordiale-pdq-mih" or info.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a PDQ index of format version {FORMAT_VERSION}: {path}")
        if info.get("byteorder") != sys.byteorder:
            raise ValueError(f"index written on a {info.get('byteorder')}-endian machine: {path}")
        arrays = {
            name: np.load(path / f"{name}.npy", mmap_mode="r" if mmap else None)
            for name in cls._FILES
        }
        if len(arrays["ids"]) != int(info["count"]):
            raise ValueError(f"ids.npy does not hold {info['count']} entries in {path}")
        try:
            return cls.from_base_arrays(arrays, meta=info.get("meta", {}))
        except ValueError as exc:
            raise ValueError(f"{exc} in {path}") from None

    # -- incremental updates ------------------------------------------------------

    def add(self, ids: npt.ArrayLike, hashes: U8Array) -> None:
        """Add entries to the delta; an id already present is replaced (last one wins)."""
        id_arr, hash_arr = _validated_entries(ids, hashes, unique=False)
        self._delta_sorted = None
        in_base = self._base_contains(id_arr)
        self._ensure_delta_capacity(self._delta_n + len(id_arr))
        for i, (entry_id, present) in enumerate(
            zip(id_arr.tolist(), in_base.tolist(), strict=True)
        ):
            if present:
                self._hide(entry_id)
            pos = self._delta_pos.get(entry_id)
            if pos is None:
                pos = self._delta_n
                self._delta_n += 1
                self._delta_pos[entry_id] = pos
                self._delta_ids[pos] = entry_id
            self._delta_hashes[pos] = hash_arr[i]

    def remove(self, ids: npt.ArrayLike) -> None:
        """Remove entries by id from the base (hidden) and the delta; unknown ids are ignored."""
        id_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        self._delta_sorted = None
        in_base = self._base_contains(id_arr)
        for entry_id, present in zip(id_arr.tolist(), in_base.tolist(), strict=True):
            if present:
                self._hide(entry_id)
            pos = self._delta_pos.pop(entry_id, None)
            if pos is not None:
                last = self._delta_n - 1
                if pos != last:  # move the last entry into the hole
                    moved = int(self._delta_ids[last])
                    self._delta_ids[pos] = moved
                    self._delta_hashes[pos] = self._delta_hashes[last]
                    self._delta_pos[moved] = pos
                self._delta_n = last

    def copy(self) -> PDQIndex:
        """An independent copy to update while searches go on in this one.

        The base arrays are shared (never written in place: often read-only maps); the
        delta and the hidden set are copied, so this costs O(delta + hidden), not O(N).
        """
        other = PDQIndex.__new__(PDQIndex)
        other.__dict__.update(self.__dict__)
        other._hidden = set(self._hidden)
        other._delta_pos = dict(self._delta_pos)
        other._delta_ids = self._delta_ids[: self._delta_n].copy()
        other._delta_hashes = self._delta_hashes[: self._delta_n].copy()
        other._delta_sorted = None
        other.meta = dict(self.meta)
        return other

    def compact(self) -> None:
        """Fold the delta and the removals into a new in-memory base snapshot."""
        if not self._hidden and self._delta_n == 0:
            return
        keep = ~np.isin(self._ids, self._hidden_array())
        ids = np.concatenate([self._ids[keep], self._delta_ids[: self._delta_n]])
        hashes = np.concatenate([self._hashes[keep], self._delta_hashes[: self._delta_n]])
        self._set_base(ids, hashes)

    def _hide(self, entry_id: int) -> None:
        if entry_id not in self._hidden:
            self._hidden.add(entry_id)
            self._hidden_in_base += 1
            self._hidden_sorted = None

    def _hidden_array(self) -> IntArray:
        if self._hidden_sorted is None:
            self._hidden_sorted = np.sort(np.fromiter(self._hidden, dtype=np.int64))
        return self._hidden_sorted

    def _base_contains(self, ids: IntArray) -> npt.NDArray[np.bool_]:
        if len(self._ids) == 0:
            return np.zeros(len(ids), dtype=bool)
        pos = np.searchsorted(self._ids, ids)
        pos = np.minimum(pos, len(self._ids) - 1)
        return np.asarray(self._ids[pos] == ids)

    def _ensure_delta_capacity(self, needed: int) -> None:
        cap = len(self._delta_ids)
        if needed <= cap:
            return
        new_cap = max(needed, 2 * cap, 1024)
        ids = np.empty(new_cap, dtype=np.int64)
        hashes = np.empty((new_cap, HASH_BYTES), dtype=np.uint8)
        ids[: self._delta_n] = self._delta_ids[: self._delta_n]
        hashes[: self._delta_n] = self._delta_hashes[: self._delta_n]
        self._delta_ids, self._delta_hashes = ids, hashes

    # -- inspection ---------------------------------------------------------------

    def __len__(self) -> int:
        """Number of live entries (base minus hidden plus delta)."""
        return len(self._ids) - self._hidden_in_base + self._delta_n

    def __contains__(self, entry_id: object) -> bool:
        if not isinstance(entry_id, int | np.integer):
            return False
        key = int(entry_id)
        if key in self._delta_pos:
            return True
        return key not in self._hidden and bool(self._base_contains(np.array([key]))[0])

    @property
    def base_count(self) -> int:
        return len(self._ids)

    @property
    def delta_count(self) -> int:
        return self._delta_n

    def nbytes(self) -> int:
        """Bytes of all index arrays (base, tables and delta)."""
        base = (self._ids, self._hashes, self._offsets, self._perm_lo, self._perm_hi)
        delta = self._delta_ids.nbytes + self._delta_hashes.nbytes
        return sum(int(a.nbytes) for a in base) + delta

    # -- search -------------------------------------------------------------------

    def query(
        self, hash_bytes: bytes | U8Array, max_distance: int = DEFAULT_MAX_DISTANCE
    ) -> list[Match]:
        """Every live (id, distance) within max_distance of one hash, by (distance, id)."""
        return self.query_many(_as_hash_matrix(hash_bytes, "hash"), max_distance)[0]

    def query_many(
        self,
        hashes: U8Array | Sequence[bytes],
        max_distance: int = DEFAULT_MAX_DISTANCE,
    ) -> list[list[Match]]:
        """`query` for each row of an (q, 32) uint8 array, in one vectorised pass."""
        q = len(hashes)
        qi, ids, dist = self.search_arrays(hashes, max_distance)
        bounds = np.searchsorted(qi, np.arange(q + 1)).tolist()
        pairs = list(zip(ids.tolist(), dist.tolist(), strict=True))
        return [pairs[bounds[i] : bounds[i + 1]] for i in range(q)]

    def search_arrays(
        self,
        hashes: U8Array | Sequence[bytes],
        max_distance: int = DEFAULT_MAX_DISTANCE,
    ) -> tuple[IntArray, IntArray, IntArray]:
        """`query_many` as three arrays (query row, id, distance), sorted by (query row,
        distance, id): for callers that aggregate the matches with numpy."""
        d = _check_distance(max_distance)
        if not isinstance(hashes, np.ndarray):
            hashes = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(-1, HASH_BYTES)
        queries = _as_hash_matrix(hashes)
        if len(queries) == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        qi, rows, dist = self._search_base(queries, d)
        ids = np.asarray(self._ids[rows]) if rows.size else rows
        if self._hidden and ids.size:
            keep = ~np.isin(ids, self._hidden_array())
            qi, ids, dist = qi[keep], ids[keep], dist[keep]
        if self._delta_n:
            dq, drow, ddist = _scan(_words(self._delta_hashes[: self._delta_n]), _words(queries), d)
            qi = np.concatenate([qi, dq])
            ids = np.concatenate([ids, self._delta_ids[drow]])
            dist = np.concatenate([dist, ddist])
        order = np.lexsort((ids, dist, qi))
        return qi[order], ids[order], dist[order]

    def count_between(self, low: IntArray, high: IntArray) -> IntArray:
        """Per pair of bounds, the number of live entries with low <= id <= high."""
        low = np.asarray(low, dtype=np.int64)
        high = np.asarray(high, dtype=np.int64)
        counts = np.searchsorted(self._ids, high, side="right") - np.searchsorted(
            self._ids, low, side="left"
        )
        if self._hidden:
            hidden = self._hidden_array()
            counts -= np.searchsorted(hidden, high, side="right") - np.searchsorted(
                hidden, low, side="left"
            )
        if self._delta_n:
            if self._delta_sorted is None:
                self._delta_sorted = np.sort(self._delta_ids[: self._delta_n])
            delta = self._delta_sorted
            counts += np.searchsorted(delta, high, side="right") - np.searchsorted(
                delta, low, side="left"
            )
        return counts.astype(np.int64)

    def uses_tables(self, max_distance: int) -> bool:
        """Whether a search at this distance probes the tables (else it scans the base)."""
        n = len(self._ids)
        if n < BRUTE_FORCE_BELOW:
            return False
        return self._table_cost(max_distance) < n

    def _table_cost(self, max_distance: int) -> float:
        probes = N_CHUNKS * len(_flip_masks(_flips_needed(max_distance)))
        expected_candidates = probes * len(self._ids) / N_BUCKETS
        return expected_candidates * CANDIDATE_COST_FACTOR

    def search_cost(self, max_distance: int) -> float:
        """Expected work of searching one hash, in rows scanned (the unit of the
        crossovers above): the base rows for a scan, the candidates times
        CANDIDATE_COST_FACTOR through the tables, plus the delta, always scanned."""
        d = _check_distance(max_distance)
        base = self._table_cost(d) if self.uses_tables(d) else float(len(self._ids))
        return base + self._delta_n

    def _search_base(
        self, queries: U8Array, max_distance: int
    ) -> tuple[IntArray, IntArray, IntArray]:
        """(query index, base row, distance) of every base row within max_distance."""
        words = _words(self._hashes) if len(self._ids) else np.empty((0, N_WORDS), np.uint64)
        if not self.uses_tables(max_distance):
            return _scan(words, _words(queries), max_distance)
        masks = _flip_masks(_flips_needed(max_distance))
        n = len(self._ids)
        per_query = N_CHUNKS * len(masks) * n / N_BUCKETS
        batch = max(1, int(_PROBE_BLOCK // max(per_query, 1.0)))
        parts = [
            self._probe(queries[s : s + batch], words, masks, max_distance, s)
            for s in range(0, len(queries), batch)
        ]
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )

    def _probe(
        self,
        queries: U8Array,
        words: U64Array,
        masks: IntArray,
        max_distance: int,
        first: int,
    ) -> tuple[IntArray, IntArray, IntArray]:
        n = len(self._ids)
        q, m = len(queries), len(masks)
        # Probe keys: each chunk value of each query XOR each mask, per table.
        keys = _chunks(queries).astype(np.int64)[:, :, None] ^ masks[None, None, :]
        table = np.arange(N_CHUNKS, dtype=np.int64)[None, :, None]
        slot = (table * (N_BUCKETS + 1) + keys).reshape(-1)
        offsets = self._offsets.reshape(-1)
        starts = np.take(offsets, slot)
        lengths = np.take(offsets, slot + 1) - starts
        # Positions in the flattened (16, n) permutation arrays, all ranges concatenated.
        starts += np.broadcast_to(table * n, (q, N_CHUNKS, m)).reshape(-1)
        nonempty = lengths > 0
        starts, lengths = starts[nonempty], lengths[nonempty]
        owner = np.repeat(np.arange(q, dtype=np.int64), N_CHUNKS * m)[nonempty]
        total = int(lengths.sum())
        if total == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        pos = np.arange(total, dtype=np.int64) + shift
        qi = np.repeat(owner, lengths)
        # np.take is several times faster than fancy indexing for these gathers.
        rows = np.take(self._perm_lo.reshape(-1), pos).astype(np.int64)
        rows |= np.take(self._perm_hi.reshape(-1), pos).astype(np.int64) << 16
        # Verify every candidate with the exact distance over the 4 words.
        cand = np.take(words, rows, axis=0)
        cand ^= np.take(_words(queries), qi, axis=0)
        dist = _distance_sum(cand)
        hit = dist <= max_distance
        qi, rows, dist = qi[hit], rows[hit], dist[hit]
        # A true neighbour is a candidate in every table where it is within the flips.
        _, first_seen = np.unique(qi * n + rows, return_index=True)
        return qi[first_seen] + first, rows[first_seen], dist[first_seen]
