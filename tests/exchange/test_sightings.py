"""Sightings: POST /api/v1/sightings and GET /api/v1/sightings/<type>/<value> (scope
``feedback``; issue #18, part 4).

Members report, in batches, how their matches on a signal ended over a period; other
members see the sums in the signal's snapshot (``sightings``), never who reported what
unless the reporter chose to be named, and anonymous figures only once at least
``CORDIALE_SIGHTINGS_MIN_REPORTERS`` members other than the reader stand behind them.
One bad item rejects that item only; a retry is ``unchanged`` and writes nothing to the
feed; a signal the reporter may not see is rejected ``not_found``, like a value nobody
submitted.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings

from exchange.models import FeedEntry, Sighting
from exchange.sightings.selectors import sightings_false_positive_members
from exchange.sightings.services import MAX_BATCH
from members import services
from tests.factories import Party, make_group, make_party, pdq, random_hex

pytestmark = pytest.mark.django_db

NOW = int(time.time())
DAY = timedelta(days=1)
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def item(value: str, outcome: str = "actioned", count: int = 1, **extra: Any) -> dict[str, Any]:
    """One report on a pdq value for yesterday (a whole UTC day)."""
    return {
        "signal_type": "pdq",
        "value": value,
        "outcome": outcome,
        "count": count,
        "period_start": (TODAY - DAY).isoformat().replace("+00:00", "Z"),
        "period_end": TODAY.isoformat().replace("+00:00", "Z"),
        **extra,
    }


def report(party: Party, *items: dict[str, Any], status: int = 200) -> Any:
    response = party.client.post("/api/v1/sightings", {"sightings": list(items)}, format="json")
    assert response.status_code == status, response.content
    return response.json()


def seen(party: Party, value: str, signal_type: str = "pdq") -> dict[str, Any]:
    response = party.get(f"/api/v1/signals/{signal_type}/{value}")
    assert response.status_code == 200, response.content
    return dict(response.json()["sightings"])


def counts(summary: dict[str, Any]) -> tuple[int, int, int, int]:
    return (
        summary["matched"],
        summary["actioned"],
        summary["false_positive"],
        summary["reporters"],
    )


@pytest.fixture
def forum() -> dict[str, Party]:
    """Five members of the forum; acme asserts one pdq to the forum."""
    parties = {slug: make_party(slug) for slug in ("acme", "bravo", "charlie", "delta", "echo")}
    return parties


def asserted(party: Party, audience: str = "forum") -> str:
    value = pdq()
    result = party.submit(party.statement("pdq", value, iat=NOW - 5, audience=audience))
    assert result["accepted"] == 1, result
    return value


def test_batch_with_bad_items_rejects_those_only(forum: dict[str, Party]) -> None:
    """Each bad item gets its own code, in input order; the good ones are stored."""
    acme, bravo = forum["acme"], forum["bravo"]
    value = asserted(acme)
    nobody = pdq()
    future = (TODAY + 3 * DAY).isoformat()
    body = report(
        bravo,
        item(value, "matched", 4),
        "not an object",
        item(value, "liked"),
        item(value, count=-1),
        item(value, count=True),
        item(value, period_end=(TODAY - 2 * DAY).isoformat()),
        item(value, period_end=future),
        item(value, period_start="2026-13-01"),
        item(value, period_start="2025-01-01T00:00:00"),
        item(nobody),
        {**item(value), "signal_type": "phash"},
        {**item(value), "value": "ABC"},
        {**item(value), "extra": 1},
        {k: v for k, v in item(value).items() if k != "count"},
        item(value, named="yes"),
        item(value, "false_positive", 2),
    )
    codes = [r.get("code", r["status"]) for r in body["results"]]
    assert codes == [
        "accepted",
        "malformed",
        "invalid_outcome",
        "invalid_count",
        "invalid_count",
        "invalid_period",
        "invalid_period",
        "invalid_period",
        "invalid_period",
        "not_found",
        "unknown_signal_type",
        "invalid_value",
        "malformed",
        "malformed",
        "malformed",
        "accepted",
    ]
    assert [r["index"] for r in body["results"]] == list(range(16))
    assert (body["accepted"], body["unchanged"], body["rejected"]) == (2, 0, 14)
    stored = Sighting.objects.filter(member=bravo.member)
    assert sorted(stored.values_list("outcome", "count")) == [("false_positive", 2), ("matched", 4)]


def test_whole_request_problems(forum: dict[str, Party]) -> None:
    """No list, an empty one or too many items: a problem for the whole request."""
    bravo = forum["bravo"]
    for body in ({}, {"sightings": []}, {"sightings": "x"}, []):
        response = bravo.client.post("/api/v1/sightings", body, format="json")
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_request"
    too_many = {"sightings": [item(pdq())] * (MAX_BATCH + 1)}
    response = bravo.client.post("/api/v1/sightings", too_many, format="json")
    assert (response.status_code, response.json()["code"]) == (413, "too_many_sightings")
    response = bravo.client.post("/api/v1/sightings", b"{", content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "malformed_json")


def test_scope_feedback_required(forum: dict[str, Party]) -> None:
    """A key without the feedback scope may not report (403)."""
    value = asserted(forum["acme"])
    reader = make_party("reader-only", scopes=["read"])
    response = reader.client.post("/api/v1/sightings", {"sightings": [item(value)]}, format="json")
    assert response.status_code == 403


def test_retry_is_unchanged_and_writes_no_feed_row(forum: dict[str, Party]) -> None:
    """The same batch again is ``unchanged`` and appends nothing to the feed; a new count
    for the same period replaces the old one and appends a row."""
    acme, bravo = forum["acme"], forum["bravo"]
    value = asserted(acme)
    batch = [item(value, "actioned", 3), item(value, "matched", 7)]
    assert report(bravo, *batch)["accepted"] == 2
    rows = FeedEntry.objects.count()
    again = report(bravo, *batch)
    assert (again["accepted"], again["unchanged"]) == (0, 2)
    assert [r["status"] for r in again["results"]] == ["unchanged", "unchanged"]
    assert FeedEntry.objects.count() == rows
    corrected = report(bravo, item(value, "actioned", 5))
    assert corrected["accepted"] == 1
    assert FeedEntry.objects.count() == rows + 1
    assert Sighting.objects.get(member=bravo.member, outcome="actioned").count == 5
    assert seen(bravo, value)["mine"] == {"matched": 7, "actioned": 5, "false_positive": 0}


def test_overlapping_periods_are_refused(forum: dict[str, Party]) -> None:
    """A period overlapping another of the same signal and outcome is refused, so nothing
    is counted twice; adjacent periods and other outcomes are fine."""
    acme, bravo = forum["acme"], forum["bravo"]
    value = asserted(acme)
    report(bravo, item(value, "actioned", 1))
    week = (TODAY - 7 * DAY).isoformat()
    body = report(
        bravo,
        item(value, "actioned", 9, period_start=week),
        item(value, "actioned", 2, period_start=week, period_end=(TODAY - DAY).isoformat()),
        item(value, "matched", 9, period_start=week),
        # overlaps the one accepted just before it in this batch
        item(value, "matched", 9, period_start=(TODAY - 2 * DAY).isoformat()),
    )
    assert [r.get("code", r["status"]) for r in body["results"]] == [
        "period_overlap",
        "accepted",
        "accepted",
        "period_overlap",
    ]
    assert counts(seen(bravo, value))[:3] == (9, 3, 0)


def test_aggregate_counts_and_anonymity(forum: dict[str, Party]) -> None:
    """Anonymous figures show only with two reporters other than the reader behind them;
    the reader always sees its own; a named reporter is listed and counted."""
    acme, bravo, charlie, delta = (forum[s] for s in ("acme", "bravo", "charlie", "delta"))
    value = asserted(acme)
    # Nobody reported: zeros.
    assert seen(delta, value) == {
        "matched": 0,
        "actioned": 0,
        "false_positive": 0,
        "reporters": 0,
        "named": [],
        "mine": None,
    }
    report(bravo, item(value, "actioned", 5))
    # One anonymous reporter: nobody else learns of its figures.
    assert counts(seen(delta, value)) == (0, 0, 0, 0)
    assert counts(seen(acme, value)) == (0, 0, 0, 0)
    assert counts(seen(bravo, value)) == (0, 5, 0, 1)
    report(charlie, item(value, "matched", 3), item(value, "false_positive", 1))
    assert seen(delta, value) == {
        "matched": 3,
        "actioned": 5,
        "false_positive": 1,
        "reporters": 2,
        "named": [],
        "mine": None,
    }
    # bravo's own plus one other anonymous: it would read charlie's figures by
    # subtraction, so it sees its own only.
    assert counts(seen(bravo, value)) == (0, 5, 0, 1)
    report(delta, item(value, "actioned", 2, named=True))
    as_bravo = seen(bravo, value)
    assert counts(as_bravo) == (0, 7, 0, 2)
    assert as_bravo["named"] == ["delta"]
    as_echo = seen(forum["echo"], value)
    assert counts(as_echo) == (3, 7, 1, 3)
    assert as_echo["named"] == ["delta"]
    assert "bravo" not in str(as_echo) and "charlie" not in str(as_echo)


@override_settings(CORDIALE_SIGHTINGS_MIN_REPORTERS=1)
def test_threshold_is_a_setting(forum: dict[str, Party]) -> None:
    """With the threshold at one, a single anonymous reporter's figures show."""
    acme, bravo, delta = forum["acme"], forum["bravo"], forum["delta"]
    value = asserted(acme)
    report(bravo, item(value, "actioned", 5))
    assert counts(seen(delta, value)) == (0, 5, 0, 1)
    assert seen(delta, value)["named"] == []


