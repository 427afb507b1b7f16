"""The PDQ index returns exactly what brute force returns, through every search path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.matching.pdq_index import PDQIndex, hashes_from_hex, hex_to_bytes
from exchange.matching.pdq_index import index as pdq_index

DISTANCES = [0, 1, 15, 16, 31, 32, 48, 64]
PLANTED = [*range(33), 40, 64]

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


def flip_bits(rng: np.random.Generator, value: U8, distance: int) -> U8:
    """A copy of a hash with exactly `distance` distinct bits flipped."""
    bits = np.unpackbits(value)
    bits[rng.choice(256, size=distance, replace=False)] ^= 1
    return np.packbits(bits)


def brute_force(ids: I64, hashes: U8, query: U8, max_distance: int) -> list[tuple[int, int]]:
    dist = np.unpackbits(hashes ^ query[None, :], axis=1).sum(axis=1)
    hit = np.nonzero(dist <= max_distance)[0]
    return sorted(zip(ids[hit].tolist(), dist[hit].tolist(), strict=True), key=lambda m: m[::-1])


@pytest.fixture(params=["tables", "scan"])
def search_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Force every search through the multi-index tables, or through the linear scan."""
    if request.param == "tables":
        monkeypatch.setattr(pdq_index, "BRUTE_FORCE_BELOW", 0)
        monkeypatch.setattr(pdq_index, "CANDIDATE_COST_FACTOR", 0.0)
    else:
        monkeypatch.setattr(pdq_index, "BRUTE_FORCE_BELOW", 1 << 62)
    yield request.param


def planted_set(seed: int, n_random: int, n_queries: int) -> tuple[I64, U8, U8]:
    """Random hashes plus, for each query, neighbours at every distance in PLANTED.

    Each query also gets a second entry at distance 5 and 31 that shares its hash
    with another id, so that duplicates under different ids are covered.
    """
    rng = np.random.default_rng(seed)
    queries = rng.integers(0, 256, size=(n_queries, 32), dtype=np.uint8)
    planted = [flip_bits(rng, q, d) for q in queries for d in PLANTED]
    dupes = [planted[i * len(PLANTED) + d] for i in range(n_queries) for d in (5, 31)]
    rows = np.concatenate(
        [
            rng.integers(0, 256, size=(n_random, 32), dtype=np.uint8),
            np.array(planted, dtype=np.uint8),
            np.array(dupes, dtype=np.uint8),
        ]
    )
    # Sparse, unordered, partly negative ids, as int64 database ids may be.
    ids = rng.choice(np.arange(-(10**6), 10**12, 7919), size=len(rows), replace=False)
    return ids.astype(np.int64), rows, queries


@pytest.fixture(scope="module")
def dataset() -> tuple[I64, U8, U8]:
    return planted_set(seed=7, n_random=40_000, n_queries=6)


@pytest.mark.parametrize("max_distance", DISTANCES)
def test_results_equal_brute_force(
    dataset: tuple[I64, U8, U8], search_path: str, max_distance: int
) -> None:
    """Every entry within max_distance is found with its exact distance; nothing beyond it."""
    ids, hashes, queries = dataset
    index = PDQIndex.build(ids, hashes)
    results = index.query_many(queries, max_distance)
    for query, got in zip(queries, results, strict=True):
        assert got == brute_force(ids, hashes, query, max_distance)
    assert index.query(queries[0].tobytes(), max_distance) == results[0]


def test_planted_neighbours_found_at_every_distance(dataset: tuple[I64, U8, U8]) -> None:
    """At the default threshold 31, planted neighbours at 0..31 are found, 32+ are not."""
    ids, hashes, queries = dataset
    index = PDQIndex.build(ids, hashes)
    assert index.uses_tables(31)
    for got in index.query_many(queries):
        found = {d for _, d in got}
        assert found == set(range(32))
        assert all(d <= 31 for _, d in got)


