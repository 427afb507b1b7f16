"""The transparency report's dispute figures (issue #18, item 5) equal raw SQL counts
over the dispute tables, period by period."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from exchange.disputes.services import dispute_decide
from exchange.models import Dispute
from tests.exchange.test_disputes import open_dispute
from tests.exchange.test_transparency_report import at, json_report, report, sql
from tests.factories import Party, make_party, pdq

pytestmark = pytest.mark.django_db

TODAY = timezone.now().astimezone(UTC).date()


def disputed(opener: Party, author: Party, labels: list[str], grounds: str) -> Dispute:
    value = pdq()
    author.submit(author.statement("pdq", value, labels=labels))
    response = open_dispute(opener, value, grounds=grounds)
    assert response.status_code == 201, response.content
    return Dispute.objects.get(pk=response.json()["id"])


@pytest.fixture
def disputes(settings: Any) -> dict[str, Dispute]:
    """Five disputes by three members: upheld, overturned (two), relabelled, and one
    left open; opening times pushed back so decisions take hours; one decided last
    year, outside this year's period."""
    settings.CORDIALE_DISPUTE_OVERTURN_APPROVALS = 1
    acme, globex, initech = (make_party(s) for s in ("acme", "globex", "initech"))
    made = {
        "upheld": disputed(globex, acme, ["recruitment"], "not_tvec"),
        "overturned": disputed(globex, acme, ["recruitment", "glorification"], "not_tvec"),
        "overturned_b": disputed(acme, initech, ["instruction"], "benign_collision"),
        "relabelled": disputed(initech, globex, ["glorification"], "wrong_label"),
        "open": disputed(acme, globex, ["instruction"], "other"),
        "old": disputed(initech, acme, ["instruction"], "not_tvec"),
    }
    for hours, name in ((5, "upheld"), (30, "overturned"), (2, "overturned_b"), (9, "relabelled")):
        sql(
            "UPDATE exchange_dispute SET opened_at = %s WHERE id = %s",
            [at(timezone.now() - timedelta(hours=hours)), made[name].pk],
        )
    for name, decision, labels in (
        ("upheld", "uphold", []),
        ("overturned", "overturn", []),
        ("overturned_b", "overturn", []),
        ("relabelled", "relabel", ["instruction"]),
        ("old", "uphold", []),
    ):
        dispute_decide(
            dispute=Dispute.objects.get(pk=made[name].pk),
            decision=decision,
            rationale=f"{name}.",
            labels=labels,
            staff_user=None,
        )
    last_year = at(datetime(TODAY.year - 1, 6, 1, 12, tzinfo=UTC))
    sql(
        "UPDATE exchange_dispute SET opened_at = %s, decided_at = %s WHERE id = %s",
        [last_year, last_year, made["old"].pk],
    )
    sql(
        "UPDATE exchange_disputedecision SET decided_at = %s WHERE dispute_id = %s",
        [last_year, made["old"].pk],
    )
    return made


def expected(since: datetime, until: datetime) -> dict[str, Any]:
    """The dispute figures by raw SQL, not by the report's code."""
    window = [at(since), at(until)]
    [(opened,)] = sql(
        "SELECT count(*) FROM exchange_dispute WHERE opened_at >= %s AND opened_at < %s", window
    )
    [(open_at_end,)] = sql(
        "SELECT count(*) FROM exchange_dispute WHERE opened_at < %s "
        "AND (decided_at IS NULL OR decided_at >= %s)",
        [at(until), at(until)],
    )
    finals = sql(
        "SELECT d.id, x.decision, d.grounds, "
        "EXTRACT(EPOCH FROM (x.decided_at - d.opened_at)) FROM exchange_disputedecision x "
        "JOIN exchange_dispute d ON d.id = x.dispute_id "
        "WHERE x.jws <> '' AND x.decided_at >= %s AND x.decided_at < %s",
        window,
    )
    [(median,)] = sql(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM "
        "(x.decided_at - d.opened_at))) FROM exchange_disputedecision x "
        "JOIN exchange_dispute d ON d.id = x.dispute_id "
        "WHERE x.jws <> '' AND x.decided_at >= %s AND x.decided_at < %s",
        window,
    )
    by_label = sql(
        "SELECT l.label, x.decision, count(DISTINCT d.id) FROM exchange_disputedecision x "
        "JOIN exchange_dispute d ON d.id = x.dispute_id "
        "JOIN exchange_statement s ON s.signal_id = d.signal_id AND s.op = 'assert' "
        "CROSS JOIN LATERAL jsonb_array_elements_text(s.labels) AS l(label) "
        "WHERE x.jws <> '' AND x.decided_at >= %s AND x.decided_at < %s "
        "GROUP BY l.label, x.decision",
        window,
    )
    by_member = sql(
        "SELECT m.slug, x.decision, count(*) FROM exchange_disputedecision x "
        "JOIN exchange_disputeparty p ON p.dispute_id = x.dispute_id "
        "JOIN members_member m ON m.id = p.member_id "
        "WHERE x.jws <> '' AND x.decided_at >= %s AND x.decided_at < %s "
        "GROUP BY m.slug, x.decision",
        window,
    )
    return {
        "opened": opened,
        "open_at_end": open_at_end,
        "decided": len(finals),
        "decisions": Counter(r[1] for r in finals),
        "by_grounds": Counter((r[2], r[1]) for r in finals),
        "median_hours": None if median is None else round(float(median) / 3600, 2),
        "by_label": {(r[0], r[1]): r[2] for r in by_label},
        "by_member": {(r[0], r[1]): r[2] for r in by_member},
    }


