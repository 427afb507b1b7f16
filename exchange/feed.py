"""The change feed: one ordered log of "signal S changed for audience A".

Every read channel (pull sync, webhooks, the matching index, TAXII) follows this feed.

Writing
-------
A transaction that changes what some audience may see of a signal appends a row
``(seq, audience, signal)`` for every audience whose view changed: the audience of the
member's previous statement on the signal and that of the new one. Audience keys are
``0`` (the forum), a group id, or ``-member_id`` (one member: tombstones when it leaves
a group). The row says only *that* the signal changed; readers compute its state when
they read, so repeats are harmless and the last snapshot wins.

Never skipping. Sequence numbers are handed out when a row is inserted, but
transactions commit in any order: a reader could see ``seq`` 11 committed while 10 is
still in flight, store 11 as its cursor, and skip 10 forever. ``feed_append`` therefore
takes a transaction-level advisory lock (``pg_advisory_xact_lock``) before inserting and
holds it until commit, so positions are assigned in commit order: when a reader sees
row N, every row below N is committed already. Writers do all their other work first
and append last, so the lock is held only for the insert and the commit. (On SQLite
writers are serialised by the database itself.) The lock is transaction-scoped, so it
works behind PgBouncer in transaction pooling mode.

Dates. Each row also gets ``added_at``, handed out under the same lock: the later of now
and the previous row's ``added_at`` plus one microsecond, then one microsecond more per
row of the batch. So ``added_at`` grows strictly with ``seq``, hence with commit order,
and no two rows share one: "rows added after T" is exactly "rows after the position
whose ``added_at`` is T", which TAXII's ``added_after`` relies on (exchange/taxii/).

Listening. The feed does not know who follows it. Whoever wants to hear of new rows
(webhook wake-ups) registers a callback at app start, ``feed_listeners.register(f)``
from an ``AppConfig.ready()``, as Django's own signals and checks are connected; once a
transaction that appended rows commits, ``f(audiences=..., rows=...)`` gets the distinct
audiences (sorted) and the ``(audience, signal_id)`` pairs appended. A listener that
raises is logged and never fails the write: the rows are committed, and followers that
missed a call find them by reading (the webhook sweep does).

Reading
-------
A reader (a member) follows several audiences at once: the forum, each group it is in,
and its own member key. The cursor keeps one position per audience, each tagged with the
period of membership it belongs to::

    {"v": 1, "p": {"0": [12, 5120], "g7": [4800, 5120], "m": [0, 5120]}}

encoded as unpadded base64url (the cursor is opaque to clients). With a read replica
configured it also holds ``"w"``, the WAL position of the state the page came from, so
that the next page is never read from a replica that has not replayed that far. A page is the merge,
in ``seq`` order, of an index range scan ``audience = A AND seq > pos_A`` per audience,
run as one statement so that all scans see one snapshot; the work per page is bounded
by ``limit`` whatever the reader's lag, and positions never expire (cursors stay valid
as long as the rows' successors exist; compaction only deletes rows superseded by a
later row of the same audience and signal).

When a member joins a group, its cursor has no position for that group's new period,
so the group is read from the start: it receives the group's current signals. Rows
written before it joined never yield tombstones (it could not have seen those values);
only rows written inside one of its membership periods (``AudiencePeriod``) may. When
it leaves, the group is read up to the end of its period, and a ``-member`` row is
written for each signal the group could see, which reads as a tombstone unless the
member still sees the signal some other way.

For each row the reader gets the signal's snapshot if it may see the signal now; else a
tombstone if the row was written while it was in the row's audience; else nothing.

Restores
--------
A forum restored from a backup hands out again the positions written after the dump,
to new rows. A cursor issued before the dump is fine (its rows are in the backup, in
the same places); one issued after it points at rows that are gone, and once new rows
take their positions it would silently skip them. So every cursor we issue carries an
*anchor*: its highest number (positions and period markers alike, each of which was a
committed row's position when the cursor was made) and a fingerprint of the row at
that position, a short hash of the position and the row's ``created_at`` to the
microsecond::

    {"v": 1, "p": {...}, "f": [5120, "Yq3v0D5x"]}

Rows are never changed or deleted, and positions are handed out in commit order, so a
row at the anchor with the same fingerprint means that every row up to the anchor is
the one the cursor was made from. If the row is missing or differs, the cursor belongs
to a history this database does not hold: the request is refused with ``410
resync_required`` and the client starts again from the beginning (docs/operations.md).
Nothing has to be done after a restore for this to work. Cursors issued before anchors
existed have none; they are read as before, except that one pointing past the feed's
head (the common case right after a restore) gets ``resync_required`` too. A future
compaction of the feed must keep the row each live cursor is anchored on (the newest
row of the feed, and each member's last page end), or resolve the missing anchor
otherwise; deleting it would make those readers resync, never skip.
"""

