"""Lookup and exact match do the same database work for an absent and an invisible value.

``GET /api/v1/signals/<type>/<value>`` answers the same 404 for a value nobody
submitted and for one the caller may not see (CONTRACT). The answer alone is not
enough: if the absent case stopped after finding no signal row while the invisible one
went on to check visibility, the number of queries (and so the response time) would
tell a caller that somebody holds the value. Timings are noisy in a test; the queries
the server sends are not, so these tests compare them: same count, same statements.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import Party, make_group, make_party, random_hex

pytestmark = pytest.mark.django_db


def _shape(sql: str) -> str:
    """A statement with its literal values blanked: what it does, not what it looks for."""
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    return re.sub(r"\b\d+\b", "?", sql)


def _queries(call: Callable[[], Any]) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        result = call()
    return result, [_shape(q["sql"]) for q in captured.captured_queries]


@pytest.fixture
def world() -> dict[str, Any]:
    """``caller`` sees ``visible`` (forum); ``invisible`` is addressed to a group of two
    other members; ``absent`` was never submitted."""
    acme, initech, caller = make_party(), make_party(), make_party()
    make_group("acme-initech", acme, initech)
    visible, invisible, absent = random_hex(32), random_hex(32), random_hex(32)
    iat = int(time.time()) - 60
    acme.submit(
        acme.statement("md5", visible, iat=iat),
        acme.statement("md5", invisible, iat=iat, audience="group:acme-initech"),
    )
    return {"caller": caller, "visible": visible, "invisible": invisible, "absent": absent}


def _lookup(caller: Party, value: str) -> Callable[[], Any]:
    return lambda: caller.client.get(f"/api/v1/signals/md5/{value}")


def _match(caller: Party, value: str) -> Callable[[], Any]:
    return lambda: caller.client.post(
        "/api/v1/match", {"queries": [{"signal_type": "md5", "value": value}]}, format="json"
    )


@pytest.mark.parametrize("endpoint", [_lookup, _match], ids=["lookup", "match"])
def test_absent_and_invisible_send_the_same_queries(
    world: dict[str, Any], endpoint: Callable[[Party, str], Callable[[], Any]]
) -> None:
    """Absent and invisible values: identical answers and identical query sequences
    (count and statements, literals aside); a visible value gets its snapshot."""
    caller: Party = world["caller"]
    endpoint(caller, world["absent"])()  # warm-up: per-key caches, first-request work
    absent, absent_sql = _queries(endpoint(caller, world["absent"]))
    invisible, invisible_sql = _queries(endpoint(caller, world["invisible"]))
    visible, _ = _queries(endpoint(caller, world["visible"]))

    if endpoint is _lookup:
        assert absent.status_code == invisible.status_code == 404
        assert absent.json() == invisible.json()
        assert visible.status_code == 200
    else:
        assert (
            absent.json()
            == invisible.json()
            == {"results": [{"index": 0, "truncated": False, "matches": [], "benign": []}]}
        )
        assert visible.json()["results"][0]["matches"][0]["signal"]["value"] == world["visible"]
    assert len(absent_sql) == len(invisible_sql)
    assert absent_sql == invisible_sql
