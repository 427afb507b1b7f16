"""The process-wide PDQ index of every active PDQ value, kept fresh from the change feed.

What is indexed
---------------
Every *active* ``pdq`` and ``vpdq`` signal: some member's current statement on it is a
live assertion (``CurrentStatement.audience`` not NULL, ``exp`` NULL or in the future).
Who may see it is not the index's business: one index serves every member, and the
match selector (``exchange/matching/selectors.py``) passes the candidates through
``exchange.selectors.snapshots`` for the caller. The index is therefore allowed to hold
a few stale entries (an assertion that lapsed a moment ago); it must never miss an
active one.

Entry ids (``PDQIndex`` keys are int64): a ``pdq`` signal is entry ``signal_id``; a
``vpdq`` signal is one entry per distinct frame hash, ``-((signal_id << 20) | k) - 1``
for its k-th distinct frame (first appearance order), so a frame maps back to its
signal with ``(-entry - 1) >> 20``. A video with more than 2**20 distinct frame hashes is
indexed by its first 2**20 (at one frame a second that is 12 days of video).

Freshness
---------
``cursor`` is the highest ``exchange_feedentry.seq`` applied. Before a search, when the
last catch-up is older than ``REFRESH_SECONDS``, the index reads the rows ``seq >
cursor ORDER BY seq`` of every audience and re-checks each named signal: active → add
(replacing), otherwise → remove. The feed's append lock hands out positions in commit
order, so this read never skips a committed change; re-checking the signal's state
instead of interpreting the row makes repeated or reordered application harmless. So a
change committed at time t is seen by every match request that starts after
t + ``REFRESH_SECONDS`` (plus the catch-up itself: two indexed queries), or after
t + ``STALE_GRACE_SECONDS`` for one that arrives while another thread of its process
is catching up (see "Concurrency"). Retractions
and lapses take effect at once: the visibility filter reads the database, the index
only narrows the candidates. Measured (tests/exchange/test_match_freshness.py): an
assertion is matchable 0.19-0.21 s after its submission returned; over HTTP with 2
gunicorn workers at 1M hashes (tests/bench/bench_match.py --http) 0.008 s when no
request had refreshed in the last 0.2 s.

Snapshots
---------
Starting a process does not rebuild from the database: the Celery beat task
``exchange.tasks.snapshot_match_index`` writes the index with its cursor under
``settings.CORDIALE_MATCH_INDEX_DIR``::

    match-index/
        current -> snapshot-000000123456-1718000000000000000   (symlink, swapped atomically)
        snapshot-000000123456-1718000000000000000/ ids.npy hashes.npy ... meta.json

``meta.json`` holds ``{"cursor": 123456, "database": "postgresql:cordiale"}``. The task
loads the current snapshot, catches up from the feed, writes a new directory and
renames a fresh symlink over ``current``; it keeps the two newest directories (a
process that mapped an older one keeps its mapping: unlinked files live on until
unmapped). A process opens the target of ``current`` (or builds from the database when
there is none, or it belongs to another database, or its cursor is past the feed's
head), catches up, and every ``SNAPSHOT_CHECK_SECONDS`` switches to a newer snapshot, so
its in-memory delta only ever holds the changes since the last snapshot.

Memory per web process
----------------------
The snapshot is mapped read-only (``PDQIndex.load(mmap=True)``): all processes of a
host share one copy in the page cache, 888 MB at 10M hashes (see ``pdq_index``). A
process's private memory is its delta: 40 B per changed entry plus ~100 B per hidden
id of the base, e.g. ~14 MB for 100,000 changes since the last snapshot. Measured at
1M hashes, 2 gunicorn workers: 80 MB anonymous memory per worker (the Django process
itself; the index adds ~0), 204 MB resident of which the 96 MB map is shared, PSS 130 MB.

Concurrency
-----------
Threads of a process search the index side by side and never wait for each other's
searches: a heavy one (a thousand hashes at a distance the tables cannot prune scans
every entry per hash, seconds at 1M) must not hold up a single-hash match of another
member. A published ``MatchIndex`` is never changed: a catch-up with rows to apply
updates a copy (``PDQIndex.copy``: the mapped base is shared, the delta and hidden set
are copied, O(changes since the snapshot): 3 ms with 100,000 added and 100,000
removed entries on a 1M base) and publishes it by
replacing one reference; searches keep the state they started with. One thread at a
time refreshes (``_refresh_lock``); meanwhile the other threads search the published
state if it was caught up less than ``STALE_GRACE_SECONDS`` ago, so a long catch-up
(after a bulk load: seconds) holds up no search; only a state older than that, or the
first search of a process, waits for the refresh.
(tests/exchange/test_match_concurrency.py: single-hash searches keep a sub-ms p50
while 1,000 hashes at distance 64 scan 300k entries in another thread.)
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.db import connection

from exchange.db import fetchall, in_list
from exchange.feed import feed_head
from exchange.liveness import live_sql
from exchange.matching.pdq_index import HASH_BYTES, PDQIndex, hashes_from_hex
from exchange.metrics import set_index_size
from forum.errors import DomainError

logger = logging.getLogger(__name__)

INDEXED_TYPES = ("pdq", "vpdq")
REFRESH_SECONDS = 0.2
STALE_GRACE_SECONDS = 1.0
SNAPSHOT_CHECK_SECONDS = 10.0
FEED_BATCH = 20_000  # feed rows read per catch-up step
CHECK_BATCH = 5_000  # signals re-checked per query
FRAME_BITS = 20
MAX_FRAMES = 1 << FRAME_BITS
KEEP_SNAPSHOTS = 2
CURRENT = "current"

IntArray = npt.NDArray[np.int64]
Match = tuple[int, int]


# --- entries ---------------------------------------------------------------------------


def frame_entry_id(signal_id: int, frame: int) -> int:
    return -((signal_id << FRAME_BITS) | frame) - 1


def entry_signal_ids(entry_ids: IntArray) -> IntArray:
    """The signal id of each entry id (pdq entries are signal ids, vpdq ones frames)."""
    return np.where(entry_ids >= 0, entry_ids, (-entry_ids - 1) >> FRAME_BITS)


def vpdq_frame_hashes(value: str) -> list[str]:
    """Distinct frame PDQ hashes of a canonical vpdq value, in order of first appearance."""
    frames = json.loads(value)
    return list(dict.fromkeys(frame.split(",", 1)[0] for frame in frames))[:MAX_FRAMES]


def signal_entries(signal_id: int, signal_type: str, value: str) -> tuple[list[int], list[str]]:
    """Entry ids and hex hashes of one pdq or vpdq signal."""
    if signal_type == "pdq":
        return [signal_id], [value]
    hashes = vpdq_frame_hashes(value)
    return [frame_entry_id(signal_id, k) for k in range(len(hashes))], hashes


# --- database reads --------------------------------------------------------------------

_ACTIVE = (
    "EXISTS (SELECT 1 FROM exchange_currentstatement cs WHERE cs.signal_id = s.id "
    f"AND {live_sql('cs')})"
)


def _database_name() -> str:
    return f"{connection.vendor}:{connection.settings_dict['NAME']}"


def _active_entries() -> tuple[IntArray, npt.NDArray[np.uint8]]:
    types_clause, types_params = in_list("s.signal_type", INDEXED_TYPES)
    ids: list[int] = []
    hexes: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.id, s.signal_type, s.value FROM exchange_signal s "
            f"WHERE {types_clause} AND {_ACTIVE}",
            [*types_params, int(time.time())],
        )
        while rows := cursor.fetchmany(50_000):
            for signal_id, signal_type, value in rows:
                entry_ids, entry_hashes = signal_entries(int(signal_id), signal_type, value)
                ids += entry_ids
                hexes += entry_hashes
    return np.array(ids, dtype=np.int64), _hashes(hexes)


def _hashes(hexes: Sequence[str]) -> npt.NDArray[np.uint8]:
    if not hexes:
        return np.empty((0, HASH_BYTES), dtype=np.uint8)
    return hashes_from_hex(hexes)


# --- the index -------------------------------------------------------------------------


class MatchIndex:
    """A ``PDQIndex`` of the active pdq/vpdq values with the feed position it reflects.

    Once published as the process's index it is only searched: ``caught_up`` returns an
    updated copy instead of changing it (see "Concurrency" above).
    """

    def __init__(self, index: PDQIndex, cursor: int, snapshot: str | None = None) -> None:
        self.index = index
        self.cursor = cursor
        self.snapshot = snapshot  # directory name under the snapshot root, if loaded
        self.refreshed_at = 0.0  # time.monotonic() of the last catch-up
        self.snapshot_checked_at = time.monotonic()

    @classmethod
    def from_database(cls) -> MatchIndex:
        # The head is read first: the state read after it is at least as new, and any
        # row above the head is re-applied by the next catch-up.
        cursor = feed_head()
        ids, hashes = _active_entries()
        return cls(PDQIndex.build(ids, hashes), cursor)

    @classmethod
    def from_snapshot(cls, root: Path, name: str) -> MatchIndex | None:
        """The snapshot in ``root/name`` if it belongs to this database, else None."""
        try:
            index = PDQIndex.load(root / name, mmap=True)
        except (OSError, ValueError) as exc:
            logger.warning("match index snapshot %s unusable: %s", name, exc)
            return None
        cursor = int(index.meta.get("cursor", -1))
        if index.meta.get("database") != _database_name() or not 0 <= cursor <= feed_head():
            logger.warning("match index snapshot %s is not of this database; ignored", name)
            return None
        return cls(index, cursor, name)

    def catch_up(self) -> int:
        """Apply every feed row after the cursor in place; returns the number of rows read.

        Only on a state that no other thread searches yet; otherwise ``caught_up``.
        """
        return self._apply_rows(self._feed_rows())

    def caught_up(self) -> MatchIndex:
        """This state with every feed row after its cursor applied: itself when there is
        none, else an updated copy, so that searches running in this one are undisturbed."""
        rows = self._feed_rows()
        if not rows:
            self.refreshed_at = time.monotonic()
            return self
        state = MatchIndex(self.index.copy(), self.cursor, self.snapshot)
        state.snapshot_checked_at = self.snapshot_checked_at
        state._apply_rows(rows)
        return state

    def _feed_rows(self) -> list[tuple[Any, ...]]:
        return fetchall(
            "SELECT seq, signal_id FROM exchange_feedentry WHERE seq > %s ORDER BY seq LIMIT %s",
            [self.cursor, FEED_BATCH],
        )

    def _apply_rows(self, rows: list[tuple[Any, ...]]) -> int:
        total = 0
        while True:
            if rows:
                self.apply(list(dict.fromkeys(int(r[1]) for r in rows)))
                self.cursor = int(rows[-1][0])
                total += len(rows)
            if len(rows) < FEED_BATCH:
                self.refreshed_at = time.monotonic()
                return total
            rows = self._feed_rows()

    def apply(self, signal_ids: Sequence[int]) -> None:
        """Re-check these signals: index the active pdq/vpdq ones, drop the others."""
        now = int(time.time())
        for start in range(0, len(signal_ids), CHECK_BATCH):
            ids_clause, ids_params = in_list("s.id", signal_ids[start : start + CHECK_BATCH])
            types_clause, types_params = in_list("s.signal_type", INDEXED_TYPES)
            rows = fetchall(
                f"SELECT s.id, s.signal_type, s.value, {_ACTIVE} FROM exchange_signal s "
                f"WHERE {ids_clause} AND {types_clause}",
                [now, *ids_params, *types_params],
            )
            add_ids: list[int] = []
            add_hashes: list[str] = []
            remove_ids: list[int] = []
            for signal_id, signal_type, value, active in rows:
                entry_ids, entry_hashes = signal_entries(int(signal_id), signal_type, value)
                if active:
                    add_ids += entry_ids
                    add_hashes += entry_hashes
                else:
                    remove_ids += entry_ids
            if remove_ids:
                self.index.remove(np.array(remove_ids, dtype=np.int64))
            if add_ids:
                self.index.add(np.array(add_ids, dtype=np.int64), _hashes(add_hashes))

    def search(self, hashes: npt.NDArray[np.uint8], max_distance: int) -> list[list[Match]]:
        """Per query hash, every (signal id, distance) within max_distance, closest first.

        A vpdq signal appears once per query, at the distance of its closest frame.
        """
        out: list[list[Match]] = []
        for found in self.index.query_many(hashes, max_distance):
            best: dict[int, int] = {}
            if found:
                entries = np.array([e for e, _ in found], dtype=np.int64)
                for signal_id, (_, distance) in zip(
                    entry_signal_ids(entries).tolist(), found, strict=True
                ):
                    if signal_id not in best:  # found is sorted by distance already
                        best[signal_id] = distance
            out.append(sorted(best.items(), key=lambda m: (m[1], m[0])))
        return out


# --- the process's index ---------------------------------------------------------------

# Searches read ``_current`` without a lock; ``_refresh_lock`` lets one thread at a time
# open, catch up or switch the index and publish the result.
_refresh_lock = threading.Lock()
_current: MatchIndex | None = None


def snapshot_root() -> Path:
    return Path(settings.CORDIALE_MATCH_INDEX_DIR)


def _current_name(root: Path) -> str | None:
    try:
        return os.readlink(root / CURRENT)
    except OSError:
        return None


def _open(root: Path) -> MatchIndex:
    name = _current_name(root)
    state = MatchIndex.from_snapshot(root, name) if name else None
    if state is None:
        started = time.monotonic()
        state = MatchIndex.from_database()
        logger.info(
            "match index built from the database: %d entries in %.1f s",
            len(state.index),
            time.monotonic() - started,
        )
    state.catch_up()
    return state


def _switch_to_newer_snapshot(state: MatchIndex, root: Path) -> MatchIndex:
    state.snapshot_checked_at = time.monotonic()
    name = _current_name(root)
    if not name or name == state.snapshot:
        return state
    newer = MatchIndex.from_snapshot(root, name)
    if newer is None or newer.cursor < _snapshot_cursor(state):
        return state
    newer.catch_up()
    return newer


def _snapshot_cursor(state: MatchIndex) -> int:
    return int(state.index.meta.get("cursor", -1)) if state.snapshot else -1


def _stale(state: MatchIndex | None) -> bool:
    now = time.monotonic()
    return (
        state is None
        or now - state.refreshed_at >= REFRESH_SECONDS
        or now - state.snapshot_checked_at >= SNAPSHOT_CHECK_SECONDS
    )


def _fresh_state() -> MatchIndex:
    """The process's index, caught up with the feed to within REFRESH_SECONDS (or
    STALE_GRACE_SECONDS while another thread is catching up)."""
    state = _current
    if state is not None and not _stale(state):
        return state
    # While another thread catches up, a state caught up less than STALE_GRACE_SECONDS
    # ago keeps serving: a long catch-up (after a bulk load) holds up no search. Older
    # states, and the first search of a process, wait for the refresh.
    recent = state is not None and time.monotonic() - state.refreshed_at < STALE_GRACE_SECONDS
    if not _refresh_lock.acquire(blocking=not recent):
        assert state is not None
        return state
    try:
        return _refresh()
    finally:
        _refresh_lock.release()


def _refresh() -> MatchIndex:
    """Open, switch or catch up the process's index as due; under ``_refresh_lock``."""
    global _current
    state = _current  # another thread may have refreshed it while this one waited
    if state is None:
        state = _open(snapshot_root())
    elif _stale(state):
        if time.monotonic() - state.snapshot_checked_at >= SNAPSHOT_CHECK_SECONDS:
            state = _switch_to_newer_snapshot(state, snapshot_root())
        if time.monotonic() - state.refreshed_at >= REFRESH_SECONDS:
            state = state.caught_up()
    if state is not _current:
        set_index_size(len(state.index))
    _current = state
    return state


