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
``vpdq`` signal is one entry per distinct frame hash, its good frames (quality >= 50)
first, in the layout of ``exchange/matching/video.py``, which also computes the
video-to-video figures from them.

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
Starting a process does not rebuild from the database when the host has a good
snapshot: one file, ``settings.CORDIALE_MATCH_INDEX_DIR/pdq.snapshot``, in the format of
``exchange/matching/snapshots.py`` (a header with format version, SHA-256 of the
payload, the feed position it reflects and counts; written to a temporary file, synced
and renamed over the old one). A process opens it, verifies it, and catches up from the
position it carries, so a snapshot of any age gives the same answers as a rebuild.

A snapshot that is refused (corrupt, truncated, another format version, checksum
mismatch, another database, or a position past the feed's head, as after a restore
from backup) is logged, counted (``cordiale_match_index_snapshots_refused_total``) and
never used or copied forward: the process rebuilds from PostgreSQL and replaces it
with a good one. While one process of the host rebuilds, the others wait on the
directory's lock file and then load what it wrote, so a host reads its PDQ values from
the database once, not once per process.

The web processes keep the snapshot current themselves: when a process's state is
``REWRITE_FEED_ROWS`` feed positions past the snapshot it loaded, a background thread
writes a new one (one writer at a time per host, through the lock file) and every
``SNAPSHOT_CHECK_SECONDS`` each process switches to a newer snapshot, so its in-memory
delta only holds the changes since the last one. If the directory cannot be written
(read-only, missing volume) the process logs that once and works from memory: it
builds from the database and catches up as usual.

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

import contextlib
import fcntl
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.db import connection

from exchange.db import fetchall, in_list
from exchange.feed import feed_head
from exchange.liveness import live_sql
from exchange.matching import snapshots
from exchange.matching.pdq_index import HASH_BYTES, PDQIndex, hashes_from_hex
from exchange.matching.video import (
    VideoMatch,
    entry_signal_ids,
    match_videos,
    video_entries,
    video_frames,
)
from exchange.metrics import record_snapshot_refused, set_index_size
from forum.errors import DomainError

logger = logging.getLogger(__name__)

INDEXED_TYPES = ("pdq", "vpdq")
REFRESH_SECONDS = 0.2
STALE_GRACE_SECONDS = 1.0
SNAPSHOT_CHECK_SECONDS = 10.0
FEED_BATCH = 20_000  # feed rows read per catch-up step
CHECK_BATCH = 5_000  # signals re-checked per query
REWRITE_FEED_ROWS = 100_000  # feed positions past its snapshot before a process writes one
SNAPSHOT_FILE = "pdq.snapshot"
LOCK_FILE = ".lock"

IntArray = npt.NDArray[np.int64]
Match = tuple[int, int]


# --- entries ---------------------------------------------------------------------------


def vpdq_frame_hashes(value: str) -> list[str]:
    """Distinct good frame hashes of a canonical vpdq value (what a video query searches)."""
    return video_frames(value).good


def signal_entries(signal_id: int, signal_type: str, value: str) -> tuple[list[int], list[str]]:
    """Entry ids and hex hashes of one pdq or vpdq signal."""
    if signal_type == "pdq":
        return [signal_id], [value]
    return video_entries(signal_id, value)


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

    def __init__(
        self, index: PDQIndex, cursor: int, snapshot: snapshots.Snapshot | None = None
    ) -> None:
        self.index = index
        self.cursor = cursor
        # The snapshot loaded (its payload checksum and feed position), if any.
        self.snapshot = snapshot.checksum if snapshot else None
        self.snapshot_cursor = snapshot.cursor if snapshot else -1
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
    def from_snapshot(cls, path: Path) -> MatchIndex | None:
        """The snapshot at ``path`` if there is one and it is sound, else None (a refused
        one is logged and counted)."""
        try:
            snapshot = snapshots.read(path, database=_database_name())
        except FileNotFoundError:
            return None
        except snapshots.SnapshotRefused as exc:
            _refused(path, exc.reason, str(exc))
            return None
        except OSError as exc:
            _refused(path, "unreadable", str(exc))
            return None
        head = feed_head()
        if snapshot.cursor > head:
            _refused(path, "ahead", f"position {snapshot.cursor} is past the feed's head {head}")
            return None
        return cls(snapshot.index, snapshot.cursor, snapshot)

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
        state = MatchIndex(self.index.copy(), self.cursor)
        state.snapshot, state.snapshot_cursor = self.snapshot, self.snapshot_cursor
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

    def search_videos(
        self,
        queries: list[list[str]],
        max_distance: int,
        *,
        query_match_percent: float,
        compared_match_percent: float,
    ) -> list[list[VideoMatch]]:
        """Per video query (its distinct good frames), the signals meeting both
        thresholds, best first (see ``exchange.matching.video.match_videos``)."""
        return match_videos(
            self.index,
            queries,
            max_distance,
            query_match_percent=query_match_percent,
            compared_match_percent=compared_match_percent,
        )


# --- the process's index ---------------------------------------------------------------

# Searches read ``_current`` without a lock; ``_refresh_lock`` lets one thread at a time
# open, catch up or switch the index and publish the result.
_refresh_lock = threading.Lock()
_current: MatchIndex | None = None


def snapshot_root() -> Path:
    return Path(settings.CORDIALE_MATCH_INDEX_DIR)


def _refused(path: Path, reason: str, detail: str) -> None:
    logger.warning(
        "match index snapshot %s refused (%s); rebuilding from the database", path, detail
    )
    record_snapshot_refused(reason)


_unwritable_logged = False


