"""The transparency report counts what the statements table holds, period by period."""

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from exchange.models import CurrentStatement
from members import services
from tests.factories import make_group, make_party, pdq, random_hex

pytestmark = pytest.mark.django_db

TODAY = timezone.now().astimezone(UTC).date()
LAST_YEAR = datetime(TODAY.year - 1, 3, 15, 12, tzinfo=UTC)


def report(*args: str) -> str:
    out = StringIO()
    call_command("transparency_report", *args, stdout=out)
    return out.getvalue()


def json_report(start: date, end: date) -> dict[str, Any]:
    text = report("--from", start.isoformat(), "--to", end.isoformat(), "--format", "json")
    return json.loads(text.strip().splitlines()[-1])


def sql(query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(query, params or [])
        return list(cursor.fetchall()) if cursor.description else []


def at(moment: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(moment)


@pytest.fixture
def forum() -> dict[str, Any]:
    """Two members sharing md5, pdq and sha256 signals, a retraction, a group statement,
    a lapse, opinions, a suspension and a reinstatement; some statements last year."""
    a, b = make_party(), make_party()
    make_group("pair", a, b)
    shared = pdq()
    a.submit(
        a.statement("pdq", shared, labels=["recruitment", "glorification"]),
        a.statement("md5", random_hex(32), labels=["instruction"]),
        a.statement("sha256", random_hex(64), audience="group:pair"),
    )
    b.submit(b.statement("pdq", shared), b.statement("md5", random_hex(32)))
    gone = random_hex(32)
    b.submit(b.statement("md5", gone, iat=int(timezone.now().timestamp()) - 10))
    b.submit(b.statement("md5", gone, op="retract"))
    a.submit(a.statement("pdq", pdq(), labels=["instruction"]))
    # Backdate two statements of a into last year: they belong to another period.
    old = sql(
        "SELECT id FROM exchange_statement WHERE member_slug = %s ORDER BY id LIMIT 2", [a.slug]
    )
    for (pk,) in old:
        sql("UPDATE exchange_statement SET received_at = %s WHERE id = %s", [at(LAST_YEAR), pk])
    # One of b's assertions reached its expiry an hour ago.
    lapsing = CurrentStatement.objects.filter(member=b.member, audience__isnull=False).first()
    assert lapsing is not None
    CurrentStatement.objects.filter(pk=lapsing.pk).update(
        exp=int(timezone.now().timestamp()) - 3600
    )
    for party, category in ((a, "positive"), (b, "negative")):
        response = party.client.put(
            f"/api/v1/opinions/pdq/{shared}", {"category": category}, format="json"
        )
        assert response.status_code in (200, 201), response.content
    services.member_set_status(member=b.member, status="suspended", actor="test")
    services.member_set_status(member=b.member, status="active", actor="test")
    return {"a": a, "b": b}


def expected_counts(since: datetime, until: datetime) -> dict[str, Any]:
    """Computed from the statements table with SQL, not with the report's code."""
    window = [at(since), at(until)]
    rows = sql(
        "SELECT s.op, s.member_slug, g.signal_type, s.signal_id, s.labels, s.received_at "
        "FROM exchange_statement s JOIN exchange_signal g ON g.id = s.signal_id "
        "WHERE s.received_at >= %s AND s.received_at < %s",
        window,
    )
    labels: Counter[str] = Counter()
    for op, *_, raw_labels, _received in rows:
        if op == "assert":
            values = json.loads(raw_labels) if isinstance(raw_labels, str) else raw_labels
            labels.update(set(values))
    return {
        "statements": len(rows),
        "assertions": sum(1 for r in rows if r[0] == "assert"),
        "retractions": sum(1 for r in rows if r[0] == "retract"),
        "signals": len({r[3] for r in rows}),
        "members": len({r[1] for r in rows}),
        "by_type": Counter(r[2] for r in rows),
        "by_member": Counter(r[1] for r in rows),
        "by_label": labels,
    }


def test_json_totals_equal_the_statements_table(forum: dict[str, Any]) -> None:
    """Totals and breakdowns of this year's report equal independent SQL counts."""
    start, end = date(TODAY.year, 1, 1), date(TODAY.year, 12, 31)
    result = json_report(start, end)
    expected = expected_counts(
        datetime(TODAY.year, 1, 1, tzinfo=UTC), datetime(TODAY.year + 1, 1, 1, tzinfo=UTC)
    )
    totals = result["totals"]
    for key in ("statements", "assertions", "retractions", "signals", "members"):
        assert totals[key] == expected[key], key
    assert expected["statements"] == 6 and expected["retractions"] == 1
    assert {r["signal_type"]: r["statements"] for r in result["by_signal_type"]} == dict(
        expected["by_type"]
    )
    assert {r["member"]: r["statements"] for r in result["by_member"]} == dict(
        expected["by_member"]
    )
    assert {r["label"]: r["assertions"] for r in result["by_label"]} == dict(expected["by_label"])
    assert sum(r["statements"] for r in result["by_month"]) == expected["statements"]
    assert totals["lapses"] == 1


def test_earlier_period_holds_only_its_own_statements(forum: dict[str, Any]) -> None:
    """Last year's report holds the two backdated statements, in March."""
    result = json_report(date(TODAY.year - 1, 1, 1), date(TODAY.year - 1, 12, 31))
    assert result["totals"]["statements"] == 2
    assert result["by_month"] == [
        {
            "month": f"{TODAY.year - 1}-03",
            "statements": 2,
            "assertions": 2,
            "retractions": 0,
            "signals": 2,
        }
    ]
    assert result["membership"]["suspended"] == 0


def test_opinions_and_membership(forum: dict[str, Any]) -> None:
    """One pdq has a positive and a negative opinion: disputed; b was suspended and
    reinstated; both members joined this period and are active at its end."""
    result = json_report(TODAY - timedelta(days=1), TODAY)
    assert result["opinions"] == {
        "positive": 1,
        "negative": 1,
        "investigation": 0,
        "signals": 1,
        "disputed_signals": 1,
        "disputed_share": 1.0,
    }
    membership = result["membership"]
    assert (membership["joined"], membership["suspended"], membership["reinstated"]) == (2, 1, 1)
    assert membership["active_at_end"] == 2


def test_csv_and_html_formats(forum: dict[str, Any]) -> None:
    """CSV has one figure per row; HTML has an SVG chart per breakdown and no hash value."""
    args = ("--from", f"{TODAY.year}-01-01", "--to", f"{TODAY.year}-12-31")
    csv_text = report(*args, "--format", "csv")
    assert csv_text.splitlines()[0] == "section,key,metric,value"
    assert "totals,,statements,6" in csv_text.splitlines()
    html = report(*args, "--format", "html")
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert html.count("<svg") == 5
    values = [r[0] for r in sql("SELECT value FROM exchange_signal")]
    assert not any(value in html for value in values)


def test_period_must_be_ordered() -> None:
    """A report period that ends before it starts is a command error."""
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        report("--from", "2026-02-01", "--to", "2026-01-01")