def test_same_hash_under_different_ids(search_path: str) -> None:
    """One hash under several ids is found under each of them, ordered by distance then id."""
    rng = np.random.default_rng(3)
    value = rng.integers(0, 256, size=32, dtype=np.uint8)
    near = flip_bits(rng, value, 31)
    hashes = np.stack([value, value, value, near, near])
    index = PDQIndex.build(np.array([30, 10, 20, 50, 40]), hashes)
    assert index.query(value) == [(10, 0), (20, 0), (30, 0), (40, 31), (50, 31)]
    assert index.query(value, max_distance=30) == [(10, 0), (20, 0), (30, 0)]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 40),
    distances=st.lists(st.integers(0, 64), min_size=1, max_size=8),
    max_distance=st.integers(0, 64),
    tables=st.booleans(),
)
def test_small_sets_equal_brute_force(
    seed: int, n: int, distances: list[int], max_distance: int, tables: bool
) -> None:
    """Small random sets with neighbours planted at drawn distances, both search paths."""
    rng = np.random.default_rng(seed)
    query = rng.integers(0, 256, size=32, dtype=np.uint8)
    rows = [rng.integers(0, 256, size=32, dtype=np.uint8) for _ in range(n)]
    rows += [flip_bits(rng, query, d) for d in distances]
    hashes = np.array(rows, dtype=np.uint8)
    ids = rng.choice(10**9, size=len(hashes), replace=False).astype(np.int64)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pdq_index, "BRUTE_FORCE_BELOW", 0 if tables else 1 << 62)
        mp.setattr(pdq_index, "CANDIDATE_COST_FACTOR", 0.0)
        index = PDQIndex.build(ids, hashes)
        assert index.uses_tables(max_distance) is tables
        assert index.query(query, max_distance) == brute_force(ids, hashes, query, max_distance)


def test_save_load_round_trip(tmp_path: Path, dataset: tuple[I64, U8, U8]) -> None:
    """A saved index loads (memory-mapped read-only, or in memory) with its metadata and answers as
    before."""
    ids, hashes, queries = dataset
    index = PDQIndex.build(ids, hashes, meta={"cursor": "abc"})
    index.save(tmp_path / "snap")
    for mmap in (True, False):
        loaded = PDQIndex.load(tmp_path / "snap", mmap=mmap)
        assert loaded.meta == {"cursor": "abc"}
        assert len(loaded) == len(ids)
        assert loaded.query_many(queries, 32) == index.query_many(queries, 32)
    mapped = PDQIndex.load(tmp_path / "snap")
    assert isinstance(mapped._hashes, np.memmap)
    assert not mapped._hashes.flags.writeable


def test_add_and_remove_on_a_mapped_snapshot(
    tmp_path: Path, dataset: tuple[I64, U8, U8], search_path: str
) -> None:
    """Updates on a read-only snapshot are searched like base entries, then compacted."""
    ids, hashes, queries = dataset
    PDQIndex.build(ids, hashes).save(tmp_path / "snap")
    index = PDQIndex.load(tmp_path / "snap", mmap=True)
    rng = np.random.default_rng(11)
    live = dict(zip(ids.tolist(), hashes, strict=True))

    def check() -> None:
        live_ids = np.array(list(live), dtype=np.int64)
        live_hashes = np.array(list(live.values()), dtype=np.uint8)
        assert len(index) == len(live)
        for d in (15, 31, 48):
            for query, got in zip(queries, index.query_many(queries, d), strict=True):
                assert got == brute_force(live_ids, live_hashes, query, d)

    # Remove some planted neighbours of the first query (base entries).
    near = [i for i, _ in index.query(queries[0], 31)][::2]
    index.remove(near)
    for i in near:
        del live[i]
    # Add new neighbours, one of them with the same hash as a base entry.
    new_ids = np.array([2, 3, 5, 7], dtype=np.int64)
    new_hashes = np.stack([flip_bits(rng, queries[1], d) for d in (0, 12, 31, 32)])
    new_hashes[3] = live[next(iter(live))]
    index.add(new_ids, new_hashes)
    live.update(zip(new_ids.tolist(), new_hashes, strict=True))
    # Replace a base entry's hash, and remove a delta entry and an unknown id.
    replaced = int(ids[-1])
    replacement = flip_bits(rng, queries[2], 3)
    index.add(np.array([replaced]), replacement[None, :])
    live[replaced] = replacement
    index.remove([3, 123456789])
    del live[3]
    assert 3 not in index and replaced in index and 2 in index
    check()

    index.compact()
    assert index.delta_count == 0
    check()
    index.save(tmp_path / "snap2")
    index = PDQIndex.load(tmp_path / "snap2")
    check()