def test_group_signal_is_not_found_outside_the_group(forum: dict[str, Party]) -> None:
    """A signal shared with a group: outsiders' reports are ``not_found`` exactly like a
    value nobody submitted, and GET of their own reports is the lookup's 404."""
    acme, bravo, charlie = forum["acme"], forum["bravo"], forum["charlie"]
    make_group("pair", acme, bravo)
    value = asserted(acme, audience="group:pair")
    body = report(charlie, item(value), item(pdq()))
    assert [(r["status"], r["code"], r["detail"]) for r in body["results"]] == [
        ("rejected", "not_found", "No signal with this type and value is visible to you.")
    ] * 2
    assert not Sighting.objects.filter(member=charlie.member).exists()
    for path_value in (value, pdq()):
        response = charlie.get(f"/api/v1/sightings/pdq/{path_value}")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert report(bravo, item(value, "actioned", 4))["accepted"] == 1


def test_reports_count_only_within_the_readers_audiences(forum: dict[str, Party]) -> None:
    """A value asserted in two groups: reports of one group's members, named or not, never
    reach the other group's members, who see the signal too."""
    acme, bravo, charlie, delta, echo = (forum[s] for s in forum)
    make_group("west", acme, bravo, echo)
    make_group("east", charlie, delta)
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 5, audience="group:west"))
    charlie.submit(charlie.statement("pdq", value, iat=NOW - 5, audience="group:east"))
    report(bravo, item(value, "actioned", 5, named=True))
    report(echo, item(value, "actioned", 6))
    report(acme, item(value, "false_positive", 1))
    as_delta = seen(delta, value)
    assert counts(as_delta) == (0, 0, 0, 0)
    assert as_delta["named"] == []
    # Inside west: charlie's... nothing; acme sees bravo (named) and echo alone would be
    # one anonymous other, so only bravo's and its own count.
    as_acme = seen(acme, value)
    assert counts(as_acme) == (0, 5, 1, 2)
    assert as_acme["named"] == ["bravo"]
    # Once delta reports, east sees its own only, never west's.
    report(delta, item(value, "matched", 2))
    assert counts(seen(delta, value)) == (2, 0, 0, 1)
    assert counts(seen(charlie, value)) == (0, 0, 0, 0)


