"""Opinions: PUT/DELETE /api/v1/opinions/<type>/<value> (scope ``feedback``).

A member sets or withdraws its opinion on a signal it may see; on one it may not see it
gets the same 404 as for a value nobody submitted. Snapshots count opinions per
category, flag ``disputed`` (positive and negative at once) and show the caller's own as
``mine``. An opinion change reaches every member that may see the signal via the feed.
"""

from __future__ import annotations

import time

import pytest

from tests.factories import Party, make_group, make_party, pdq

pytestmark = pytest.mark.django_db

NOW = int(time.time())


def _put(party: Party, value: str, **body: object) -> object:
    return party.client.put(f"/api/v1/opinions/pdq/{value}", body, format="json")


def _opinions(party: Party, value: str) -> dict[str, object]:
    response = party.get(f"/api/v1/signals/pdq/{value}")
    assert response.status_code == 200
    return dict(response.json()["opinions"])


@pytest.fixture
def trio() -> tuple[Party, Party, Party]:
    return make_party("acme"), make_party("globex"), make_party("initech")


def test_put_sets_and_replaces_delete_withdraws(trio: tuple[Party, Party, Party]) -> None:
    """PUT sets the caller's opinion (a second PUT replaces it), DELETE withdraws it (204)."""
    acme, globex, _ = trio
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 5))
    response = _put(globex, value, category="negative", tags=["fp"], reason="a cat")
    assert response.status_code == 200
    assert response.json() == {
        "signal_type": "pdq",
        "value": value,
        "category": "negative",
        "tags": ["fp"],
        "reason": "a cat",
    }
    assert _opinions(globex, value)["mine"] == {
        "category": "negative",
        "tags": ["fp"],
        "reason": "a cat",
    }
    assert _put(globex, value, category="investigation").status_code == 200
    ops = _opinions(globex, value)
    assert (ops["negative"], ops["investigation"]) == (0, 1)
    assert globex.client.delete(f"/api/v1/opinions/pdq/{value}").status_code == 204
    assert _opinions(globex, value)["mine"] is None
    assert _opinions(globex, value)["investigation"] == 0


def test_counts_disputed_and_mine(trio: tuple[Party, Party, Party]) -> None:
    """Counts per category; disputed only with positive and negative; mine is per caller."""
    acme, globex, initech = trio
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 5))
    _put(acme, value, category="positive")
    _put(globex, value, category="investigation")
    assert _opinions(initech, value) == {
        "positive": 1,
        "negative": 0,
        "investigation": 1,
        "disputed": False,
        "mine": None,
    }
    _put(initech, value, category="negative", reason="not TVEC")
    seen_by_initech = _opinions(initech, value)
    assert seen_by_initech["disputed"] is True
    assert seen_by_initech["mine"] == {"category": "negative", "tags": [], "reason": "not TVEC"}
    assert _opinions(acme, value)["mine"]["category"] == "positive"  # type: ignore[index]


def test_invalid_input_is_a_problem(trio: tuple[Party, Party, Party]) -> None:
    """An unknown category, too many or too long tags, or a too long reason: 400 problem."""
    acme, globex, _ = trio
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 5))
    for body in (
        {"category": "maybe"},
        {},
        {"category": "positive", "tags": ["x" * 65]},
        {"category": "positive", "tags": [str(i) for i in range(33)]},
        {"category": "positive", "reason": "r" * 2001},
    ):
        response = _put(globex, value, **body)
        assert response.status_code == 400, body
        assert response["Content-Type"].startswith("application/problem+json")
    assert _opinions(globex, value)["mine"] is None


def test_scope_feedback_is_required(trio: tuple[Party, Party, Party]) -> None:
    """A key without ``feedback`` gets 403 for PUT and DELETE."""
    acme = trio[0]
    reader = make_party("reader", scopes=["read"])
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 5))
    assert _put(reader, value, category="positive").status_code == 403
    assert reader.client.delete(f"/api/v1/opinions/pdq/{value}").status_code == 403


def test_invisible_signal_is_the_same_404_as_an_unknown_one(
    trio: tuple[Party, Party, Party],
) -> None:
    """A group signal the caller is not in, a retracted one and a never-submitted one give
    the same 404 body apart from the path, for PUT and DELETE."""
    acme, globex, initech = trio
    make_group("pair", acme, globex)
    hidden, retracted, unknown = pdq(), pdq(), pdq()
    acme.submit(
        acme.statement("pdq", hidden, audience="group:pair", iat=NOW - 5),
        acme.statement("pdq", retracted, iat=NOW - 5),
    )
    acme.submit(acme.statement("pdq", retracted, op="retract", iat=NOW - 1))
    assert _put(globex, hidden, category="positive").status_code == 200

    def body(response: object, value: str) -> dict[str, object]:
        assert response.status_code == 404  # type: ignore[attr-defined]
        data = dict(response.json())  # type: ignore[attr-defined]
        return {k: (v.replace(value, "V") if isinstance(v, str) else v) for k, v in data.items()}

    for method in ("put", "delete"):
        results = []
        for value in (hidden, retracted, unknown):
            call = getattr(initech.client, method)
            response = call(
                f"/api/v1/opinions/pdq/{value}", {"category": "positive"}, format="json"
            )
            results.append(body(response, value))
        assert results[0] == results[1] == results[2]
    # The hidden signal's opinion counts were not touched by the refused calls.
    assert _opinions(globex, hidden)["positive"] == 1


def test_opinion_change_reaches_other_members_feeds(trio: tuple[Party, Party, Party]) -> None:
    """Setting and withdrawing an opinion appends a change that other members' feeds
    deliver with the new counts; members outside the audience get nothing."""
    acme, globex, initech = trio
    make_group("pair", acme, globex)
    value = pdq()
    acme.submit(acme.statement("pdq", value, audience="group:pair", iat=NOW - 5))
    acme_cursor = acme.get("/api/v1/changes").json()["cursor"]
    initech_cursor = initech.get("/api/v1/changes").json()["cursor"]

    _put(globex, value, category="negative")
    page = acme.get("/api/v1/changes", cursor=acme_cursor).json()
    assert [(c["value"], c["opinions"]["negative"]) for c in page["changes"]] == [(value, 1)]
    globex.client.delete(f"/api/v1/opinions/pdq/{value}")
    page2 = acme.get("/api/v1/changes", cursor=page["cursor"]).json()
    assert [(c["value"], c["opinions"]["negative"]) for c in page2["changes"]] == [(value, 0)]
    assert initech.get("/api/v1/changes", cursor=initech_cursor).json()["changes"] == []
