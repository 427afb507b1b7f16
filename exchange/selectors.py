"""Reads: what a member may see of signals, as snapshots.

Visibility rule (the only one; every read path goes through ``snapshots``): a member
sees a statement when it is some member's current statement on the signal, a live
assertion (not retracted, not withdrawn, not past its ``exp``), and addressed to the
forum or to a group the member is in now. A member sees a signal when it sees at least
one of its statements, unless forum staff overturned the signal (``overturned_at``):
then nobody sees it, whatever its statements say (``exchange/disputes/``).

Known benign: a statement is ``benign`` when its labels are of kind ``benign``
(``Statement.benign``); a snapshot is ``benign`` when every statement the reader sees
is. The same signal may be benign for one reader and not for another (a TVEC statement
addressed to a group the first is not in), as any snapshot is the reader's own view.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

import orjson

from forum.db_routing import read_snapshot, replica_configured

from .db import fetchall, in_list, rfc3339, signal_value_in
from .feed import Cursor, Reader, advance, cursor_check, cursor_issue, feed_rows
from .liveness import live_q, unexpired_sql
from .models import FORUM_AUDIENCE, CurrentStatement, Signal
from .sightings.summaries import empty_summary, sighting_summaries

Snapshot = dict[str, Any]

_UNEXPIRED = unexpired_sql("cs")


def _audience_clause(reader: Reader) -> tuple[str, list[Any]]:
    audiences = [FORUM_AUDIENCE, *reader.groups]
    clause, params = in_list("cs.audience", audiences)
    return clause, params


def _visible_clause(reader: Reader, now: int) -> tuple[str, list[Any]]:
    """The visibility rule on ``exchange_currentstatement cs``: a live assertion for one
    of the reader's audiences."""
    aud_clause, aud_params = _audience_clause(reader)
    return f"{aud_clause} AND {_UNEXPIRED}", [*aud_params, now]


def visible_clause(reader: Reader, now: int) -> tuple[str, list[Any]]:
    """The statement part of the visibility rule on ``exchange_currentstatement cs``,
    without the overturn: who may see a dispute on the signal (``exchange/disputes/``)."""
    return _visible_clause(reader, now)


_NOT_OVERTURNED = "s.overturned_at IS NULL"


def visible_signal_ids(
    *, reader: Reader, signal_type: str, values: Sequence[str], now: int | None = None
) -> dict[str, int]:
    """Signal id by value, for the values of one type that the reader may see.

    One statement whatever the values' state: a value nobody submitted and a value the
    reader may not see cost the same query and the same answer (absent from the result),
    so neither the count nor the time of the database work tells them apart.
    """
    if not values:
        return {}
    now = int(time.time()) if now is None else now
    values_clause, values_params = signal_value_in(values, "s.value")
    visible_clause, visible_params = _visible_clause(reader, now)
    rows = fetchall(
        "SELECT DISTINCT s.id, s.value FROM exchange_signal s "
        "JOIN exchange_currentstatement cs ON cs.signal_id = s.id "
        f"WHERE s.signal_type = %s AND {values_clause} AND {visible_clause} "
        f"AND {_NOT_OVERTURNED}",
        [signal_type, *values_params, *visible_params],
    )
    return {value: int(signal_id) for signal_id, value in rows}