class MatchTooCostly(DomainError):
    """A search would compare more indexed hashes than one request may."""

    code = "match_too_costly"
    status = 413
    title = "Search too costly"


def match_search(
    hashes: npt.NDArray[np.uint8], max_distance: int, *, budget: float | None = None
) -> list[list[Match]]:
    """Search the process's index, caught up with the feed to within REFRESH_SECONDS.

    ``budget`` bounds the work, in indexed hashes compared (``PDQIndex.search_cost``
    per query hash): past it, ``MatchTooCostly`` before anything is searched. No lock is
    held while searching: other threads' searches run alongside.
    """
    state = _fresh_state()
    if budget is not None:
        _check_cost(state.index, len(hashes), max_distance, budget)
    return state.search(hashes, max_distance)


def _check_cost(index: PDQIndex, count: int, max_distance: int, budget: float) -> None:
    """Refuse a search the index cannot prune enough, before it costs anything.

    Up to distance 47 the tables keep a hash's cost below about a quarter of the index
    (0.4 % at the default 31); from 48 (or on a small index) every entry is compared, so
    the product of query hashes and index size is what must stay bounded.
    """
    each = index.search_cost(max_distance)
    cost = count * each
    if cost <= budget:
        return
    pruned = [d for d in range(max_distance) if index.uses_tables(d)]
    hint = (
        f", or use max_distance {pruned[-1]} or less, where the index prunes the search"
        if pruned and not index.uses_tables(max_distance)
        else ""
    )
    raise MatchTooCostly(
        f"This search would compare about {cost:,.0f} indexed hashes ({count:,} query "
        f"hashes x {each:,.0f} each at max_distance {max_distance}); one request may "
        f"compare at most {budget:,.0f}. Send fewer hashes per request{hint}."
    )


