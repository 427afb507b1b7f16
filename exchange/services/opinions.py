"""Opinions: a member's feedback on a signal it may see.

A member sets an opinion only on a signal it sees now, and withdraws its own whatever it
sees now: a signal that left its audiences keeps no opinion its author cannot remove.
Who counts whose opinion is a read rule, in ``exchange.selectors._opinion_summaries``.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from exchange.disputes.services import dispute_open_if_threshold
from exchange.feed import Reader, feed_append
from exchange.models import Opinion
from exchange.selectors import live_audiences, signal_find, visible_statements
from forum.errors import DomainError, NotFoundError
from members.models import Member

MAX_TAGS = 32
MAX_TAG_LENGTH = 64
MAX_REASON = 2000


def _visible_signal_id(member: Member, signal_type: str, value: str) -> int:
    # No signal contains NUL, and PostgreSQL refuses it in a query: a plain 404.
    storable = "\x00" not in signal_type and "\x00" not in value
    signal = signal_find(signal_type=signal_type, value=value) if storable else None
    if signal is None or not visible_statements(reader=Reader(member.pk), signal_ids=[signal.pk]):
        raise NotFoundError(f"No signal {signal_type}:{value} is visible to you.")
    return signal.pk


def opinion_set(
    *, member: Member, signal_type: str, value: str, category: str, tags: list[str], reason: str
) -> Opinion:
    if category not in Opinion.Category.values:
        raise DomainError(
            f"category must be one of {', '.join(Opinion.Category.values)}.",
            code="invalid_category",
        )
    if len(tags) > MAX_TAGS or any(not t or len(t) > MAX_TAG_LENGTH for t in tags):
        raise DomainError(
            f"At most {MAX_TAGS} tags of 1 to {MAX_TAG_LENGTH} characters.", code="invalid_tags"
        )
    if len(reason) > MAX_REASON:
        raise DomainError(f"reason is limited to {MAX_REASON} characters.", code="invalid_reason")
    with transaction.atomic():
        signal_id = _visible_signal_id(member, signal_type, value)
        opinion, _ = Opinion.objects.update_or_create(
            member=member,
            signal_id=signal_id,
            defaults={
                "category": category,
                "tags": tags,
                "reason": reason,
                "updated_at": timezone.now(),
            },
        )
        if category == Opinion.Category.NEGATIVE:
            # Before the feed append: it takes the audit chain's lock if it opens one.
            dispute_open_if_threshold(signal_id=signal_id)
        feed_append(live_audiences([signal_id]))
    return opinion


def opinion_delete(*, member: Member, signal_type: str, value: str) -> None:
    """Withdraw the member's opinion, whether or not it still sees the signal.

    NotFoundError if it has none: the same answer whether the signal exists, is hidden
    from the member or was never submitted, so that DELETE tells nothing of others'
    signals."""
    with transaction.atomic():
        signal = signal_find(signal_type=signal_type, value=value)
        deleted = 0
        if signal is not None:
            deleted, _ = Opinion.objects.filter(member=member, signal_id=signal.pk).delete()
        if signal is None or not deleted:
            raise NotFoundError("You have no opinion on a signal with this type and value.")
        feed_append(live_audiences([signal.pk]))
