"""The transparency report's sightings and known-benign figures equal raw SQL counts
(issue #18, part 5): signals that led to action, actions per label and per signal type,
the false-positive share, and the size of the known-benign list (live assertions with a
label of kind ``benign``). JSON, CSV and HTML carry the same figures.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from exchange.models import Label
from tests.factories import Party, make_party, pdq, random_hex

pytestmark = pytest.mark.django_db

NOW = int(time.time())
TODAY = datetime.now(UTC).date()
START, END = TODAY - timedelta(days=30), TODAY
OLD_DAY = TODAY - timedelta(days=200)


def sql(query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(query, params or [])
        return list(cursor.fetchall())


def at(day: date) -> Any:
    moment = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    return connection.ops.adapt_datetimefield_value(moment)


def run(fmt: str) -> str:
    out = StringIO()
    call_command(
        "transparency_report", "--from", str(START), "--to", str(END), "--format", fmt, stdout=out
    )
    return out.getvalue()


def sighting(
    party: Party, signal_type: str, value: str, outcome: str, count: int, day: date | None = None
) -> None:
    first = day or TODAY - timedelta(days=1)
    body = {
        "sightings": [
            {
                "signal_type": signal_type,
                "value": value,
                "outcome": outcome,
                "count": count,
                "period_start": first.isoformat(),
                "period_end": (first + timedelta(days=1)).isoformat(),
            }
        ]
    }
    response = party.client.post("/api/v1/sightings", body, format="json")
    assert response.json()["accepted"] == 1, response.content


@pytest.fixture
def forum() -> None:
    """Three members; pdq and md5 signals with labels; sightings this month and one
    200 days ago; two benign assertions, one of them retracted since."""
    # The benign label kind's own seed labels may exist already (issue #18, part 3).
    for slug in ("news-reporting", "satire"):
        Label.objects.update_or_create(
            slug=slug, defaults={"name": slug.title(), "kind": "benign", "active": True}
        )
    a, b, c = make_party(), make_party(), make_party()
    p1, p2, p3, m1 = pdq(), pdq(), pdq(), random_hex(32)
    a.submit(
        a.statement("pdq", p1, iat=NOW - 9, labels=["recruitment", "glorification"]),
        a.statement("md5", m1, iat=NOW - 9, labels=["instruction"]),
    )
    b.submit(b.statement("pdq", p1, iat=NOW - 9, labels=["recruitment"]))
    b.submit(b.statement("pdq", p2, iat=NOW - 9, labels=["instruction"]))
    c.submit(c.statement("pdq", p3, iat=NOW - 9, labels=["news-reporting", "satire"]))
    c.submit(c.statement("pdq", p2, iat=NOW - 9, labels=["satire"]))
    c.submit(c.statement("pdq", p2, op="retract", iat=NOW - 5))
    sighting(b, "pdq", p1, "actioned", 5)
    sighting(c, "pdq", p1, "actioned", 2)
    sighting(c, "pdq", p1, "matched", 4)
    sighting(b, "md5", m1, "matched", 3)
    sighting(c, "md5", m1, "actioned", 0)
    sighting(c, "pdq", p2, "false_positive", 1)
    sighting(a, "pdq", p2, "actioned", 6)
    sighting(b, "pdq", p1, "actioned", 50, day=OLD_DAY)


def expected() -> dict[str, Any]:
    """The figures from the tables, with SQL, not with the report's code."""
    window = [at(START), at(END + timedelta(days=1))]
    in_period = "s.period_start >= %s AND s.period_start < %s"
    sums = dict(
        sql(
            f"SELECT s.outcome, SUM(s.count) FROM exchange_sighting s WHERE {in_period} "
            "GROUP BY s.outcome",
            window,
        )
    )
    reports, members, signals = sql(
        "SELECT COUNT(*), COUNT(DISTINCT member_id), COUNT(DISTINCT signal_id) "
        f"FROM exchange_sighting s WHERE {in_period}",
        window,
    )[0]
    acted = sql(
        "SELECT s.signal_id, SUM(s.count) FROM exchange_sighting s "
        f"WHERE {in_period} AND s.outcome = 'actioned' AND s.count > 0 GROUP BY s.signal_id",
        window,
    )
    by_type = {
        t: (int(m), int(a), int(f), int(n))
        for t, m, a, f, n in sql(
            "SELECT g.signal_type, "
            "SUM(CASE WHEN s.outcome = 'matched' THEN s.count ELSE 0 END), "
            "SUM(CASE WHEN s.outcome = 'actioned' THEN s.count ELSE 0 END), "
            "SUM(CASE WHEN s.outcome = 'false_positive' THEN s.count ELSE 0 END), "
            "COUNT(DISTINCT CASE WHEN s.outcome = 'actioned' AND s.count > 0 "
            "THEN s.signal_id END) "
            "FROM exchange_sighting s JOIN exchange_signal g ON g.id = s.signal_id "
            f"WHERE {in_period} GROUP BY g.signal_type",
            window,
        )
    }
    labels_of: dict[int, set[str]] = {}
    for signal_id, labels in sql(
        "SELECT signal_id, labels FROM exchange_statement WHERE op = 'assert' AND received_at < %s",
        window[1:],
    ):
        labels_of.setdefault(signal_id, set()).update(
            json.loads(labels) if isinstance(labels, str) else labels
        )
    actions: Counter[str] = Counter()
    label_signals: Counter[str] = Counter()
    for signal_id, total in acted:
        for label in labels_of.get(signal_id, ()):
            actions[label] += int(total)
            label_signals[label] += 1
    benign = {r[0] for r in sql("SELECT slug FROM exchange_label WHERE kind = 'benign'")}
    live_benign = [
        signal_id
        for signal_id, labels in sql(
            "SELECT cs.signal_id, st.labels FROM exchange_currentstatement cs "
            "JOIN exchange_statement st ON st.id = cs.statement_id "
            "WHERE cs.audience IS NOT NULL AND NOT cs.lapsed "
            "AND (cs.exp IS NULL OR cs.exp > %s)",
            [int(time.time())],
        )
        if benign & set(json.loads(labels) if isinstance(labels, str) else labels)
    ]
    total = sum(int(v) for v in sums.values())
    return {
        "reports": reports,
        "members": members,
        "signals": signals,
        **{o: int(sums.get(o, 0)) for o in ("matched", "actioned", "false_positive")},
        "signals_actioned": len(acted),
        "false_positive_share": round(int(sums.get("false_positive", 0)) / total, 4),
        "by_type": by_type,
        "by_label": {label: (actions[label], label_signals[label]) for label in actions},
        "benign": {
            "labels": len(benign),
            "assertions": len(live_benign),
            "signals": len(set(live_benign)),
        },
    }