def test_sighting_change_reaches_readers_through_the_feed(forum: dict[str, Party]) -> None:
    """A new report is a change of the signal: readers following the feed get a snapshot
    with the new figures; the signal's ``updated_at`` moves."""
    acme, bravo, charlie, delta = (forum[s] for s in ("acme", "bravo", "charlie", "delta"))
    value = asserted(acme)
    page = delta.get("/api/v1/changes").json()
    cursor = page["cursor"]
    before = next(c for c in page["changes"] if c["value"] == value)["updated_at"]
    report(bravo, item(value, "actioned", 5))
    report(charlie, item(value, "actioned", 1))
    page = delta.get("/api/v1/changes", cursor=cursor).json()
    latest = [c for c in page["changes"] if c["value"] == value][-1]
    assert counts(latest["sightings"]) == (0, 6, 0, 2)
    assert latest["updated_at"] > before


def test_group_leaver_stops_counting_and_feed_says_so(forum: dict[str, Party]) -> None:
    """A reporter who leaves the only group through which it saw a signal stops counting
    for the group's readers, and the feed carries the new figures."""
    acme, bravo, charlie, delta = (forum[s] for s in ("acme", "bravo", "charlie", "delta"))
    make_group("trio", acme, bravo, charlie, delta)
    value = asserted(acme, audience="group:trio")
    report(bravo, item(value, "actioned", 5))
    report(charlie, item(value, "actioned", 1))
    cursor = delta.get("/api/v1/changes").json()["cursor"]
    assert counts(seen(delta, value)) == (0, 6, 0, 2)
    services.sharing_group_set_members(
        group=acme_group("trio"), members=[acme.member, bravo.member, delta.member], actor="t"
    )
    assert counts(seen(delta, value)) == (0, 0, 0, 0)
    page = delta.get("/api/v1/changes", cursor=cursor).json()
    latest = [c for c in page["changes"] if c["value"] == value][-1]
    assert counts(latest["sightings"]) == (0, 0, 0, 0)


