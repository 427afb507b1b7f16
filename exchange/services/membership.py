"""What membership changes mean for the change feed.

Called by ``members.services`` inside their transactions; each records the feed rows
and audience periods that keep the feed's guarantees (see ``exchange/feed.py``).

Lock order. A membership change writes an audit entry and feed rows, so its transaction
holds both the audit chain's lock and the feed's until it commits. Two such transactions
that took them in opposite orders (approving a member: audit entries, then its feed
periods; expelling one: feed rows, then its audit entry) would each wait for the other
until PostgreSQL aborted one as a deadlock. ``membership_lock`` is therefore the one way
these functions take the feed lock: row locks first, then the audit chain, then the feed
(as late as possible, as ``feed_append`` wants). Feed writers that write no audit entry
(statements, opinions, the lapse sweep) take the feed lock alone and never wait for the
audit chain while holding it, so they cannot close a cycle either; disputes
(``exchange/disputes/services.py``, also when an opinion opens one by the threshold)
write their audit entry before their feed rows, in the same order.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from exchange.db import fetchall
from exchange.feed import FeedChange, before_change, feed_append, feed_head, feed_lock
from exchange.liveness import live, unexpired_sql
from exchange.models import (
    FORUM_AUDIENCE,
    AudiencePeriod,
    CurrentStatement,
    Opinion,
    Sighting,
    Statement,
)
from exchange.selectors import live_audiences
from exchange.services.lapse import statements_lapse_sweep
from members.audit import audit_chain_lock
from members.models import Member, SharingGroup, SigningKey

logger = logging.getLogger(__name__)


def membership_lock() -> None:
    """Take the audit chain's lock, then the feed's, until this transaction ends (see
    "Lock order" above); taking them again later in the transaction is free."""
    audit_chain_lock()
    feed_lock()


def _open_period(member_id: int, audience: int) -> None:
    membership_lock()
    if AudiencePeriod.objects.filter(
        member_id=member_id, audience=audience, end_seq__isnull=True
    ).exists():
        return
    AudiencePeriod.objects.create(member_id=member_id, audience=audience, start_seq=feed_head())


def _close_period(member_id: int, audience: int) -> None:
    membership_lock()
    AudiencePeriod.objects.filter(
        member_id=member_id, audience=audience, end_seq__isnull=True
    ).update(end_seq=feed_head())


def member_joined_forum(*, member: Member) -> None:
    """From now on the member reads the forum; older rows give it no tombstones."""
    _open_period(member.pk, FORUM_AUDIENCE)
    for group_id in member.groups.values_list("pk", flat=True):
        _open_period(member.pk, group_id)


def member_joined_group(*, group: SharingGroup, member_id: int) -> None:
    """The member's cursor has no position for this new period: it reads the group from
    the start and so receives the group's current signals."""
    _open_period(member_id, group.pk)
    feed_append(_opinion_rows(group.pk, member_id))


def _opinion_rows(audience: int, member_id: int) -> list[FeedChange]:
    """Rows for the signals live in ``audience`` on which the member has an opinion or
    a sighting report: it starts or stops counting for that audience's readers (see
    ``exchange.selectors._opinion_summaries``, ``exchange.sightings.summaries``)."""
    rows = fetchall(
        "SELECT DISTINCT cs.signal_id FROM exchange_currentstatement cs "
        f"WHERE cs.audience = %s AND {unexpired_sql('cs')} AND ("
        "EXISTS (SELECT 1 FROM exchange_opinion o "
        "WHERE o.signal_id = cs.signal_id AND o.member_id = %s) OR "
        "EXISTS (SELECT 1 FROM exchange_sighting g "
        "WHERE g.signal_id = cs.signal_id AND g.member_id = %s))",
        [audience, int(time.time()), member_id, member_id],
    )
    return [(audience, int(r[0])) for r in rows]


def member_left_group(*, group: SharingGroup, member_id: int) -> None:
    """Tombstones for what the member saw only through the group."""
    period = (
        AudiencePeriod.objects.filter(member_id=member_id, audience=group.pk, end_seq__isnull=True)
        .order_by("-start_seq")
        .first()
    )
    if period is None:
        return
    # Lapses not yet recorded are written to the group's feed while the member still
    # reads it; after it leaves, the sweep's rows would not reach it.
    membership_lock()
    statements_lapse_sweep(audience=group.pk)
    _close_period(member_id, group.pk)
    rows = fetchall(
        "SELECT DISTINCT signal_id FROM exchange_currentstatement "
        f"WHERE audience = %s AND {unexpired_sql('')}",
        [group.pk, int(time.time())],
    )
    feed_append([*((-member_id, int(r[0])) for r in rows), *_opinion_rows(group.pk, member_id)])


# Statements withdrawn per step. Withdrawing is set-based (a few statements per step,
# whatever its size) and an expulsion commits each step on its own, so memory and the
# time the feed lock is held stay bounded by the step for a member of any size.
WITHDRAW_CHUNK = 2_000


