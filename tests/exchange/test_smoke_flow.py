"""End to end through the API: submit, follow the feed, look up, retract."""

import time

import pytest

from tests.factories import make_party, pdq

pytestmark = pytest.mark.django_db


def test_submit_then_feed_then_retract() -> None:
    """A forum statement reaches another member's feed verbatim; a retraction tombstones it."""
    acme, globex = make_party("acme"), make_party("globex")
    value = pdq()
    now = int(time.time())
    token = acme.statement("pdq", value, iat=now - 10)
    body = acme.submit(token)
    assert body["accepted"] == 1, body

    page = globex.get("/api/v1/changes").json()
    assert [c["value"] for c in page["changes"]] == [value]
    assert page["changes"][0]["statements"][0]["jws"] == token
    assert page["has_more"] is False

    looked = globex.get(f"/api/v1/signals/pdq/{value}")
    assert looked.status_code == 200
    assert looked.json()["statements"][0]["member"] == "acme"

    acme.submit(acme.statement("pdq", value, op="retract", iat=now))
    page2 = globex.get("/api/v1/changes", cursor=page["cursor"]).json()
    assert [(c["value"], c["deleted"]) for c in page2["changes"]] == [(value, True)]
    assert globex.get(f"/api/v1/signals/pdq/{value}").status_code == 404