def acme_group(slug: str) -> Any:
    from members.models import SharingGroup

    return SharingGroup.objects.get(slug=slug)


def test_own_reports_listed(forum: dict[str, Party]) -> None:
    """GET lists the caller's own reports on a signal it sees, latest period first, and
    nobody else's."""
    acme, bravo = forum["acme"], forum["bravo"]
    value = asserted(acme)
    report(bravo, item(value, "actioned", 5, named=True))
    report(
        bravo,
        item(value, "matched", 1, period_start="2026-01-01", period_end="2026-01-02"),
    )
    report(acme, item(value, "false_positive", 1))
    response = bravo.get(f"/api/v1/sightings/pdq/{value}")
    assert response.status_code == 200
    body = response.json()
    assert (body["signal_type"], body["value"]) == ("pdq", value)
    assert [(s["outcome"], s["count"], s["named"]) for s in body["sightings"]] == [
        ("actioned", 5, True),
        ("matched", 1, False),
    ]
    assert body["sightings"][1]["period_start"] == "2026-01-01T00:00:00Z"


def test_false_positive_members_for_the_dispute_threshold(forum: dict[str, Party]) -> None:
    """Distinct active members with a false-positive count above zero, however many
    periods or counts, optionally only those reported since a time (the last decision);
    zero counts, other outcomes and expelled members do not count."""
    acme, bravo, charlie, delta, echo = (forum[s] for s in forum)
    value = asserted(acme)
    report(bravo, item(value, "false_positive", 3))
    report(
        bravo, item(value, "false_positive", 1, period_start="2026-01-01", period_end="2026-01-02")
    )
    report(charlie, item(value, "false_positive", 0))
    report(delta, item(value, "actioned", 4))
    report(echo, item(value, "false_positive", 1))
    signal_id = Sighting.objects.filter(member=bravo.member).values_list("signal_id", flat=True)[0]
    assert sightings_false_positive_members(signal_id=signal_id) == {
        bravo.member.pk,
        echo.member.pk,
    }
    later = datetime.now(UTC)
    assert sightings_false_positive_members(signal_id=signal_id, since=later) == set()
    report(echo, item(value, "false_positive", 2))
    assert sightings_false_positive_members(signal_id=signal_id, since=later) == {echo.member.pk}
    services.member_set_status(member=echo.member, status="expelled", actor="t")
    assert sightings_false_positive_members(signal_id=signal_id) == {bravo.member.pk}


def test_other_signal_types(forum: dict[str, Party]) -> None:
    """Reports on md5 and url signals in one batch with pdq ones."""
    acme, bravo = forum["acme"], forum["bravo"]
    md5 = random_hex(32)
    acme.submit(acme.statement("md5", md5, iat=NOW - 5))
    value = asserted(acme)
    body = report(bravo, {**item(md5, "actioned", 2), "signal_type": "md5"}, item(value))
    assert body["accepted"] == 2
    assert seen(bravo, md5, "md5")["mine"] == {"matched": 0, "actioned": 2, "false_positive": 0}


def test_false_positive_reports_count_towards_the_dispute_threshold(settings: Any) -> None:
    """With the dispute threshold at 3, a negative opinion and one member's
    false-positive report open nothing; a second member's false-positive report is the
    third voice against the signal and opens a dispute by the threshold. A report of
    zero false positives, or of an action, is no voice."""
    from exchange.models import Dispute

    settings.CORDIALE_DISPUTE_NEGATIVE_THRESHOLD = 3
    acme, bravo, charlie, delta = (make_party(s) for s in ("acme", "bravo", "charlie", "delta"))
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 5))
    response = bravo.client.put(
        f"/api/v1/opinions/pdq/{value}", {"category": "negative"}, format="json"
    )
    assert response.status_code == 200, response.content
    report(charlie, item(value, "false_positive", 2))
    report(delta, item(value, "false_positive", 0), item(value, "actioned", 4))
    assert not Dispute.objects.exists()
    assert seen_disputed(acme, value) is False
    report(delta, item(value, "false_positive", 1))
    [dispute] = Dispute.objects.all()
    assert dispute.opener is None
    assert seen_disputed(acme, value) is True


def seen_disputed(party: Party, value: str) -> bool:
    response = party.get(f"/api/v1/signals/pdq/{value}")
    assert response.status_code == 200, response.content
    return bool(response.json()["opinions"]["disputed"])