def visible_statements(
    *,
    reader: Reader,
    signal_ids: Sequence[int],
    now: int | None = None,
    include_overturned: bool = False,
) -> dict[int, list[tuple[Any, ...]]]:
    """Visible current statements per signal id, oldest first.

    Each row: signal id, member, kid, iat, labels (JSON text), tlp, audience, exp, jws,
    received_at (RFC 3339 text), signal type, value, receipt, benign.
    ``include_overturned`` also gives those of overturned signals, which no member
    sees: who could see them but for the overturn may still read the dispute that
    overturned them.
    """
    if not signal_ids:
        return {}
    now = int(time.time()) if now is None else now
    ids_clause, ids_params = in_list("cs.signal_id", signal_ids)
    visible_clause, visible_params = _visible_clause(reader, now)
    rows = fetchall(
        "SELECT cs.signal_id, st.member_slug, st.kid, st.iat, st.labels, st.tlp, "
        f"st.audience, st.exp, st.jws, {rfc3339('st.received_at')}, s.signal_type, s.value, "
        "st.receipt, st.benign "
        "FROM exchange_currentstatement cs "
        "JOIN exchange_statement st ON st.id = cs.statement_id "
        "JOIN exchange_signal s ON s.id = cs.signal_id "
        f"WHERE {ids_clause} AND {visible_clause} "
        f"{'' if include_overturned else 'AND ' + _NOT_OVERTURNED} "
        "ORDER BY cs.signal_id, st.iat, st.id",
        [*ids_params, *visible_params],
    )
    out: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        out.setdefault(int(row[0]), []).append(row)
    return out


def _opinion_summaries(
    *, reader: Reader, signal_ids: Sequence[int], now: int
) -> tuple[dict[int, dict[str, int]], dict[int, tuple[Any, ...]], dict[int, str]]:
    """Opinion counts per category, the reader's own opinion and the latest change.

    An opinion counts for a reader only while its author is in an audience through
    which the reader sees the signal now (a live current statement addressed to the
    forum or to a group they are both in; membership as the feed records it, in
    ``AudiencePeriod``). So counts, and the time of the latest change, tell a reader
    only what members of its own audiences think: nothing of a group it is not in,
    nor of members who no longer see the signal. The feed writes a row for the
    signal's audiences whenever that set of authors changes (an opinion set or
    withdrawn, a statement changing audience, an author joining or leaving a group).
    """
    ids_clause, ids_params = in_list("o.signal_id", signal_ids)
    aud_clause, aud_params = _audience_clause(reader)
    counts: dict[int, dict[str, int]] = {}
    latest: dict[int, str] = {}
    for signal_id, category, count, last in fetchall(
        f"SELECT o.signal_id, o.category, COUNT(*), MAX({rfc3339('o.updated_at')}) "
        f"FROM exchange_opinion o WHERE {ids_clause} AND EXISTS ("
        "SELECT 1 FROM exchange_currentstatement cs "
        "JOIN exchange_audienceperiod p ON p.audience = cs.audience "
        "AND p.member_id = o.member_id AND p.end_seq IS NULL "
        f"WHERE cs.signal_id = o.signal_id AND {aud_clause} "
        f"AND {_UNEXPIRED}) "
        "GROUP BY o.signal_id, o.category",
        [*ids_params, *aud_params, now],
    ):
        counts.setdefault(int(signal_id), {})[category] = int(count)
        if int(signal_id) not in latest or last > latest[int(signal_id)]:
            latest[int(signal_id)] = last
    mine: dict[int, tuple[Any, ...]] = {}
    if counts:
        own_clause, own_params = in_list("signal_id", list(counts))
        for signal_id, category, tags, reason in fetchall(
            "SELECT signal_id, category, tags, reason FROM exchange_opinion "
            f"WHERE member_id = %s AND {own_clause}",
            [reader.member_id, *own_params],
        ):
            mine[int(signal_id)] = (category, tags, reason)
    return counts, mine, latest


def _json_fragment(value: Any) -> Any:
    """JSON columns come back as text (Django keeps them raw); embed them unparsed."""
    if isinstance(value, str):
        return orjson.Fragment(value)
    return value


