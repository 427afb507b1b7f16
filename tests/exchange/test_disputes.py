"""Disputes over HTTP with several members and groups (issue #18, items 1 and 2).

A member that sees a signal opens a dispute on it; negative opinions of N distinct
members open one by themselves. A dispute follows its signal's visibility: nobody
outside the signal's audience learns of it (list, detail, the 404 of a hidden signal is
the lookup's). Only a member whose statement is disputed responds. The snapshot says
``opinions.disputed`` while a dispute is open, and the feed carries the change.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from exchange.models import Dispute, DisputeParty
from members.services import sharing_group_set_members
from tests.factories import Party, make_group, make_party, pdq
from tests.members.problems import assert_problem

pytestmark = pytest.mark.django_db

NOW = int(time.time())


def open_dispute(party: Party, value: str, **fields: Any) -> Any:
    body = {"signal_type": "pdq", "value": value, "grounds": "not_tvec", "reason": "A news photo."}
    body.update(fields)
    return party.client.post("/api/v1/disputes", body, format="json")


def follow(party: Party, cursor: str | None = None) -> tuple[dict[str, Any], str]:
    """Follow the feed to its end: the last snapshot of each value, and the cursor."""
    latest: dict[str, Any] = {}
    while True:
        page = party.get("/api/v1/changes", **({"cursor": cursor} if cursor else {})).json()
        for change in page["changes"]:
            latest[change["value"]] = change
        cursor = page["cursor"]
        if not page["has_more"]:
            return latest, cursor


def without_instance(response: Any) -> dict[str, Any]:
    return {k: v for k, v in response.json().items() if k != "instance"}


def test_a_member_opens_a_dispute_and_every_reader_learns_through_the_feed() -> None:
    """A member that sees a signal opens a dispute (201, status open); the signal's
    snapshot says ``disputed`` for every reader, on lookup and through the feed, which
    carries the change to a member that had already caught up."""
    acme, globex, initech = (make_party(s) for s in ("acme", "globex", "initech"))
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 5))
    latest, cursor = follow(initech)
    assert latest[value]["opinions"]["disputed"] is False

    response = open_dispute(globex, value, proposed_labels=["incitement"])
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "open"
    assert body["mine"] is True and body["party"] is False
    assert body["opened_by"] == "member"
    assert body["proposed_labels"] == ["incitement"]
    assert body["decision"] is None

    acme_view = acme.get(f"/api/v1/disputes/{body['id']}").json()
    assert acme_view["party"] is True and acme_view["mine"] is False
    assert "globex" not in str(acme_view)  # the opener is never named
    assert acme.get(f"/api/v1/signals/pdq/{value}").json()["opinions"]["disputed"] is True
    latest, _ = follow(initech, cursor)
    assert latest[value]["opinions"]["disputed"] is True
    assert latest[value]["decisions"] == []


def test_a_dispute_on_a_hidden_or_unknown_signal_is_the_lookups_404() -> None:
    """Opening a dispute on a value the caller may not see, or that nobody submitted,
    answers the same 404 body as looking either up: no oracle, and nothing is stored."""
    acme, globex, outsider = (make_party(s) for s in ("acme", "globex", "outsider"))
    make_group("pair", acme, globex)
    hidden, unknown = pdq(), pdq()
    acme.submit(acme.statement("pdq", hidden, audience="group:pair", iat=NOW - 5))

    bodies = []
    for value in (hidden, unknown):
        response = open_dispute(outsider, value)
        assert_problem(response, 404, "not_found")
        bodies.append(without_instance(response))
        lookup = outsider.get(f"/api/v1/signals/pdq/{value}")
        assert lookup.status_code == 404
        bodies.append(without_instance(lookup))
    assert bodies[0] == bodies[1] == bodies[2] == bodies[3]
    assert not Dispute.objects.exists()
    assert open_dispute(globex, hidden).status_code == 201


def test_no_dispute_is_visible_outside_the_signals_audience() -> None:
    """A dispute on a group's signal is listed and shown to the group's members only;
    to an outsider its id is the same 404 as an id that does not exist. A member that
    leaves the group stops seeing it."""
    acme, globex, leaver, outsider = (make_party(s) for s in ("acme", "globex", "leaver", "out"))
    group = make_group("trio", acme, globex, leaver)
    value = pdq()
    acme.submit(acme.statement("pdq", value, audience="group:trio", iat=NOW - 5))
    dispute_id = open_dispute(globex, value).json()["id"]

    for party in (acme, globex, leaver):
        assert [d["id"] for d in party.get("/api/v1/disputes").json()["disputes"]] == [dispute_id]
        assert party.get(f"/api/v1/disputes/{dispute_id}").status_code == 200
    assert outsider.get("/api/v1/disputes").json() == {"disputes": [], "next": None}
    hidden = outsider.get(f"/api/v1/disputes/{dispute_id}")
    missing = outsider.get(f"/api/v1/disputes/{dispute_id + 1000}")
    assert_problem(hidden, 404, "not_found")
    assert without_instance(hidden) == without_instance(missing)
    response = outsider.client.post(
        f"/api/v1/disputes/{dispute_id}/responses", {"text": "hi"}, format="json"
    )
    assert without_instance(response) == without_instance(missing)

    sharing_group_set_members(group=group, members=[acme.member, globex.member], actor="test")
    assert leaver.get(f"/api/v1/disputes/{dispute_id}").status_code == 404
    assert leaver.get("/api/v1/disputes").json()["disputes"] == []


def test_the_list_is_bounded_and_pages_newest_first() -> None:
    """``limit`` bounds a page, ``next`` continues it, ``status`` filters; bad
    parameters are 400 problems."""
    acme, globex = make_party("acme"), make_party("globex")
    values = [pdq() for _ in range(3)]
    acme.submit(*(acme.statement("pdq", v, iat=NOW - 5) for v in values))
    ids = [open_dispute(globex, v).json()["id"] for v in values]

    first = globex.get("/api/v1/disputes", limit=2).json()
    assert [d["id"] for d in first["disputes"]] == ids[::-1][:2]
    second = globex.get("/api/v1/disputes", limit=2, before=first["next"]).json()
    assert [d["id"] for d in second["disputes"]] == ids[:1]
    assert second["next"] is None
    assert len(globex.get("/api/v1/disputes", status="open").json()["disputes"]) == 3
    assert globex.get("/api/v1/disputes", status="decided").json()["disputes"] == []
    assert_problem(globex.get("/api/v1/disputes", status="closed"), 400, "invalid_filter")
    assert_problem(globex.get("/api/v1/disputes", limit=1000), 400, "invalid_limit")
    assert_problem(globex.get("/api/v1/disputes", before="x"), 400, "invalid_cursor")


def test_one_open_dispute_per_signal_and_bad_input_are_problems() -> None:
    """A second dispute on a signal with an open one is 409 ``dispute_exists``; unknown
    grounds, a missing reason, unknown labels and malformed values are 400 problems
    with their own codes, and change nothing."""
    acme, globex, initech = (make_party(s) for s in ("acme", "globex", "initech"))
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 5))
    assert_problem(open_dispute(globex, value, grounds="boring"), 400, "invalid_grounds")
    assert_problem(open_dispute(globex, value, reason=" "), 400, "invalid_reason")
    assert_problem(
        open_dispute(globex, value, proposed_labels=["no-such-label"]), 400, "unknown_label"
    )
    assert_problem(open_dispute(globex, "XYZ"), 400, "invalid_value")
    assert_problem(open_dispute(globex, value, signal_type="nope"), 400, "unknown_signal_type")
    assert_problem(
        globex.client.post("/api/v1/disputes", {"value": value}, format="json"),
        400,
        "invalid_request",
    )
    assert not Dispute.objects.exists()

    assert open_dispute(globex, value).status_code == 201
    assert_problem(open_dispute(initech, value), 409, "dispute_exists")
    assert_problem(open_dispute(globex, value), 409, "dispute_exists")
    assert Dispute.objects.count() == 1


def test_only_a_disputed_member_responds_and_others_see_it_only_with_its_statement() -> None:
    """The disputed statements are those the opener saw: their members respond (201);
    a member that sees the dispute but whose statement was not disputed gets 403
    ``not_a_party``. A response is shown to readers who see one of the responder's
    statements, never to one that does not (it would reveal the statement)."""
    acme, globex, hooli, initech = (make_party(s) for s in ("acme", "globex", "hooli", "initech"))
    make_group("pair", globex, hooli)
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 5))
    globex.submit(globex.statement("pdq", value, audience="group:pair", iat=NOW - 5))
    dispute_id = open_dispute(initech, value).json()["id"]
    assert set(DisputeParty.objects.values_list("member__slug", flat=True)) == {"acme"}

    url = f"/api/v1/disputes/{dispute_id}/responses"
    response = acme.client.post(url, {"text": "Seen in recruitment videos."}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["member"] == "acme"
    assert_problem(globex.client.post(url, {"text": "me too"}, format="json"), 403, "not_a_party")
    assert_problem(acme.client.post(url, {"text": ""}, format="json"), 400, "invalid_text")

    for party in (initech, hooli, globex):
        view = party.get(f"/api/v1/disputes/{dispute_id}").json()
        assert [r["member"] for r in view["responses"]] == ["acme"]


def test_a_response_for_a_group_statement_stays_in_the_group() -> None:
    """A dispute opened inside a group disputes the group's statement too; its member's
    response is not shown to a forum reader, who cannot see that statement."""
    acme, globex, hooli, initech = (make_party(s) for s in ("acme", "globex", "hooli", "initech"))
    make_group("pair", globex, hooli)
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 5))
    globex.submit(globex.statement("pdq", value, audience="group:pair", iat=NOW - 5))
    dispute_id = open_dispute(hooli, value).json()["id"]
    url = f"/api/v1/disputes/{dispute_id}/responses"
    assert globex.client.post(url, {"text": "ours"}, format="json").status_code == 201

    assert [r["member"] for r in hooli.get(url[: -len("/responses")]).json()["responses"]] == [
        "globex"
    ]
    initech_view = initech.get(f"/api/v1/disputes/{dispute_id}").json()
    assert initech_view["responses"] == []
    assert "globex" not in str(initech_view)


def test_negative_opinions_of_n_members_open_a_dispute(settings: Any) -> None:
    """With the threshold at 3, two negative opinions open nothing; the third distinct
    member's does (opened by the threshold, every live statement's member a party);
    further negatives add no second dispute."""
    settings.CORDIALE_DISPUTE_NEGATIVE_THRESHOLD = 3
    acme, *others = (make_party(s) for s in ("acme", "b", "c", "d", "e"))
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 5))

    def negative(party: Party) -> None:
        response = party.client.put(
            f"/api/v1/opinions/pdq/{value}", {"category": "negative"}, format="json"
        )
        assert response.status_code == 200, response.content

    negative(others[0])
    negative(others[1])
    negative(others[1])  # the same member again is no new voice
    assert not Dispute.objects.exists()
    assert acme.get(f"/api/v1/signals/pdq/{value}").json()["opinions"]["disputed"] is False
    negative(others[2])
    [dispute] = Dispute.objects.all()
    assert dispute.opener is None
    assert list(dispute.parties.values_list("member__slug", flat=True)) == ["acme"]
    view = acme.get(f"/api/v1/disputes/{dispute.pk}").json()
    assert view["opened_by"] == "threshold" and view["party"] is True
    negative(others[3])
    assert Dispute.objects.count() == 1
    assert acme.get(f"/api/v1/signals/pdq/{value}").json()["opinions"]["disputed"] is True


def test_a_disputed_member_retracts_with_a_normal_retraction() -> None:
    """A party retracts its statement the usual way: the signal is a tombstone for the
    readers who saw it, and the dispute, on a signal nobody sees any more, is no longer
    shown to anyone."""
    acme, globex = make_party("acme"), make_party("globex")
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 10))
    _, cursor = follow(globex)
    dispute_id = open_dispute(globex, value).json()["id"]
    body = acme.submit(acme.statement("pdq", value, op="retract", iat=NOW - 5))
    assert body["accepted"] == 1
    latest, _ = follow(globex, cursor)
    assert latest[value]["deleted"] is True
    assert globex.get(f"/api/v1/disputes/{dispute_id}").status_code == 404
