"""A freed member slot goes straight to one of the member's deferred endpoints.

The per-member cap (``CORDIALE_WEBHOOK_MAX_IN_FLIGHT_PER_MEMBER``) defers a member's
other deliveries; without a hand-off they came back only after the retry's jitter, and
the fan-out benchmark's latency tripled. These check the hand-off's rule with the real
cache and database: one freed slot wakes one deferred endpoint, once.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from exchange.webhooks.delivery import waking
from exchange.webhooks.endpoints import webhook_create
from tests.factories import make_party

pytestmark = pytest.mark.django_db


@pytest.fixture
def woken(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The endpoints the hand-off wakes, instead of queueing real deliveries."""
    calls: list[int] = []

    def record(*, endpoint_id: int, **_: Any) -> bool:
        calls.append(endpoint_id)
        return True

    monkeypatch.setattr(waking, "webhook_wake", record)
    return calls


@override_settings(CORDIALE_WEBHOOK_ALLOW_PRIVATE=True)
def test_a_freed_slot_wakes_one_deferred_endpoint_once(woken: list[int]) -> None:
    """Two of a member's endpoints were deferred: each freed slot wakes one of them, the
    two releases wake different ones, and a third release wakes nobody."""
    party = make_party("many")
    first, second, third = (
        webhook_create(member=party.member, url=f"http://127.0.0.1:9/{n}", actor="test")[0]
        for n in range(3)
    )
    waking.member_defer(member_id=party.member.pk, endpoint_id=second.pk)
    waking.member_defer(member_id=party.member.pk, endpoint_id=third.pk)

    handed = [waking.member_handoff(member_id=party.member.pk) for _ in range(3)]

    assert sorted(h for h in handed if h is not None) == [second.pk, third.pk]
    assert handed[2] is None
    assert sorted(woken) == [second.pk, third.pk]
    assert first.pk not in woken


@override_settings(CORDIALE_WEBHOOK_ALLOW_PRIVATE=True)
def test_another_members_deferral_is_not_handed_a_slot(woken: list[int]) -> None:
    """A slot freed by one member never wakes another member's deferred endpoint."""
    one, other = make_party("one"), make_party("other")
    webhook_create(member=one.member, url="http://127.0.0.1:9/a", actor="test")
    theirs = webhook_create(member=other.member, url="http://127.0.0.1:9/b", actor="test")[0]
    waking.member_defer(member_id=other.member.pk, endpoint_id=theirs.pk)

    assert waking.member_handoff(member_id=one.member.pk) is None
    assert woken == []
