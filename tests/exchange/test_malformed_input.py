"""Malformed input never answers 5xx (issue #13, item 5).

JSON nested 5,000 levels deep (deeper than Python's recursion limit) is refused wherever a
client can send JSON: in a statement's JWS header or payload (that item only is rejected
``malformed``, the rest of the batch is accepted), in a vpdq value (``invalid_value``), in
match, opinion and webhook bodies, and in cursors. Cursors of any other wrong shape and
non-ASCII bearer tokens on ``/metrics`` are refused too. Every refusal is a 4xx RFC 9457
problem with a ``code``, and changes nothing.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.client import jws
from exchange.models import FeedEntry, Opinion, Signal, WebhookEndpoint
from tests.factories import Party, make_party, pdq
from tests.members.problems import assert_problem

pytestmark = pytest.mark.django_db

DEPTH = 5_000
NOW = int(time.time())


def nested(depth: int = DEPTH) -> str:
    return "[" * depth + "]" * depth


def _signed_raw(party: Party, header: bytes, payload: bytes) -> str:
    """A compact JWS over exactly these header and payload bytes, validly signed."""
    signing_input = jws.b64url_encode(header) + "." + jws.b64url_encode(payload)
    signature = party.private_key.sign(signing_input.encode("ascii"))
    return signing_input + "." + jws.b64url_encode(signature)


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def acme() -> Party:
    return make_party("acme")


def test_deeply_nested_statement_parts_reject_that_item_only(acme: Party) -> None:
    """A JWS whose header or payload nests 5,000 levels, or whose vpdq value does, is
    rejected on its own; the valid statements of the same batch are accepted."""
    claims = acme.claims("pdq", pdq(), iat=NOW - 5)
    payload = json.dumps(claims, separators=(",", ":"))
    header = json.dumps({"alg": "EdDSA", "kid": acme.kid}, separators=(",", ":"))
    deep_header = _signed_raw(acme, f'{header[:-1]},"x":{nested()}}}'.encode(), payload.encode())
    deep_payload = _signed_raw(acme, header.encode(), f'{payload[:-1]},"x":{nested()}}}'.encode())
    deep_vpdq = acme.statement("vpdq", nested(), iat=NOW - 5)
    good = [acme.statement("pdq", pdq(), iat=NOW - 5) for _ in range(2)]

    body = acme.submit(good[0], deep_header, deep_payload, deep_vpdq, good[1])

    statuses = [(r["status"], r.get("code")) for r in body["results"]]
    assert statuses == [
        ("accepted", None),
        ("rejected", "malformed"),
        ("rejected", "malformed"),
        ("rejected", "invalid_value"),
        ("accepted", None),
    ]
    assert Signal.objects.count() == 2


def test_deeply_nested_match_body_and_vpdq_query(acme: Party) -> None:
    """A match body nested 5,000 levels is a 400 problem; a vpdq query value nested as
    deep is that query's ``invalid_value`` error."""
    response = acme.client.post(
        "/api/v1/match", data=f'{{"queries":{nested()}}}', content_type="application/json"
    )
    assert_problem(response, 400, "malformed_json")
    response = acme.client.post(
        "/api/v1/match",
        {"queries": [{"signal_type": "vpdq", "value": nested()}]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["error"]["code"] == "invalid_value"


def test_deeply_nested_opinion_body_changes_nothing(acme: Party) -> None:
    """PUT of an opinion body nested 5,000 levels is a 400 problem; no opinion is set."""
    value = pdq()
    acme.submit(acme.statement("pdq", value, iat=NOW - 5))
    head = FeedEntry.objects.count()
    response = acme.client.put(
        f"/api/v1/opinions/pdq/{value}",
        data=f'{{"category":"positive","tags":{nested()}}}',
        content_type="application/json",
    )
    assert_problem(response, 400, "malformed_request")
    assert not Opinion.objects.exists()
    assert FeedEntry.objects.count() == head


def test_deeply_nested_webhook_bodies_change_nothing(acme: Party) -> None:
    """POST and PATCH of webhook bodies nested 5,000 levels are 400 problems."""
    body = f'{{"url":"https://example.com/hook","labels":{nested()}}}'
    response = acme.client.post("/api/v1/webhooks", data=body, content_type="application/json")
    assert_problem(response, 400, "malformed_request")
    assert not WebhookEndpoint.objects.exists()

    response = acme.client.patch("/api/v1/webhooks/1", data=body, content_type="application/json")
    assert_problem(response, 400, "malformed_request")


def test_deeply_nested_json_inside_json_depth_limit(acme: Party) -> None:
    """JSON nested only moderately (200 levels: within the recursion limit, beyond any
    real input) is refused the same way, so no later step walks it recursively."""
    response = acme.client.put(
        f"/api/v1/opinions/pdq/{pdq()}",
        data=f'{{"category":"positive","tags":{nested(200)}}}',
        content_type="application/json",
    )
    assert_problem(response, 400, "malformed_request")


@pytest.mark.parametrize(
    "raw",
    [
        nested().encode(),
        b'{"v":1,"p":' + nested().encode() + b"}",
        b'{"v":1,"p":[]}',
        b'{"v":1,"p":"x"}',
        b'{"v":1,"p":1}',
        b'{"v":1,"p":null}',
        b'{"v":1}',
        b'{"v":1,"p":{"0":{"a":1}}}',
        b'{"v":1,"p":{"0":[1]}}',
        b'{"v":1,"p":{"0":[1,2,3]}}',
        b'{"v":1,"p":{"0":"ab"}}',
        b'{"v":1,"p":{"0":[1,99999999999999999999]}}',
        b'{"v":1,"p":{"0":[1,9223372036854775808]}}',
        b'{"v":1,"p":{"0":[0,9223372036854775808]}}',
        b'{"v":1,"p":{"m":[0,9223372036854775808]}}',
        b'{"v":1,"p":{"0":[1.5,2]}}',
        b"\xff\xfe",
    ],
)
def test_cursors_of_the_wrong_shape_are_invalid_cursor(acme: Party, raw: bytes) -> None:
    """A cursor that decodes to the wrong shape is a 400 ``invalid_cursor`` problem."""
    response = acme.get("/api/v1/changes", cursor=_cursor(raw))
    assert_problem(response, 400, "invalid_cursor")


cursor_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=26), children, max_size=4)
    ),
    max_leaves=16,
)


