"""A heavy match search does not hold up the ordinary ones of the same process.

Threaded web workers share one match index per process. A member allowed to send a
search the index cannot prune (max_distance 64 scans every entry) must not make every
other member's single-hash match wait behind it: searches run side by side, and only
a catch-up with the feed, which is short, is ever waited for.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from django.db import connection
from django.test import override_settings

from exchange.matching import service
from exchange.matching.service import MatchIndex, match_index_reset, match_search
from tests.exchange.match_support import write_random_snapshot

pytestmark = pytest.mark.django_db(transaction=True)

N = 300_000  # entries: every d=64 query scans them all
HEAVY_QUERIES = 1_000


@pytest.fixture
def big_index(tmp_path: Path) -> Iterator[np.ndarray]:
    """N random hashes in the snapshot the process opens; yields the hashes."""
    root = tmp_path / "match-index"
    hashes = write_random_snapshot(root, N)
    match_index_reset()
    with override_settings(CORDIALE_MATCH_INDEX_DIR=root):
        yield hashes
    match_index_reset()


def _timed_search(hashes: np.ndarray, max_distance: int) -> float:
    started = time.perf_counter()
    match_search(hashes, max_distance)
    return time.perf_counter() - started


def test_a_normal_match_keeps_its_latency_while_a_heavy_one_runs(big_index: np.ndarray) -> None:
    """While a thread searches 1,000 hashes at distance 64 over 300k entries (seconds of
    scanning), single-hash searches at 31 from another thread still answer within
    their usual latency (under 100 ms on a shared 2-core machine, and well under the
    heavy search's duration), and find their planted neighbour."""
    rng = np.random.default_rng(7)
    normal = big_index[rng.integers(0, N, size=20)]
    heavy = rng.integers(0, 256, size=(HEAVY_QUERIES, 32), dtype=np.uint8)
    assert [m[0][1] for m in match_search(normal[:1], 31)] == [0]  # opens the index
    alone = [_timed_search(normal[i : i + 1], 31) for i in range(len(normal))]

    heavy_time: list[float] = []
    started = threading.Event()

    def run_heavy() -> None:
        try:
            started.set()
            heavy_time.append(_timed_search(heavy, 64))
        finally:
            connection.close()

    thread = threading.Thread(target=run_heavy)
    thread.start()
    started.wait()
    time.sleep(0.05)  # let it enter the scan
    loaded = [_timed_search(normal[i : i + 1], 31) for i in range(len(normal))]
    heavy_running = thread.is_alive()
    thread.join()

    print(
        f"single query alone p50 {statistics.median(alone) * 1000:.2f} ms; during a heavy "
        f"search ({heavy_time[0]:.2f} s) p50 {statistics.median(loaded) * 1000:.2f} ms, "
        f"max {max(loaded) * 1000:.2f} ms"
    )
    assert max(loaded) < 0.1
    assert max(loaded) < heavy_time[0] / 10
    assert heavy_running, "the heavy search ended before the probes: nothing was measured"


def test_a_long_catch_up_holds_up_no_search(
    big_index: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one thread catches up with the feed for 2 s (as after a bulk load), a
    search in another thread answers at once from the index as it was."""
    assert match_search(big_index[:1], 31)[0][0] == (1, 0)  # opens the index
    original = MatchIndex.caught_up
    entered = threading.Event()

    def slow_catch_up(self: MatchIndex) -> MatchIndex:
        entered.set()
        time.sleep(2.0)
        return original(self)

    monkeypatch.setattr(MatchIndex, "caught_up", slow_catch_up)
    monkeypatch.setattr(service, "REFRESH_SECONDS", 0.0)  # every search finds it stale

    def refresh() -> None:
        try:
            match_search(big_index[:1], 31)
        finally:
            connection.close()

    thread = threading.Thread(target=refresh)
    thread.start()
    assert entered.wait(5)
    took = _timed_search(big_index[1:2], 31)
    refreshing = thread.is_alive()
    thread.join()
    print(f"search during a 2 s catch-up: {took * 1000:.1f} ms")
    assert took < 0.5
    assert refreshing, "the catch-up ended before the search: nothing was measured"