def test_json_figures_equal_sql_counts(forum: None) -> None:
    """Every sightings and benign-list figure of the JSON report equals its SQL count."""
    report = json.loads(run("json").strip().splitlines()[-1])
    want = expected()
    got = report["sightings"]
    for key in (
        "reports",
        "members",
        "signals",
        "matched",
        "actioned",
        "false_positive",
        "signals_actioned",
        "false_positive_share",
    ):
        assert got[key] == want[key], key
    # The fixture's own figures, so that an empty database cannot pass.
    assert (want["actioned"], want["signals_actioned"], want["reports"]) == (13, 2, 7)
    assert {
        r["signal_type"]: (r["matched"], r["actioned"], r["false_positive"], r["signals_actioned"])
        for r in got["by_signal_type"]
    } == want["by_type"]
    assert {r["label"]: (r["actioned"], r["signals_actioned"]) for r in got["by_label"]} == want[
        "by_label"
    ]
    assert want["by_label"]["recruitment"] == (7, 1)
    assert report["benign_list"] == want["benign"]
    assert (want["benign"]["assertions"], want["benign"]["signals"]) == (1, 1)


def test_older_sightings_belong_to_their_period(forum: None) -> None:
    """The report of 200 days ago holds the one sighting whose period starts then."""
    out = StringIO()
    call_command("transparency_report", "--from", str(OLD_DAY), "--to", str(OLD_DAY), stdout=out)
    got = json.loads(out.getvalue().strip().splitlines()[-1])["sightings"]
    assert (got["reports"], got["actioned"], got["signals_actioned"]) == (1, 50, 1)
    assert got["false_positive_share"] == 0.0


def test_csv_and_html_carry_the_figures(forum: None) -> None:
    """CSV rows and the HTML tables and chart show the same sightings figures."""
    want = expected()
    rows = set(run("csv").splitlines())
    assert f"sightings,,actioned,{want['actioned']}" in rows
    assert f"sightings,,false_positive_share,{want['false_positive_share']}" in rows
    assert "sightings_by_label,recruitment,actioned,7" in rows
    assert f"sightings_by_signal_type,md5,matched,{want['by_type']['md5'][0]}" in rows
    assert "benign_list,,assertions,1" in rows
    html = run("html")
    assert 'aria-label="Actions reported by label"' in html
    assert f"<tr><th>Actions taken</th><td>{want['actioned']}</td></tr>" in html
    assert "<tr><th>Live benign assertions</th><td>1</td></tr>" in html
    values = [r[0] for r in sql("SELECT value FROM exchange_signal")]
    assert not any(value in html for value in values)