def _note_unwritable(root: Path, exc: OSError) -> None:
    """Log, once per process, that snapshots cannot be written: it works from memory."""
    global _unwritable_logged
    if not _unwritable_logged:
        _unwritable_logged = True
        logger.warning(
            "match index snapshots cannot be written in %s (%s); this process keeps its "
            "index in memory only and rebuilds it from the database when it starts",
            root,
            exc,
        )


@contextlib.contextmanager
def _writer_lock(root: Path, *, blocking: bool) -> Iterator[bool]:
    """Hold the host's snapshot lock (the lock file in ``root``); yields False when
    ``blocking`` is False and another process holds it. OSError when ``root`` cannot
    be written."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True  # closing the file releases the lock


def _built(reason: str) -> MatchIndex:
    started = time.monotonic()
    state = MatchIndex.from_database()
    logger.info(
        "match index built from the database (%s): %d entries in %.1f s",
        reason,
        len(state.index),
        time.monotonic() - started,
    )
    return state


def _write(state: MatchIndex, root: Path) -> None:
    """Write ``state`` as the host's snapshot; under the lock."""
    started = time.monotonic()
    header = snapshots.write(
        root / SNAPSHOT_FILE, state.index, cursor=state.cursor, database=_database_name()
    )
    snapshots.remove_leftovers(root)
    logger.info(
        "match index snapshot written at feed position %d: %d entries in %.1f s",
        header["cursor"],
        header["entries"],
        time.monotonic() - started,
    )


def _open(root: Path) -> MatchIndex:
    """The host's snapshot caught up with the feed; without a sound one, a build from
    the database, written as the new snapshot (one process of the host builds, the
    others wait for it and load what it wrote)."""
    path = root / SNAPSHOT_FILE
    state = MatchIndex.from_snapshot(path)
    if state is None:
        state = _open_locked(root, _file_id(path))
    state.catch_up()
    return state


def _open_locked(root: Path, seen: tuple[int, int] | None) -> MatchIndex:
    path = root / SNAPSHOT_FILE
    state: MatchIndex | None = None
    try:
        with _writer_lock(root, blocking=True):
            # Another process of the host may have written one while this one waited.
            if _file_id(path) != seen and (written := MatchIndex.from_snapshot(path)):
                return written
            state = _built("no sound snapshot")
            _write(state, root)
    except OSError as exc:
        _note_unwritable(root, exc)
        return state or _built("snapshots cannot be written")
    # The file just written replaces the private copy: mapped, it is shared by the host.
    return MatchIndex.from_snapshot(path) or state


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _switch_to_newer_snapshot(state: MatchIndex, root: Path) -> MatchIndex:
    state.snapshot_checked_at = time.monotonic()
    path = root / SNAPSHOT_FILE
    try:
        header = snapshots.read_header(path)
    except (OSError, snapshots.SnapshotRefused):
        return state  # none, or a bad one: the next rewrite replaces it
    if header["sha256"] == state.snapshot or int(header["cursor"]) <= state.snapshot_cursor:
        return state
    newer = MatchIndex.from_snapshot(path)
    if newer is None:
        return state
    newer.catch_up()
    return newer


# One background snapshot writer per process at a time.
_rewriter: threading.Thread | None = None


def _rewrite_due(state: MatchIndex) -> bool:
    return (
        not _unwritable_logged
        and state.cursor - state.snapshot_cursor >= REWRITE_FEED_ROWS
        and (_rewriter is None or not _rewriter.is_alive())
    )


def _start_rewrite(state: MatchIndex) -> None:
    """Write ``state`` as the host's new snapshot in a background thread: compacting a
    large index takes seconds, and no search should wait for it."""
    global _rewriter
    root, database = snapshot_root(), _database_name()
    _rewriter = threading.Thread(
        target=_rewrite, args=(state, root, database), name="match-index-snapshot", daemon=True
    )
    _rewriter.start()


def _rewrite(state: MatchIndex, root: Path, database: str) -> None:
    path = root / SNAPSHOT_FILE
    try:
        with _writer_lock(root, blocking=False) as held:
            if not held:
                return  # another process of the host is writing one
            with contextlib.suppress(OSError, snapshots.SnapshotRefused):
                if int(snapshots.read_header(path)["cursor"]) > state.snapshot_cursor:
                    return  # a newer one than this process loaded: it switches to that
            # A copy: compacting changes the index, and searches run in the published one.
            header = snapshots.write(
                path, state.index.copy(), cursor=state.cursor, database=database
            )
            snapshots.remove_leftovers(root)
            logger.info(
                "match index snapshot rewritten at feed position %d: %d entries",
                header["cursor"],
                header["entries"],
            )
    except OSError as exc:
        _note_unwritable(root, exc)
    except Exception:
        logger.exception("match index snapshot rewrite failed")


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
    if _rewrite_due(state):
        _start_rewrite(state)
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
    return match_state(len(hashes), max_distance, budget=budget).search(hashes, max_distance)


def match_state(count: int, max_distance: int, *, budget: float | None = None) -> MatchIndex:
    """The process's index, caught up as for ``match_search``, once a search of ``count``
    hashes at ``max_distance`` is known to fit ``budget`` (else ``MatchTooCostly``)."""
    state = _fresh_state()
    if budget is not None:
        _check_cost(state.index, count, max_distance, budget)
    return state


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
    """Write the host's snapshot of the index caught up to the feed; returns its path.

    Starts from the current snapshot when it is sound, else from the database; never
    from a refused one. Idempotent, and safe alongside web processes (they read the old
    file or the new one) and other writers (the lock file serialises them). OSError when
    the directory cannot be written.
    """
    root = snapshot_root()
    path = root / SNAPSHOT_FILE
    with _writer_lock(root, blocking=True):
        state = MatchIndex.from_snapshot(path) or _built("no sound snapshot")
        state.catch_up()
        _write(state, root)
    return path