def snapshots(
    *, reader: Reader, signal_ids: Sequence[int], now: int | None = None
) -> dict[int, Snapshot]:
    """Snapshots of the signals the reader may see; invisible ones are absent."""
    now = int(time.time()) if now is None else now
    statements = visible_statements(reader=reader, signal_ids=signal_ids, now=now)
    if not statements:
        return {}
    visible_ids = list(statements)
    counts, mine, opinion_times = _opinion_summaries(reader=reader, signal_ids=visible_ids, now=now)
    open_disputes, decisions = _dispute_states(visible_ids)
    sightings, sighting_times = sighting_summaries(reader=reader, signal_ids=visible_ids, now=now)
    out: dict[int, Snapshot] = {}
    for signal_id, rows in statements.items():
        signal_type, value = rows[0][10], rows[0][11]
        updated = max(r[9] for r in rows)
        for times in (opinion_times, sighting_times):
            if signal_id in times and times[signal_id] > updated:
                updated = times[signal_id]
        c = counts.get(signal_id, {})
        own = mine.get(signal_id)
        out[signal_id] = {
            "signal_type": signal_type,
            "value": value,
            "deleted": False,
            # Known benign for this reader: every statement it sees says so.
            "benign": all(r[13] for r in rows),
            "updated_at": updated,
            "statements": [
                {
                    "member": r[1],
                    "kid": r[2],
                    "iat": r[3],
                    "labels": _json_fragment(r[4]),
                    "benign": bool(r[13]),
                    "tlp": r[5],
                    "audience": r[6],
                    "exp": r[7],
                    "jws": r[8],
                    "receipt": r[12],
                }
                for r in rows
            ],
            "opinions": {
                "positive": c.get("positive", 0),
                "negative": c.get("negative", 0),
                "investigation": c.get("investigation", 0),
                "disputed": signal_id in open_disputes
                or (c.get("positive", 0) > 0 and c.get("negative", 0) > 0),
                "mine": None
                if own is None
                else {"category": own[0], "tags": _json_fragment(own[1]), "reason": own[2]},
            },
            "decisions": decisions.get(signal_id, []),
            "sightings": sightings.get(signal_id) or empty_summary(),
        }
    return out


def _dispute_states(signal_ids: Sequence[int]) -> tuple[set[int], dict[int, list[Snapshot]]]:
    """The signals among ``signal_ids`` with an open dispute, and the forum's signed
    decisions on each, oldest first. Disputes follow the signal's visibility: the
    caller passes only signals the reader sees."""
    ids_clause, ids_params = in_list("d.signal_id", signal_ids)
    open_ids: set[int] = set()
    decisions: dict[int, list[Snapshot]] = {}
    for signal_id, status, decision, labels, token in fetchall(
        "SELECT d.signal_id, d.status, dd.decision, dd.labels, dd.jws "
        "FROM exchange_dispute d LEFT JOIN exchange_disputedecision dd "
        "ON dd.dispute_id = d.id AND dd.jws <> '' "
        f"WHERE {ids_clause} ORDER BY d.signal_id, dd.decided_at, dd.id",
        ids_params,
    ):
        if status == "open":
            open_ids.add(int(signal_id))
        if token:
            decisions.setdefault(int(signal_id), []).append(
                {"decision": decision, "labels": _json_fragment(labels), "jws": token}
            )
    return open_ids, decisions


def live_audiences(signal_ids: Sequence[int]) -> list[tuple[int, int]]:
    """(audience, signal) for every audience that may see each signal now: where an
    opinion change must be written in the feed."""
    if not signal_ids:
        return []
    now = int(time.time())
    pairs = (
        CurrentStatement.objects.filter(signal_id__in=signal_ids)
        .filter(live_q(now))
        .values_list("audience", "signal_id")
        .distinct()
    )
    return list(cast(Iterable[tuple[int, int]], pairs))


def tombstone(*, signal_type: str, value: str, at: str) -> Snapshot:
    return {
        "signal_type": signal_type,
        "value": value,
        "deleted": True,
        "benign": False,
        "updated_at": at,
        "statements": [],
        "opinions": {
            "positive": 0,
            "negative": 0,
            "investigation": 0,
            "disputed": False,
            "mine": None,
        },
        "sightings": empty_summary(),
    }


def signal_find_query(*, signal_type: str, value: str) -> tuple[str, list[Any]]:
    """SQL and parameters of ``signal_find``, through the signals' digest index."""
    clause, params = signal_value_in([value])
    return (
        f"SELECT id, signal_type, value, created_at FROM exchange_signal "
        f"WHERE signal_type = %s AND {clause}",
        [signal_type, *params],
    )


