"""Lapse: an assertion past its ``exp`` is never served, and the sweep tells followers.

Reads (lookup and /changes) hide a lapsed assertion whether or not the sweep ran; the
sweep (``statements_lapse_sweep``, run by the Celery beat task
``exchange.tasks.sweep_lapsed_statements``) marks it and appends feed rows, so that a
follower holding the signal receives a tombstone. Running it twice does no harm.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from exchange.matching.service import match_index_reset
from exchange.models import CurrentStatement, FeedEntry
from exchange.selectors import feed_page
from exchange.services.lapse import statements_lapse_sweep
from exchange.tasks import sweep_lapsed_statements
from tests.factories import make_party, pdq

pytestmark = pytest.mark.django_db


def test_assertion_already_past_exp_is_never_served() -> None:
    """Accepted with an exp in the past (after iat), it is neither looked up nor served
    in /changes, before any sweep."""
    acme, globex = make_party("acme"), make_party("globex")
    now = int(time.time())
    value = pdq()
    body = acme.submit(acme.statement("pdq", value, iat=now - 60, exp=now - 30))
    assert body["accepted"] == 1
    assert globex.get(f"/api/v1/signals/pdq/{value}").status_code == 404
    assert acme.get(f"/api/v1/signals/pdq/{value}").status_code == 404
    changes = globex.get("/api/v1/changes").json()["changes"]
    assert all(not (c["value"] == value and not c["deleted"]) for c in changes)


def test_lapse_hides_at_exp_then_sweep_sends_a_tombstone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A live assertion is served until exp; after it, reads hide it at once; the sweep
    appends a feed row, and a follower at the head of the feed gets a tombstone."""
    acme, globex = make_party("acme"), make_party("globex")
    now = int(time.time())
    value, lasting = pdq(), pdq()
    acme.submit(
        acme.statement("pdq", value, iat=now - 10, exp=now + 100),
        acme.statement("pdq", lasting, iat=now - 10),
    )
    first = globex.get("/api/v1/changes").json()
    assert {c["value"] for c in first["changes"]} == {value, lasting}

    later = now + 200
    monkeypatch.setattr(time, "time", lambda: float(later))
    assert globex.get(f"/api/v1/signals/pdq/{value}").status_code == 404
    assert globex.get(f"/api/v1/signals/pdq/{lasting}").status_code == 200
    # Nothing has told the feed yet.
    assert globex.get("/api/v1/changes", cursor=first["cursor"]).json()["changes"] == []

    assert statements_lapse_sweep() == 1
    assert CurrentStatement.objects.get(signal__value=value).lapsed is True
    page = globex.get("/api/v1/changes", cursor=first["cursor"]).json()
    assert [(c["value"], c["deleted"]) for c in page["changes"]] == [(value, True)]

    rows = FeedEntry.objects.count()
    assert statements_lapse_sweep() == 0
    assert FeedEntry.objects.count() == rows


def test_celery_task_runs_the_sweep() -> None:
    """The beat task ``exchange.tasks.sweep_lapsed_statements`` runs the sweep (eagerly
    here, as without REDIS_URL) and returns how many lapses it recorded."""
    acme = make_party("acme")
    now = int(time.time())
    acme.submit(
        acme.statement("pdq", pdq(), iat=now - 60, exp=now - 30),
        acme.statement("pdq", pdq(), iat=now - 60, exp=now - 20),
    )
    assert sweep_lapsed_statements.name == "exchange.tasks.sweep_lapsed_statements"
    assert sweep_lapsed_statements.apply().get() == 2
    assert CurrentStatement.objects.filter(lapsed=True).count() == 2
    assert sweep_lapsed_statements.apply().get() == 0


def test_newer_statement_after_lapse_is_served_again() -> None:
    """A lapsed assertion can be renewed: a newer assertion is served again."""
    acme, globex = make_party("acme"), make_party("globex")
    now = int(time.time())
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=now - 60, exp=now - 30))
    statements_lapse_sweep()
    acme.submit(acme.statement("pdq", value, iat=now - 5))
    assert globex.get(f"/api/v1/signals/pdq/{value}").status_code == 200
    assert CurrentStatement.objects.get(signal__value=value).lapsed is False


@pytest.fixture
def match_index(tmp_path: Path) -> Iterator[None]:
    """A fresh match index for this test."""
    match_index_reset()
    with override_settings(CORDIALE_MATCH_INDEX_DIR=tmp_path / "match-index"):
        yield
    match_index_reset()


def test_a_recorded_lapse_is_final_when_the_clock_goes_back(
    monkeypatch: pytest.MonkeyPatch, match_index: None
) -> None:
    """Once the sweep recorded a lapse, a read on a host whose clock is behind the
    assertion's exp (or any later read) never serves it live again: not a lookup, not
    the pull feed (which webhooks send), not a match."""
    acme, globex = make_party("acme"), make_party("globex")
    now = int(time.time())
    value, lasting = pdq(), pdq()
    acme.submit(
        acme.statement("pdq", value, iat=now - 10, exp=now + 100),
        acme.statement("pdq", lasting, iat=now - 10),
    )
    monkeypatch.setattr(time, "time", lambda: float(now + 200))
    assert statements_lapse_sweep() == 1

    monkeypatch.setattr(time, "time", lambda: float(now))  # a host whose clock is behind
    assert globex.get(f"/api/v1/signals/pdq/{value}").status_code == 404
    assert acme.get(f"/api/v1/signals/pdq/{value}").status_code == 404
    assert globex.get(f"/api/v1/signals/pdq/{lasting}").status_code == 200
    pulled = globex.get("/api/v1/changes").json()["changes"]
    assert [c["value"] for c in pulled if not c["deleted"]] == [lasting]
    changes, _, _ = feed_page(member_id=globex.member.pk, cursor=None, limit=100)
    assert [c["value"] for c in changes if not c["deleted"]] == [lasting]
    query = {"queries": [{"signal_type": "pdq", "value": value}], "max_distance": 0}
    response = globex.client.post("/api/v1/match", query, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["matches"] == []
