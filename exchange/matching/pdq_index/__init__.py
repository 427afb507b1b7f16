"""Exact PDQ near-duplicate search over numpy arrays (no Django import).

`PDQIndex` holds PDQ hashes (256 bits = 32 bytes) keyed by int64 ids (signal ids) and
returns, for a query hash, every entry within Hamming distance `max_distance` (0..64,
default 31, PDQ's match threshold) with its exact distance, sorted by (distance, id).
Nothing is approximate: the structure below finds every match by construction, and
the tests compare every answer with brute force.

    >>> index = PDQIndex.build(ids, hashes_from_hex(values))      # or PDQIndex.load(dir)
    >>> index.query(hex_to_bytes(value))                           # [(id, distance), ...]
    >>> index.query_many(hashes_from_hex(values), max_distance=31) # one list per query
    >>> index.add(new_ids, new_hashes); index.remove(gone_ids)     # delta on top of it
    >>> index.save(new_dir)                                        # compacts, writes .npy

Structure: multi-index hashing, 16 tables of 16-bit chunks
-----------------------------------------------------------
A hash is cut into 16 chunks of 16 bits. If every chunk of a stored hash differed from
the query's chunk in at least k + 1 bits, the distance would be at least 16 (k + 1);
so distance <= 16 k + 15 implies that some chunk is within k bits (pigeonhole). Table
t lists the entries by the value of their chunk t. A search probes, in each of the 16
tables, every value within k bits of the query's chunk (k = 1 for the default 31:
the value and its 16 one-bit flips, 17 x 16 = 272 buckets; k = 0 up to 15, 2 up to 47,
3 up to 63, 4 at 64), and verifies each candidate with the exact popcount of the XOR
of its 4 x uint64 words. Correctness:

1. complete: a match within `max_distance` has some chunk within k bits of the
   query's (pigeonhole with k = `_flips_needed(max_distance)`); `_flip_masks(k)` is
   every 16-bit mask of at most k bits, so that chunk's bucket is probed and the
   entry is a candidate;
2. exact: every returned distance is the popcount over all 256 bits; candidates above
   `max_distance` are dropped; an entry found in several tables is returned once;
3. live: base entries that were removed or replaced are filtered by id, and the delta
   is scanned exhaustively.

A bucket holds about N / 65536 entries (153 at 10M), so k = 1 verifies about 0.4 % of
the set, k = 2 3.3 %, k = 3 17 %, k = 4 61 %. A randomly gathered candidate costs about
8 sequentially scanned rows (measured: at 1M, k = 3 with tables 6.3 ms vs scan 5.6 ms),
so the index scans linearly (vectorised, 4 popcounts per row) when the expected
candidates x 8 >= N, i.e. for max_distance 48..64 at every size, and when N < 12,000,
where the scan beats the fixed cost of the probes. Measured, single query, 2 cores
shared, numpy 2.4 (tables vs scan): N = 5k d <= 31: 0.085 vs 0.041 ms; 10k: 0.072 vs
0.062; 20k: 0.073 vs 0.113; 50k: 0.091 vs 0.244; d <= 47 at 50k: 0.18 vs 0.23; at 1M:
1.37 vs 5.6; d <= 48 at 1M: 6.3 vs 5.6.

Measured with tests/bench/bench_match.py (in process, one thread, planted neighbours
at 10, 20 and 31, recall 1.0 at each): 1M hashes: single query p50 0.33 ms, 5,300
queries/s batched; python-threatexchange's PDQIndex (faiss IndexBinaryMultiHash, the
HMA default) 1.26 ms, 1,100 queries/s; faiss IndexBinaryFlat 1.2 ms, 790 queries/s.
10M: build 23 s, p50 1.9 ms (1.6 ms mapped), 485 queries/s batched; PDQIndex: build
116 s, +3.9 GB resident, p50 4.9 ms, 208 queries/s; faiss flat: p50 17 ms, 61/s.

Clustered data (tests/support/pdq_data.py: scenes of frames a few bits apart, each bit
1 with its own probability in 0.3..0.7), same bench at 10M, same run as uniform (2 cores
at load average ~10, so absolute figures ~10 x the above): recall 1.0 at 10, 20, 31;
p50 1.92 x uniform's (1.94 x mapped), batched queries/s 0.54 x (0.42 x mapped). Scenes
cost next to nothing (a query's scene-mates are true neighbours); the per-bit biases do:
a probed bucket holds about prod_b (p_b^2 + (1 - p_b)^2) x 65536 = 2.3 x N / 65536 of the
entries at these biases, however the bits are cut into chunks (the product does not
depend on the grouping of independent bits), so the index verifies ~2.3 x as many
candidates. Longer chunks for the fullest buckets would be the remedy if real data are
more biased than this model.

Memory layout, per 10M entries (files of `save`, all mapped by `load`)
-------------------------------------------------------------------
==============  ===================  ==========================================  =======
file            dtype, shape         content                                      10M
==============  ===================  ==========================================  =======
ids.npy         int64 (N,)           entry ids, sorted ascending                  80 MB
hashes.npy      uint8 (N, 32)        hashes[i] is the hash of ids[i]             320 MB
offsets.npy     int64 (16, 65537)    table t's entries with chunk t == v are at    8 MB
                                     positions offsets[t, v] .. offsets[t, v+1]
perm_lo.npy     uint16 (16, N)       row at each table position, low 16 bits     320 MB
perm_hi.npy     uint8 (16, N)        ... high bits (uint16 above 2**24 entries)  160 MB
meta.json                            format, version, count, byte order, meta
==============  ===================  ==========================================  =======

Total 888 MB = 2.8 x the raw 320 MB (2.5 x without the ids, which any id-keyed index
needs). This misses the 2 x target on purpose. Any layout that lists the rows of
each bucket of 16 tables must spend at least about 16 bits per entry per table (a
bucket holds N / 65536 of the N rows, so even gap-coded each listed row costs about
log2 65536 bits): >= 320 MB of tables + 320 MB of hashes + 80 MB of ids = 720 MB
(2.25 x) before any speed is won. Reaching 2 x means at most ~9 tables, i.e. chunks of
28+ bits that need 3 flips for distance 31: thousands of probes per table into sorted
32-bit keys, several times slower. Correctness first, queries/s second, memory third:
we keep 16 tables and shrink what they cost instead:

- bucket offsets (65537 per table, 0.5 MB) instead of sorted chunk values (2 B/entry);
- row numbers in 24 bits (uint16 + uint8, 3 B/entry/table) instead of uint32 (4 B):
  saves 160 MB at 10M (uint32 would be 1,048 MB, 3.3 x) for one more small gather
  per query;
- int64 offsets (8 MB) rather than uint32 to avoid casts: negligible.

`load(mmap=True)` maps every file read-only: all web processes on a host share one
copy through the page cache, and a process's private memory is its delta and hidden
set only (measured: RSS anon growth after loading 1M and 1,000 queries ~0).

Updates
-------
The base snapshot is immutable. `add` puts entries into an in-memory delta (scanned
exhaustively: about 9 ns per entry per query, so keep it below ~100k entries by taking
new snapshots); an id already in the base is hidden there and superseded. `remove`
hides base ids and deletes delta entries. `compact` folds both into a new in-memory
base; `save` compacts and writes a snapshot, meta.json last. Several ids may carry the
same hash; one id has one hash (adding an id again replaces its hash).
"""

from __future__ import annotations

from .bits import DEFAULT_MAX_DISTANCE, HASH_BYTES, MAX_DISTANCE, hashes_from_hex, hex_to_bytes
from .index import PDQIndex

__all__ = [
    "DEFAULT_MAX_DISTANCE",
    "HASH_BYTES",
    "MAX_DISTANCE",
    "PDQIndex",
    "hashes_from_hex",
    "hex_to_bytes",
]
