"""How opinions count across audiences, and withdrawing one's own (issue #13, item 6).

An opinion counts for a reader only while its author is in an audience through which
the reader sees the signal now: counts never tell a member what members of a group it
is not in think of a signal, nor keep counting members who no longer see it. The feed
converges to those counts. A member withdraws its own opinion (DELETE) whatever it
sees now; without an opinion, DELETE answers the same 404 whether or not the signal
exists or is visible.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from exchange.models import Opinion
from members.services import sharing_group_set_members
from tests.factories import Party, make_group, make_party, pdq

pytestmark = pytest.mark.django_db

NOW = int(time.time())


def _put(party: Party, value: str, category: str) -> None:
    response = party.client.put(
        f"/api/v1/opinions/pdq/{value}", {"category": category}, format="json"
    )
    assert response.status_code == 200, response.content


def _counts(party: Party, value: str) -> tuple[int, int, int]:
    response = party.get(f"/api/v1/signals/pdq/{value}")
    assert response.status_code == 200, response.content
    o = response.json()["opinions"]
    return o["positive"], o["negative"], o["investigation"]


def _follow(party: Party, cursor: str | None = None) -> tuple[dict[str, Any], str]:
    """Follow the feed to its end; the last snapshot of each value, and the cursor."""
    latest: dict[str, Any] = {}
    while True:
        page = party.get("/api/v1/changes", **({"cursor": cursor} if cursor else {})).json()
        for change in page["changes"]:
            latest[change["value"]] = change
        cursor = page["cursor"]
        if not page["has_more"]:
            return latest, cursor


def test_opinions_from_another_groups_members_do_not_count() -> None:
    """A signal shared in two groups: a reader in one sees only the opinions of members
    of the audiences it shares, never those of the other group's members."""
    acme, reader, globex, outsider = (make_party(s) for s in ("acme", "reader", "globex", "out"))
    make_group("one", acme, reader)
    make_group("two", globex, outsider)
    value = pdq()
    acme.submit(acme.statement("pdq", value, audience="group:one", iat=NOW - 5))
    globex.submit(globex.statement("pdq", value, audience="group:two", iat=NOW - 5))

    _put(outsider, value, "negative")
    _put(acme, value, "positive")

    assert _counts(reader, value) == (1, 0, 0)
    assert _counts(globex, value) == (0, 1, 0)
    latest, _ = _follow(reader)
    assert latest[value]["opinions"]["negative"] == 0


def test_opinion_stops_counting_when_its_author_leaves_and_the_feed_follows() -> None:
    """A member that leaves the group stops counting for the group's readers, and comes
    back when it rejoins; a reader following the feed converges to each count."""
    acme, reader, leaver = (make_party(s) for s in ("acme", "reader", "leaver"))
    group = make_group("pair", acme, reader, leaver)
    value = pdq()
    acme.submit(acme.statement("pdq", value, audience="group:pair", iat=NOW - 5))
    _put(leaver, value, "negative")
    latest, cursor = _follow(reader)
    assert latest[value]["opinions"]["negative"] == 1

    sharing_group_set_members(group=group, members=[acme.member, reader.member], actor="test")
    assert _counts(reader, value) == (0, 0, 0)
    latest, cursor = _follow(reader, cursor)
    assert latest[value]["opinions"]["negative"] == 0

    sharing_group_set_members(
        group=group, members=[acme.member, reader.member, leaver.member], actor="test"
    )
    assert _counts(reader, value) == (0, 1, 0)
    latest, _ = _follow(reader, cursor)
    assert latest[value]["opinions"]["negative"] == 1


def test_forum_opinions_count_for_everyone() -> None:
    """On a forum signal every active member's opinion counts for every reader."""
    acme, globex, initech = (make_party(s) for s in ("acme", "globex", "initech"))
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 5))
    _put(globex, value, "negative")
    _put(initech, value, "investigation")
    assert _counts(acme, value) == (0, 1, 1)


def test_withdraw_own_opinion_after_the_signal_left_its_audience() -> None:
    """A member that no longer sees a signal still withdraws its opinion (204); the
    opinion is gone when the signal becomes visible again."""
    acme, leaver, reader = (make_party(s) for s in ("acme", "leaver", "reader"))
    group = make_group("pair", acme, leaver, reader)
    value = pdq()
    acme.submit(acme.statement("pdq", value, audience="group:pair", iat=NOW - 10))
    _put(leaver, value, "negative")
    sharing_group_set_members(group=group, members=[acme.member, reader.member], actor="test")
    assert leaver.get(f"/api/v1/signals/pdq/{value}").status_code == 404

    response = leaver.client.delete(f"/api/v1/opinions/pdq/{value}")
    assert response.status_code == 204, response.content
    assert not Opinion.objects.filter(member=leaver.member).exists()

    acme.submit(acme.statement("pdq", value, audience="forum", iat=NOW - 5))
    assert _counts(reader, value) == (0, 0, 0)
    assert leaver.get(f"/api/v1/signals/pdq/{value}").json()["opinions"]["mine"] is None


def test_delete_without_an_opinion_is_the_same_404_whatever_the_signal() -> None:
    """Without an opinion, DELETE answers one 404 body for a visible signal, a hidden
    one and a value nobody submitted: it is no oracle for others' signals."""
    acme, globex, initech = (make_party(s) for s in ("acme", "globex", "initech"))
    make_group("pair", acme, globex)
    visible, hidden, unknown = pdq(), pdq(), pdq()
    acme.submit(
        acme.statement("pdq", visible, iat=NOW - 5),
        acme.statement("pdq", hidden, audience="group:pair", iat=NOW - 5),
    )
    _put(globex, hidden, "positive")
    bodies = []
    for value in (visible, hidden, unknown):
        response = initech.client.delete(f"/api/v1/opinions/pdq/{value}")
        assert response.status_code == 404, response.content
        assert response["Content-Type"].startswith("application/problem+json")
        body = response.json()
        bodies.append({k: v for k, v in body.items() if k != "instance"})
    assert bodies[0] == bodies[1] == bodies[2]
    assert _counts(globex, hidden) == (1, 0, 0)