from __future__ import annotations

import binascii
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

import orjson
from django.db import connection, transaction
from django.utils import timezone

from forum.errors import DomainError

from .client import base64url, json_input
from .db import bulk_cursor, fetchall, is_postgres, json_fields, json_rows, rfc3339
from .liveness import live
from .models import FORUM_AUDIENCE, AudiencePeriod, FeedEntry

logger = logging.getLogger(__name__)

FEED_LOCK_KEY = 0x43_4F_52_44_46_45_45  # "CORDFEE"
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000


# --- listening -----------------------------------------------------------------------


class FeedListener(Protocol):
    def __call__(self, *, audiences: list[int], rows: list[tuple[int, int]]) -> None: ...


class FeedListeners:
    """Callbacks told of feed rows once they commit (see "Listening" above)."""

    def __init__(self) -> None:
        self._listeners: list[FeedListener] = []

    def register(self, listener: FeedListener) -> FeedListener:
        """Add ``listener``; registering it again changes nothing. Returns it (a decorator)."""
        if listener not in self._listeners:
            self._listeners.append(listener)
        return listener

    def unregister(self, listener: FeedListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def schedule(self, rows: list[tuple[int, int]]) -> None:
        """Tell every listener of ``rows`` once the current transaction commits."""
        if not self._listeners:
            return
        audiences = sorted({audience for audience, _ in rows})
        transaction.on_commit(lambda: self._notify(audiences, rows), robust=True)

    def _notify(self, audiences: list[int], rows: list[tuple[int, int]]) -> None:
        for listener in list(self._listeners):
            try:
                listener(audiences=audiences, rows=rows)
            except Exception:
                logger.exception("feed listener %r failed", listener)


feed_listeners = FeedListeners()


# --- writing -------------------------------------------------------------------------


def feed_lock() -> None:
    """Serialise feed appends until this transaction ends (see module docstring)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("feed_lock() must run inside a transaction")
    if is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [FEED_LOCK_KEY])


def feed_head() -> int:
    """The highest position committed so far. Audience periods take their bounds from it
    with the feed lock held, so that no lower position can commit afterwards; the match
    index and the metrics read it without."""
    rows = fetchall("SELECT COALESCE(MAX(seq), 0) FROM exchange_feedentry")
    return int(rows[0][0])


FeedChange = tuple[int, int] | tuple[int, int, int | None]


def feed_append(rows: Iterable[FeedChange], *, now: datetime | None = None) -> int:
    """Append ``(audience, signal_id[, effective_at])`` rows; the last step of a transaction.

    A row may name the Unix time its change took effect when that was earlier (a lapse);
    duplicates of one (audience, signal) keep the earliest such time, the strictest for
    tombstones. Returns the number of rows written.
    """
    unique: dict[tuple[int, int], int | None] = {}
    for row in rows:
        key = (row[0], row[1])
        effective = row[2] if len(row) > 2 else None
        if key in unique:
            held = unique[key]
            if held is None or (effective is not None and effective < held):
                unique[key] = effective
        else:
            unique[key] = effective
    if not unique:
        return 0
    feed_lock()
    at = now or timezone.now()
    keys = list(unique)
    with bulk_cursor() as cursor:
        if is_postgres():
            # added_at: from max(now, the last row's + 1 µs) on, one microsecond per row,
            # in seq order (see "Dates" above).
            cursor.execute(
                "INSERT INTO exchange_feedentry "
                "(audience, signal_id, created_at, effective_at, added_at) "
                f"SELECT {json_fields('bigint', 'bigint')}, %s, (x->>2)::bigint, "
                "base.t + (e.n - 1) * interval '1 microsecond' "
                "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS e(x, n), "
                f"({_NEXT_ADDED_AT}) AS base ORDER BY e.n",
                [at, json_rows([(a, s, unique[(a, s)]) for a, s in keys]), at, at],
            )
        else:
            cursor.execute(
                "SELECT COALESCE(added_at, created_at) FROM exchange_feedentry "
                "ORDER BY seq DESC LIMIT 1"
            )
            last = cursor.fetchone()
            start = at
            if last is not None:
                previous = _sqlite_datetime(last[0])
                if previous >= start:
                    start = previous + timedelta(microseconds=1)
            cursor.executemany(
                "INSERT INTO exchange_feedentry "
                "(audience, signal_id, created_at, effective_at, added_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                [
                    (a, s, at, unique[(a, s)], start + timedelta(microseconds=i))
                    for i, (a, s) in enumerate(keys)
                ],
            )
    feed_listeners.schedule(keys)
    return len(keys)


_NEXT_ADDED_AT = (
    "SELECT GREATEST(%s::timestamptz, COALESCE((SELECT COALESCE(added_at, created_at) "
    "FROM exchange_feedentry ORDER BY seq DESC LIMIT 1), %s::timestamptz) "
    "+ interval '1 microsecond') AS t"
)


def _sqlite_datetime(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def before_change(
    audience: int | None, exp: int | None, lapsed: bool, now: int
) -> tuple[int, int | None] | None:
    """``(audience, effective_at)`` of the row owed to whoever saw a statement that is
    being replaced or withdrawn: none if nobody sees it (retraction, or its lapse was
    recorded already); marked with its lapse time if it lapsed unrecorded."""
    if audience is None or lapsed:
        return None
    return (audience, None if live(exp, now) else exp)


# --- cursors -------------------------------------------------------------------------


class InvalidCursor(DomainError):
    code = "invalid_cursor"
    title = "Invalid cursor"


class ResyncRequired(DomainError):
    code = "resync_required"
    status = 410
    title = "Resync required"


RESYNC_DETAIL = (
    "This cursor points at feed positions this forum does not hold: it was restored from a "
    "backup taken before the cursor was issued. Start again without a cursor and keep, of "
    "your copy, only the signals that this full read returns."
)


@dataclass
class Cursor:
    """Per-audience positions: ``key -> (period marker, position)``; ``anchor`` is
    ``(position, fingerprint)`` of the row it stands on (None in cursors issued before
    anchors existed: see "Restores" above); and, once a page was read with a read replica
    configured, ``watermark``: the WAL position of the state that page was read from,
    below which no later page may be read (``forum/db_routing.py``)."""

    positions: dict[str, tuple[int, int]]
    anchor: tuple[int, str] | None = None
    watermark: int = 0

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        if not text:
            return cls({})
        try:
            raw = base64url.decode(text)
            data = json_input.loads(raw)
            if not isinstance(data, dict) or data.get("v") != 1:
                raise ValueError("version")
            watermark = data.get("w", 0)
            if type(watermark) is not int or not 0 <= watermark <= _MAX_POSITION:
                raise ValueError("watermark")
            cursor = cls(_positions(data.get("p")), _anchor(data.get("f")), watermark)
        except (ValueError, TypeError, binascii.Error):
            raise InvalidCursor(
                "The cursor is not one this server issued; start without a cursor or "
                "use the last cursor you received."
            ) from None
        if cursor.anchor is not None and cursor.anchor[0] != cursor.mark():
            raise InvalidCursor("The cursor's anchor does not match its positions.")
        return cursor

    def mark(self) -> int:
        """The highest position or period marker in the cursor (0 when it has none)."""
        return max((n for pair in self.positions.values() for n in pair), default=0)

    def encode(self) -> str:
        data: dict[str, Any] = {"v": 1, "p": {k: list(v) for k, v in self.positions.items()}}
        if self.anchor is not None:
            data["f"] = list(self.anchor)
        if self.watermark:
            data["w"] = self.watermark
        return base64url.encode(orjson.dumps(data))


def _anchor(raw: Any) -> tuple[int, str] | None:
    """The ``f`` member of a decoded cursor, if any; ValueError unless it has our shape."""
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != 2:
        raise ValueError("anchor")
    position, fingerprint = raw
    if type(position) is not int or not 0 < position <= _MAX_POSITION:
        raise ValueError("anchor")
    if not isinstance(fingerprint, str) or not 0 < len(fingerprint) <= 16:
        raise ValueError("anchor")
    return (position, fingerprint)


_MISSING_ROW = "-"


def row_fingerprint(seq: int) -> str:
    """A short hash of the feed row at ``seq`` (``-`` if there is none): its position and
    the microsecond it was written, which a row written at that position after a restore
    never shares."""
    written = FeedEntry.objects.filter(seq=seq).values_list("created_at", flat=True).first()
    if written is None:
        return _MISSING_ROW
    micros = (written - _EPOCH) // timedelta(microseconds=1)
    digest = hashlib.blake2b(f"{seq}:{micros}".encode(), digest_size=6).digest()
    return base64url.encode(digest)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cursor_issue(cursor: Cursor) -> str:
    """The cursor's text as we hand it out: anchored on its highest position."""
    mark = cursor.mark()
    anchor = (mark, row_fingerprint(mark)) if mark else None
    return Cursor(cursor.positions, anchor, cursor.watermark).encode()


def cursor_check(cursor: Cursor) -> None:
    """Refuse a cursor from a history this database does not hold (see "Restores")."""
    if cursor.anchor is not None:
        position, fingerprint = cursor.anchor
        if row_fingerprint(position) != fingerprint:
            raise ResyncRequired(RESYNC_DETAIL)
    elif cursor.mark() > feed_head():
        raise ResyncRequired(RESYNC_DETAIL)


_MAX_POSITION = 2**63 - 1  # a bigint column: anything larger cannot be a position


def _positions(raw: Any) -> dict[str, tuple[int, int]]:
    """The ``p`` member of a decoded cursor; ValueError unless it has the shape we write."""
    if not isinstance(raw, dict) or len(raw) > 10_000:
        raise ValueError("positions")
    positions: dict[str, tuple[int, int]] = {}
    for key, value in raw.items():
        if len(key) > 24 or not isinstance(value, list) or len(value) != 2:
            raise ValueError("position")
        if not all(type(v) is int and 0 <= v <= _MAX_POSITION for v in value):
            raise ValueError("position")
        positions[key] = (value[0], value[1])
    return positions


def audience_cursor_key(audience: int) -> str:
    if audience == FORUM_AUDIENCE:
        return "0"
    if audience > 0:
        return f"g{audience}"
    return "m"


# --- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class Scan:
    audience: int
    key: str
    marker: int
    after: int
    upto: int | None


class FeedRow(NamedTuple):
    """One feed row as a page reads it (a tuple: pages hold 10,000 of them)."""

    seq: int
    audience: int
    signal_id: int
    created_at: str  # RFC 3339 UTC text
    effective_at: int | None


class Reader:
    """What the feed needs to know of a reading member: its audiences and periods."""

    def __init__(self, member_id: int) -> None:
        self.member_id = member_id
        # audience -> membership periods (start_seq, end_seq, started_at), oldest first
        self.periods: dict[int, list[tuple[int, int | None, float]]] = {}
        for audience, start, end, started_at in (
            AudiencePeriod.objects.filter(member_id=member_id)
            .order_by("start_seq", "id")
            .values_list("audience", "start_seq", "end_seq", "started_at")
        ):
            self.periods.setdefault(audience, []).append((start, end, started_at.timestamp()))
        self.groups: list[int] = sorted(
            a for a, spans in self.periods.items() if a > 0 and spans[-1][1] is None
        )

    def may_tombstone(self, row: FeedRow) -> bool:
        """May this row tell the reader that its signal is gone? Only if the reader was
        in the row's audience when the change took effect, so it could have seen the
        signal before."""
        if row.audience < 0:
            return row.audience == -self.member_id
        return any(
            start < row.seq
            and (end is None or row.seq <= end)
            and (row.effective_at is None or started_at < row.effective_at)
            for start, end, started_at in self.periods.get(row.audience, ())
        )

    def scans(self, cursor: Cursor) -> list[Scan]:
        scans: list[Scan] = []
        for audience, spans in sorted(self.periods.items()):
            key = audience_cursor_key(audience)
            start, end, _ = spans[-1]
            held = cursor.positions.get(key)
            if end is None:
                after = held[1] if held and held[0] == start else 0
                scans.append(Scan(audience, key, start, after, None))
            elif held and held[1] < end and any(s == held[0] for s, _, _ in spans):
                # Left the audience, but not yet read up to the leave: finish the period.
                scans.append(Scan(audience, key, held[0], held[1], end))
        held = cursor.positions.get("m")
        scans.append(Scan(-self.member_id, "m", 0, held[1] if held else 0, None))
        return scans


def feed_rows(scans: list[Scan], limit: int) -> list[FeedRow]:
    """The first ``limit + 1`` rows of the merged scans, read in one snapshot."""
    parts: list[str] = []
    params: list[Any] = []
    for index, scan in enumerate(scans):
        upto = "" if scan.upto is None else " AND seq <= %s"
        parts.append(
            f"SELECT * FROM (SELECT seq, audience, signal_id, {rfc3339('created_at')} AS at, "
            f"effective_at "
            f"FROM exchange_feedentry WHERE audience = %s AND seq > %s{upto} "
            f"ORDER BY seq LIMIT %s) AS s{index}"
        )
        params.extend([scan.audience, scan.after])
        if scan.upto is not None:
            params.append(scan.upto)
        params.append(limit + 1)
    sql = " UNION ALL ".join(parts) + " ORDER BY seq LIMIT %s"
    params.append(limit + 1)
    return [FeedRow(int(r[0]), int(r[1]), int(r[2]), r[3], r[4]) for r in fetchall(sql, params)]


def advance(cursor: Cursor, scans: list[Scan], last_seq: int | None) -> Cursor:
    """Positions after a page that consumed every merged row up to ``last_seq``."""
    positions: dict[str, tuple[int, int]] = {}
    for scan in scans:
        pos = scan.after if last_seq is None else max(scan.after, last_seq)
        if scan.upto is not None:
            if pos >= scan.upto:
                continue  # that period is fully read
            pos = min(pos, scan.upto)
        positions[scan.key] = (scan.marker, pos)
    return Cursor(positions)