def test_removed_then_added_again() -> None:
    """An id removed, added again and removed is found only while it is in the index."""
    value = np.zeros(32, dtype=np.uint8)
    index = PDQIndex.build(np.array([1]), value[None, :])
    index.remove([1])
    assert index.query(value) == [] and len(index) == 0
    index.add(np.array([1]), value[None, :])
    assert index.query(value) == [(1, 0)] and len(index) == 1
    index.remove([1])
    assert index.query(value) == [] and len(index) == 0


def test_count_between_counts_live_entries() -> None:
    """count_between counts the live ids in each closed range, whether they are in the
    base, hidden from it, replaced through the delta or only in the delta, before and
    after compaction and on a copy."""
    rng = np.random.default_rng(3)
    ids = np.arange(-500, 500, 3, dtype=np.int64)
    index = PDQIndex.build(ids, rng.integers(0, 256, size=(len(ids), 32), dtype=np.uint8))
    live = set(ids.tolist())
    index.remove(ids[::4])
    live -= set(ids[::4].tolist())
    index.add(ids[1::5], np.zeros((len(ids[1::5]), 32), dtype=np.uint8))  # replaced
    live |= set(ids[1::5].tolist())
    extra = np.arange(1_000, 1_050, dtype=np.int64)
    index.add(extra, np.zeros((len(extra), 32), dtype=np.uint8))
    live |= set(extra.tolist())
    index.remove(extra[:7])
    live -= set(extra[:7].tolist())
    low = rng.integers(-600, 1_100, size=200)
    high = low + rng.integers(0, 400, size=200)
    expected = [sum(lo <= i <= hi for i in live) for lo, hi in zip(low, high, strict=True)]
    assert index.count_between(low, high).tolist() == expected
    assert index.copy().count_between(low, high).tolist() == expected
    index.compact()
    assert index.count_between(low, high).tolist() == expected


def test_empty_index() -> None:
    """An empty index answers no matches, and finds a hash once one is added."""
    index = PDQIndex()
    assert index.query(bytes(32)) == []
    assert index.query_many(np.zeros((0, 32), dtype=np.uint8)) == []
    index.add(np.array([9]), np.zeros((1, 32), dtype=np.uint8))
    assert index.query(bytes(32), 0) == [(9, 0)]


def test_rejects_bad_input() -> None:
    """A distance outside 0..64, a hash of the wrong length, duplicate ids or ids and hashes of
    different counts are a ValueError."""
    index = PDQIndex.build(np.array([1]), np.zeros((1, 32), dtype=np.uint8))
    for bad in (-1, 65, 3.5):
        with pytest.raises(ValueError):
            index.query(bytes(32), bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        index.query(bytes(31))
    with pytest.raises(ValueError):
        PDQIndex.build(np.array([1, 1]), np.zeros((2, 32), dtype=np.uint8))
    with pytest.raises(ValueError):
        PDQIndex.build(np.array([1, 2]), np.zeros((1, 32), dtype=np.uint8))


def test_hex_helpers() -> None:
    """Hex hashes convert to bytes in either case; a wrong length or a non-hex character is a
    ValueError."""
    value = "f" * 8 + "0" * 56
    assert hex_to_bytes(value) == bytes.fromhex(value)
    arr = hashes_from_hex([value, value.upper(), "0" * 64])
    assert arr.shape == (3, 32) and arr.dtype == np.uint8
    assert arr[0, :4].tolist() == [255] * 4 and arr[2].sum() == 0
    for bad in ("f" * 63, "g" * 64, "ff " * 21 + "f"):
        with pytest.raises(ValueError):
            hex_to_bytes(bad)
        with pytest.raises(ValueError):
            hashes_from_hex([bad])


def test_copy_is_updated_without_changing_the_original() -> None:
    """Adds and removes on a copy leave the original's answers as they were (the
    process's index is updated copy-on-write while other threads search it)."""
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 256, size=(50, 32), dtype=np.uint8)
    original = PDQIndex.build(np.arange(50), hashes)
    original.add([100], hashes[:1])
    before = original.query_many(hashes, 31)
    copy = original.copy()
    copy.remove([0, 100])
    copy.add([7, 200], hashes[1:3])
    assert original.query_many(hashes, 31) == before
    assert len(original) == 51 and len(copy) == 50
    assert copy.query(hashes[0]) == []
    assert copy.query(hashes[1]) == [(1, 0), (7, 0)]