def match_index_reset() -> None:
    """Forget the process's index (tests; a process after its database was replaced)."""
    global _current
    with _refresh_lock:
        _current = None


def match_index_state() -> MatchIndex | None:
    return _current


# --- writing snapshots -----------------------------------------------------------------


def match_index_snapshot() -> Path:
    """Write a snapshot of the index caught up to the feed; swap ``current`` to it.

    Idempotent, and safe to run concurrently with itself (a lock file serialises
    writers) and with readers (they open the old or the new directory, both complete).
    """
    root = snapshot_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        state = _open(root)
        name = f"snapshot-{state.cursor:012d}-{time.time_ns()}"
        staging = root / f".{name}.tmp"
        state.index.save(staging, meta={"cursor": state.cursor, "database": _database_name()})
        staging.rename(root / name)
        link = root / f".{CURRENT}-{time.time_ns()}.tmp"
        os.symlink(name, link)
        os.replace(link, root / CURRENT)  # atomic: readers see the old or the new target
        _prune(root, keep=name)
        logger.info("match index snapshot %s: %d entries", name, len(state.index))
        return root / name


def _prune(root: Path, *, keep: str) -> None:
    snapshots = sorted(p.name for p in root.iterdir() if p.name.startswith("snapshot-"))
    stale: Iterable[str] = [n for n in snapshots[:-KEEP_SNAPSHOTS] if n != keep]
    for name in stale:
        shutil.rmtree(root / name, ignore_errors=True)
    for leftover in root.glob(".snapshot-*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