def flatten(rows: list[dict[str, Any]], key: str) -> dict[tuple[str, str], int]:
    return {
        (row[key], d): row[d] for row in rows for d in ("uphold", "overturn", "relabel") if row[d]
    }


def test_dispute_figures_equal_raw_sql(disputes: dict[str, Dispute]) -> None:
    """This year's dispute figures, every breakdown and the median time to decision
    equal the raw SQL counts; the fixture's shape shows in the numbers."""
    start, end = date(TODAY.year, 1, 1), date(TODAY.year, 12, 31)
    figures = json_report(start, end)["disputes"]
    want = expected(
        datetime(TODAY.year, 1, 1, tzinfo=UTC), datetime(TODAY.year + 1, 1, 1, tzinfo=UTC)
    )
    assert (figures["opened"], figures["decided"], figures["open_at_end"]) == (
        want["opened"],
        want["decided"],
        want["open_at_end"],
    )
    assert (want["opened"], want["decided"], want["open_at_end"]) == (5, 4, 1)
    for decision in ("uphold", "overturn", "relabel"):
        assert figures[decision] == want["decisions"][decision]
    assert flatten(figures["by_grounds"], "grounds") == dict(want["by_grounds"])
    assert flatten(figures["by_label"], "label") == want["by_label"]
    assert flatten(figures["by_member"], "member") == want["by_member"]
    assert figures["median_hours_to_decision"] == want["median_hours"]
    assert 5 <= want["median_hours"] <= 9.1  # between the 2nd and 3rd of 2, 5, 9, 30 h
    for row in figures["by_member"]:
        share = row["overturn"] / row["decided"]
        assert row["overturned_share"] == round(share, 4)
    acme = next(r for r in figures["by_member"] if r["member"] == "acme")
    assert (acme["decided"], acme["overturn"], acme["overturned_share"]) == (2, 1, 0.5)


def test_last_year_holds_only_its_decision(disputes: dict[str, Dispute]) -> None:
    """The dispute decided last year is last year's report's one figure."""
    figures = json_report(date(TODAY.year - 1, 1, 1), date(TODAY.year - 1, 12, 31))["disputes"]
    want = expected(
        datetime(TODAY.year - 1, 1, 1, tzinfo=UTC), datetime(TODAY.year, 1, 1, tzinfo=UTC)
    )
    assert (figures["opened"], figures["decided"], figures["uphold"]) == (1, 1, 1)
    assert figures["open_at_end"] == want["open_at_end"] == 0
    assert figures["median_hours_to_decision"] == want["median_hours"] == 0


def test_csv_and_html_carry_the_dispute_figures(disputes: dict[str, Dispute]) -> None:
    """CSV rows and the HTML section carry the same figures as the JSON."""
    args = ("--from", f"{TODAY.year}-01-01", "--to", f"{TODAY.year}-12-31")
    figures = json.loads(report(*args, "--format", "json").strip().splitlines()[-1])["disputes"]
    lines = report(*args, "--format", "csv").splitlines()
    assert f"disputes,,opened,{figures['opened']}" in lines
    assert f"disputes,,open_at_end,{figures['open_at_end']}" in lines
    assert "disputes_by_member,acme,overturned_share,0.5" in lines
    html = report(*args, "--format", "html")
    assert 'id="disputes"' in html and "Outcomes by member" in html
