"""``GET /api/v1/signals/<type>/<value>`` with a value no member could have submitted:
a 400 problem with the same code ``POST /api/v1/match`` gives that value, not the 404
that means "absent or not yours"."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.factories import make_party, random_hex
from tests.members.problems import assert_problem

pytestmark = pytest.mark.django_db

BAD = [
    ("md5", "xyz", "invalid_value"),
    ("md5", random_hex(32).upper(), "invalid_value"),
    ("pdq", random_hex(31), "invalid_value"),
    ("sha256", random_hex(32), "invalid_value"),
    ("url", "https://Example.com:443/a", "invalid_value"),
    ("url", "not a url", "invalid_value"),
    ("vpdq", "[1, 2]", "invalid_value"),
    ("sha1", random_hex(20), "unknown_signal_type"),
]


@pytest.mark.parametrize(("signal_type", "value", "code"), BAD)
def test_a_value_that_cannot_exist_is_a_400_with_the_match_code(
    signal_type: str, value: str, code: str
) -> None:
    """The lookup answers 400 with the code (and detail) /match reports for the same
    query, naming the field at fault; never 404 and never 500."""
    caller = make_party()
    response = caller.client.get(f"/api/v1/signals/{signal_type}/{quote(value, safe='')}")
    body = assert_problem(response, 400, code)
    field = "signal_type" if code == "unknown_signal_type" else "value"
    assert body["errors"] == [{"field": field, "code": code, "detail": body["detail"]}]

    matched = caller.client.post(
        "/api/v1/match",
        {"queries": [{"signal_type": signal_type, "value": value}]},
        format="json",
    )
    assert matched.status_code == 200
    assert matched.json()["results"][0]["error"] == {"code": code, "detail": body["detail"]}


def test_a_canonical_value_nobody_submitted_is_still_404() -> None:
    """A well-formed value keeps the contract's 404, whatever the type."""
    caller = make_party()
    for signal_type, value in [
        ("md5", random_hex(32)),
        ("pdq", random_hex(64)),
        ("url", "https://example.com/a?b=c"),
    ]:
        response = caller.client.get(f"/api/v1/signals/{signal_type}/{quote(value, safe='')}")
        assert_problem(response, 404, "not_found")


def test_bad_values_still_need_a_key() -> None:
    """Without an API key the answer is 401 before any validation."""
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/signals/md5/xyz").status_code == 401