def _withdraw_chunk(statements: Q, reason: str, *, after: int, restore: bool) -> tuple[int, int]:
    """Withdraw the next ``WITHDRAW_CHUNK`` standing statements (by id, past ``after``)
    matched by ``statements``, in the caller's transaction: a withdrawn current assertion
    stops being visible, and its audience gets its feed row in the same transaction.
    Returns how many were withdrawn and the last id (0, ``after`` when none were left).

    With ``restore``, a member's current statement that is withdrawn gives way to its
    newest statement on the signal that still stands (see ``_restore``).
    """
    ids = list(
        Statement.objects.filter(statements, withdrawn_at__isnull=True, pk__gt=after)
        .order_by("pk")
        .values_list("pk", flat=True)[:WITHDRAW_CHUNK]
    )
    if not ids:
        return 0, after
    now = timezone.now()
    epoch = int(now.timestamp())
    Statement.objects.filter(pk__in=ids).update(withdrawn_at=now, withdrawn_reason=reason)
    current = CurrentStatement.objects.filter(statement_id__in=ids)
    replaced = list(current.values_list("member_id", "signal_id")) if restore else []
    held = current.filter(audience__isnull=False)
    rows: list[FeedChange] = []
    for audience, signal_id, exp, lapsed in held.values_list(
        "audience", "signal_id", "exp", "lapsed"
    ):
        owed = before_change(audience, exp, lapsed, epoch)
        if owed is not None:
            rows.append((owed[0], signal_id, owed[1]))
    held.update(audience=None)
    rows.extend(_restore(replaced, epoch))
    membership_lock()
    feed_append(rows, now=now)
    return len(ids), ids[-1]


def _withdraw(statements: Q, reason: str, *, restore: bool = False) -> int:
    """Withdraw statements in the caller's transaction, a chunk at a time; how many."""
    total, after = 0, 0
    while True:
        count, after = _withdraw_chunk(statements, reason, after=after, restore=restore)
        if not count:
            return total
        total += count


def _restore(pairs: list[tuple[int, int]], now: int) -> list[FeedChange]:
    """Make each (member, signal)'s newest standing statement current again.

    A thief who replaced a member's assertion (or retracted it) with a stolen key must
    not take the member's own earlier word down with its own: once the thief's
    statement is withdrawn, the newest statement the member made that still stands
    counts again, as if the thief's had never arrived. Returns the feed rows owed to
    the audience that sees it again.
    """
    rows: list[FeedChange] = []
    by_member: dict[int, list[int]] = {}
    for member_id, signal_id in pairs:
        by_member.setdefault(member_id, []).append(signal_id)
    for member_id, signal_ids in by_member.items():
        standing = (
            Statement.objects.filter(
                member_id=member_id, signal_id__in=signal_ids, withdrawn_at__isnull=True
            )
            .order_by("signal_id", "-iat", "-id")
            .values_list("signal_id", "id", "iat", "op", "group_id", "exp")
        )
        newest: dict[int, tuple[int, int, str, int | None, int | None]] = {}
        for signal_id, pk, iat, op, group_id, exp in standing:
            newest.setdefault(signal_id, (pk, iat, op, group_id, exp))
        for signal_id, (pk, iat, op, group, expires) in newest.items():
            audience: int | None = None
            if op == Statement.Op.ASSERT:
                audience = group if group is not None else FORUM_AUDIENCE
            visible = audience is not None and live(expires, now)
            CurrentStatement.objects.filter(member_id=member_id, signal_id=signal_id).update(
                statement_id=pk,
                iat=iat,
                audience=audience,
                exp=expires if audience is not None else None,
                # Lapsed before it came back: nobody is owed a lapse row for it.
                lapsed=audience is not None and not visible,
            )
            if visible:
                assert audience is not None
                rows.append((audience, signal_id))
    return rows


def member_expelled(*, member: Member) -> None:
    """The member's opinions stop counting and it stops reading the feed; its statements
    go next, with ``member_statements_withdraw`` once this transaction committed."""
    now = timezone.now()
    opinions = Opinion.objects.filter(member=member)
    signal_ids = list(opinions.values_list("signal_id", flat=True))
    opinions.delete()
    # Its sighting reports stay, for the transparency report, but stop counting.
    signal_ids += list(
        Sighting.objects.filter(member=member).values_list("signal_id", flat=True).distinct()
    )
    membership_lock()
    feed_append(live_audiences(signal_ids), now=now)
    for audience in AudiencePeriod.objects.filter(member=member, end_seq__isnull=True).values_list(
        "audience", flat=True
    ):
        _close_period(member.pk, audience)


def member_statements_withdraw(*, member_id: int) -> int:
    """Withdraw every statement of an expelled member from everyone's view (kept for the
    audit), one transaction per chunk; returns how many. Idempotent: run again, it
    finishes a withdrawal that was interrupted.

    Each chunk withdraws its statements and writes their feed rows in one transaction,
    so a reader sees every signal either still asserted by the member or gone with its
    tombstone, never one without the other; a large member's statements go over a few
    seconds instead of in one transaction holding the feed lock throughout.
    """
    total, after = 0, 0
    while True:
        with transaction.atomic():
            count, after = _withdraw_chunk(
                Q(member_id=member_id), "member_expelled", after=after, restore=False
            )
        if not count:
            return total
        total += count
        logger.info("member %s expelled: %d statements withdrawn so far", member_id, total)


def key_compromised(*, key: SigningKey, since: datetime) -> int:
    """Withdraw what the forum *received* from the key at or after ``since``, whatever
    ``iat`` it claims: whoever holds a stolen key writes any ``iat`` they like, but not
    the receipt time. Returns how many statements were withdrawn."""
    return _withdraw(Q(signing_key=key, received_at__gte=since), "key_compromised", restore=True)