def _cursor_documents() -> st.SearchStrategy[bytes]:
    shaped = st.fixed_dictionaries(
        {"v": st.sampled_from([1, 1, 1, 2, "1", None, True])},
        optional={"p": cursor_json | st.dictionaries(st.text(max_size=30), cursor_json)},
    )
    documents = (shaped | cursor_json).map(lambda d: json.dumps(d).encode())
    return documents | st.binary(max_size=80)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=_cursor_documents(), text=st.text(max_size=40), use_text=st.booleans())
def test_fuzzed_cursors_never_answer_5xx(
    acme: Party, raw: bytes, text: str, use_text: bool
) -> None:
    """Any cursor, well-formed JSON of any shape or random text, gets 200 or a 4xx
    problem; never 5xx."""
    cursor = text if use_text else _cursor(raw)
    response = acme.get("/api/v1/changes", cursor=cursor, limit=5)
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.content
    if response.status_code != 200:
        assert_problem(response, response.status_code)


@pytest.mark.parametrize("given_token", ["s3cret-é", "é", "Ω" * 20, "\u2028", "\ud800"])
def test_metrics_non_ascii_bearer_token_is_401_problem(
    client: Any, settings: Any, given_token: str
) -> None:
    """``/metrics`` with a token configured refuses a non-ASCII bearer token with a 401
    problem, as any wrong token."""
    settings.CORDIALE_METRICS_TOKEN = "s3cret"
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {given_token}")
    assert_problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")