def signal_find(*, signal_type: str, value: str) -> Signal | None:
    if "\x00" in signal_type or "\x00" in value:
        return None  # no canonical value holds NUL, and PostgreSQL refuses it in text
    sql, params = signal_find_query(signal_type=signal_type, value=value)
    return next(iter(Signal.objects.raw(sql, params)), None)


def signal_snapshot_for(*, member_id: int, signal_type: str, value: str) -> Snapshot | None:
    """The snapshot if the member may see the signal, else None (never say why).

    Absent and invisible take the same path (``visible_signal_ids``): no early exit
    when the value is unknown, which a query count or a timing would reveal.
    """
    if "\x00" in signal_type or "\x00" in value:
        return None  # not a canonical value of any type, for anybody
    reader = Reader(member_id)
    now = int(time.time())
    found = visible_signal_ids(reader=reader, signal_type=signal_type, values=[value], now=now)
    if value not in found:
        return None
    return snapshots(reader=reader, signal_ids=[found[value]], now=now).get(found[value])


def signal_values(signal_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    ids_clause, ids_params = in_list("id", signal_ids)
    return {
        int(r[0]): (r[1], r[2])
        for r in fetchall(
            f"SELECT id, signal_type, value FROM exchange_signal WHERE {ids_clause}",
            ids_params,
        )
    }


def feed_page(
    *, member_id: int, cursor: str | None, limit: int, replica: bool = False
) -> tuple[list[Snapshot], str, bool]:
    """One page of the member's change feed: snapshots, the next cursor, has_more.

    All of it is read in one snapshot, so the reader's groups, the rows and the
    snapshots agree: a membership change committed between two of those reads would
    otherwise let a page show a statement addressed to a group the member had left.
    With ``replica`` the page may come from the read replica (``forum/db_routing.py``),
    never from one older than the state the cursor's previous page was read from.

    A cursor from a history this database does not hold (a restore from an older
    backup) raises ``ResyncRequired`` before anything is read; that check reads the
    primary, the source of truth (a lagging replica may not hold the cursor's row yet).
    """
    current = Cursor.decode(cursor)
    cursor_check(current)
    with read_snapshot(at_least=current.watermark, replica=replica) as snapshot:
        changes, following, has_more = _feed_page(member_id, current, limit)
        if replica_configured():
            following.watermark = max(current.watermark, snapshot.position())
        # Anchored on a row of the state just read, so the fingerprint is that row's.
        issued = cursor_issue(following)
    return changes, issued, has_more


def _feed_page(member_id: int, current: Cursor, limit: int) -> tuple[list[Snapshot], Cursor, bool]:
    reader = Reader(member_id)
    scans = reader.scans(current)
    rows = feed_rows(scans, limit)
    has_more = len(rows) > limit
    rows = rows[:limit]
    last_seq = rows[-1].seq if rows else None

    # The last row of each signal decides its place in the page.
    ids = list(dict.fromkeys(row.signal_id for row in reversed(rows)))[::-1]
    visible = snapshots(reader=reader, signal_ids=ids)
    # A signal the reader does not see now is a tombstone only if one of its rows was
    # written while the reader was in that row's audience; otherwise it is left out,
    # since the reader could never have seen it.
    tombstone_at: dict[int, str] = {}
    if len(visible) < len(ids):
        for row in rows:
            if row.signal_id not in visible and reader.may_tombstone(row):
                tombstone_at[row.signal_id] = row.created_at
    values = signal_values(list(tombstone_at)) if tombstone_at else {}
    changes: list[Snapshot] = []
    for signal_id in ids:
        snap = visible.get(signal_id)
        if snap is not None:
            changes.append(snap)
        elif signal_id in values:
            signal_type, value = values[signal_id]
            changes.append(
                tombstone(signal_type=signal_type, value=value, at=tombstone_at[signal_id])
            )
    return changes, advance(current, scans, last_seq), has_more
