"""Each visibility transition, one scenario at a time, through the HTTP API.

The property test (test_feed_convergence.py) explores random histories; these pin each
rule down: who gets a snapshot, who gets a tombstone, and who gets nothing at all.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from exchange.services.lapse import statements_lapse_sweep
from members.models import Member, SigningKey
from members.services import member_set_status, sharing_group_set_members, signing_key_revoke
from tests.factories import ACTOR, Party, make_group, make_party, pdq

pytestmark = pytest.mark.django_db


class Follower:
    """A member following its feed through the API, with a replica."""

    def __init__(self, party: Party) -> None:
        self.party = party
        self.cursor: str | None = None
        self.replica: dict[str, dict[str, Any]] = {}
        self.seen: set[str] = set()  # every value ever received, tombstones included

    def sync(self, limit: int = 3) -> list[dict[str, Any]]:
        received = []
        while True:
            params: dict[str, Any] = {"limit": limit}
            if self.cursor:
                params["cursor"] = self.cursor
            response = self.party.get("/api/v1/changes", **params)
            assert response.status_code == 200, response.content
            body = response.json()
            for change in body["changes"]:
                received.append(change)
                self.seen.add(change["value"])
                if change["deleted"]:
                    self.replica.pop(change["value"], None)
                else:
                    self.replica[change["value"]] = change
            self.cursor = body["cursor"]
            if not body["has_more"]:
                return received


def now() -> int:
    return int(time.time())


def test_group_statement_reaches_members_only() -> None:
    """A group-only statement reaches the group; outsiders see nothing, not even a
    tombstone, and their lookup is the plain 404."""
    a, b, c = make_party(), make_party(), make_party()
    group = make_group("g-only", a, b)
    value = pdq()
    a.submit(a.statement("pdq", value, audience=f"group:{group.slug}"))
    fb, fc = Follower(b), Follower(c)
    fb.sync()
    fc.sync()
    assert value in fb.replica
    assert value not in fc.seen
    assert c.get(f"/api/v1/signals/pdq/{value}").status_code == 404
    a.submit(a.statement("pdq", value, op="retract", iat=now() + 1))
    fb.sync()
    fc.sync()
    assert value not in fb.replica
    assert value not in fc.seen


def test_leaving_a_group_tombstones_what_it_saw_only_there() -> None:
    """After leaving, the member gets tombstones for group-only signals, and keeps the
    ones it still sees through the forum."""
    a, b = make_party(), make_party()
    group = make_group("leavers", a, b)
    only_group, also_forum = pdq(), pdq()
    a.submit(
        a.statement("pdq", only_group, audience=f"group:{group.slug}"),
        a.statement("pdq", also_forum, audience=f"group:{group.slug}"),
    )
    c = make_party()
    c.submit(c.statement("pdq", also_forum))
    fb = Follower(b)
    fb.sync()
    assert {only_group, also_forum} <= set(fb.replica)
    sharing_group_set_members(group=group, members=[a.member], actor=ACTOR)
    fb.sync()
    assert only_group not in fb.replica
    assert also_forum in fb.replica
    assert [s["member"] for s in fb.replica[also_forum]["statements"]] == [c.slug]
    assert b.get(f"/api/v1/signals/pdq/{only_group}").status_code == 404


def test_joining_a_group_brings_its_current_signals_but_no_old_tombstones() -> None:
    """A joiner receives what the group sees now, including what was said before it
    joined, and nothing about what the group stopped seeing before."""
    a, b = make_party(), make_party()
    group = make_group("joiners", a)
    current, retracted = pdq(), pdq()
    a.submit(
        a.statement("pdq", current, audience=f"group:{group.slug}"),
        a.statement("pdq", retracted, audience=f"group:{group.slug}", iat=now() - 5),
    )
    a.submit(a.statement("pdq", retracted, op="retract"))
    fb = Follower(b)
    fb.sync()
    assert not fb.seen & {current, retracted}
    sharing_group_set_members(group=group, members=[a.member, b.member], actor=ACTOR)
    fb.sync()
    assert current in fb.replica
    assert retracted not in fb.seen


def test_new_member_gets_no_tombstones_from_before_it_joined() -> None:
    """A member activated after a forum signal was retracted never hears of it."""
    a = make_party()
    gone, kept = pdq(), pdq()
    a.submit(a.statement("pdq", gone, iat=now() - 5), a.statement("pdq", kept))
    a.submit(a.statement("pdq", gone, op="retract"))
    late = Follower(make_party())
    late.sync(limit=1)
    assert kept in late.replica
    assert gone not in late.seen


def test_lapse_recorded_after_a_member_joined_gives_it_no_tombstone() -> None:
    """The sweep's tombstone reaches members who saw the assertion before it lapsed,
    not one that joined after the lapse."""
    a, early = make_party(), make_party()
    value = pdq()
    exp = now() + 4
    a.submit(a.statement("pdq", value, iat=now() - 30, exp=exp))
    fe = Follower(early)
    fe.sync()
    assert value in fe.replica
    time.sleep(max(0.0, exp - time.time()) + 1.1)  # it lapses; nobody has swept yet
    late = Follower(make_party())
    late.sync()
    assert value not in late.seen
    statements_lapse_sweep()
    fe.sync()
    late.sync()
    assert value not in fe.replica and value in fe.seen
    assert value not in late.seen


def test_expelled_member_statements_become_tombstones() -> None:
    """Expulsion withdraws the member's statements from everyone's view."""
    a, b = make_party(), make_party()
    value = pdq()
    a.submit(a.statement("pdq", value))
    fb = Follower(b)
    fb.sync()
    member_set_status(member=a.member, status=Member.Status.EXPELLED, actor=ACTOR)
    fb.sync()
    assert value not in fb.replica and value in fb.seen
    assert a.get("/api/v1/changes").status_code == 403


def test_compromised_key_withdraws_only_from_the_compromise_on() -> None:
    """Statements received before the compromise time stay; later ones are tombstoned,
    whatever iat they claim."""
    from datetime import UTC, datetime

    from exchange.models import Statement

    a, b = make_party(), make_party()
    before, after = pdq(), pdq()
    t = now()
    a.submit(a.statement("pdq", before, iat=t - 10), a.statement("pdq", after, iat=t - 100))
    Statement.objects.filter(signal__value=before).update(
        received_at=datetime.fromtimestamp(t - 60, UTC)
    )
    fb = Follower(b)
    fb.sync()
    signing_key_revoke(
        key=SigningKey.objects.get(kid=a.kid),
        compromised_since=datetime.fromtimestamp(t - 50, UTC),
        actor=ACTOR,
    )
    fb.sync()
    assert before in fb.replica
    assert after not in fb.replica and after in fb.seen


def test_opinion_change_reaches_followers() -> None:
    """An opinion is a change of the signal: followers see the new counts."""
    a, b = make_party(), make_party()
    value = pdq()
    a.submit(a.statement("pdq", value))
    fa = Follower(a)
    fa.sync()
    response = b.client.put(
        f"/api/v1/opinions/pdq/{value}", {"category": "negative"}, format="json"
    )
    assert response.status_code == 200, response.content
    changes = fa.sync()
    assert [c["opinions"]["negative"] for c in changes] == [1]


def test_lookup_404_is_the_same_for_invisible_and_unknown() -> None:
    """Same status and body (apart from the path) whether nobody submitted the value
    or the caller may not see it."""
    a, b, c = make_party(), make_party(), make_party()
    group = make_group("secret", a, b)
    hidden, unknown = pdq(), pdq()
    a.submit(a.statement("pdq", hidden, audience=f"group:{group.slug}"))
    r1 = c.get(f"/api/v1/signals/pdq/{hidden}")
    r2 = c.get(f"/api/v1/signals/pdq/{unknown}")
    assert r1.status_code == r2.status_code == 404
    assert r1["Content-Type"] == r2["Content-Type"] == "application/problem+json"
    assert r1.json() == r2.json()


def test_paging_with_limit_one_visits_every_signal_once() -> None:
    """A follower with limit=1 sees every signal, with has_more until the end."""
    a, b = make_party(), make_party()
    values = [pdq() for _ in range(7)]
    a.submit(*[a.statement("pdq", v) for v in values])
    fb = Follower(b)
    received = fb.sync(limit=1)
    assert [c["value"] for c in received] == values


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"cursor": "eyJ2IjoyfQ"}, "invalid_cursor"),
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "10001"}, "invalid_limit"),
        ({"limit": "ten"}, "invalid_limit"),
    ],
)
def test_bad_cursor_or_limit_is_a_problem(params: dict[str, str], code: str) -> None:
    """Bad paging parameters are 400 problems with a stable code."""
    response = make_party().get("/api/v1/changes", **params)
    assert response.status_code == 400
    assert response.json()["code"] == code
