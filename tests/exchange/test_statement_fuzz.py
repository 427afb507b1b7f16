"""Fuzzing the write and read endpoints with hypothesis.

POST /api/v1/statements gets random and mutated tokens (bit flips, swapped segments,
random base64url, headers and payloads altered and re-encoded under the old signature,
odd JSON values in validly signed claims, non-string items) and random bodies. It never
answers 5xx, and an item is accepted (or counted as duplicate or stale) only if it is a
token we signed validly with the member's key. GET /api/v1/changes with random cursors
and limits, and lookups of random paths, never answer 5xx either.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.client import jws
from tests.factories import Party, make_party, pdq

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
    | st.sampled_from(["", "\x00", "\ud800", "a" * 300, "forum", "group:x", "pdq", "assert"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
CLAIM_NAMES = [
    "iss",
    "iat",
    "jti",
    "op",
    "signal_type",
    "value",
    "labels",
    "tlp",
    "audience",
    "exp",
    "content_type",
    "ref",
    "extra",
]


@pytest.fixture
def acme(db: None) -> Party:
    return make_party("acme")


def _claims(party: Party) -> dict[str, Any]:
    return party.claims("pdq", pdq(), iat=int(time.time()) - 5)


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


odd_text = st.text(max_size=70) | st.sampled_from(["\x00", "a\x00b", "\ud800", "x" * 64, "é" * 64])
odd_int = st.integers(-(2**70), 2**70) | st.sampled_from([2**31, 2**53, 2**63 - 1, 2**63, 2**64])


@st.composite
def signed_odd_claims(draw: st.DrawFn, party: Party) -> str:
    """A validly signed token, valid but for one or two odd claims (may be accepted)."""
    claims = _claims(party)
    for _ in range(draw(st.sampled_from([1, 1, 2]))):
        # The claims that end up in database columns are drawn more often.
        name = draw(st.sampled_from(["exp", "jti", "ref"]) | st.sampled_from(CLAIM_NAMES))
        kind = draw(st.integers(0, 3))
        if kind == 0:
            claims.pop(name, None)
        elif kind == 1:
            claims[name] = draw(json_values)
        elif kind == 2:
            claims[name] = draw(odd_text)
        else:
            claims[name] = draw(odd_int)
    header = {"alg": "EdDSA", "kid": party.kid}
    return jws.sign_bytes(header, _dump(claims), party.private_key)


@st.composite
def mutated_token(draw: st.DrawFn, party: Party) -> Any:
    """A token that carries no valid signature, or is no token at all."""
    token = party.statement("pdq", pdq(), iat=int(time.time()) - 5)
    header, payload, signature = token.split(".")
    kind = draw(st.integers(0, 7))
    if kind == 0:  # flip one bit of one character
        i = draw(st.integers(0, len(token) - 1))
        flipped = chr(ord(token[i]) ^ (1 << draw(st.integers(0, 6))))
        return token[:i] + flipped + token[i + 1 :]
    if kind == 1:  # reorder segments
        parts = draw(
            st.permutations([header, payload, signature]).filter(
                lambda order: order != [header, payload, signature]
            )
        )
        return ".".join(parts)
    if kind == 2:  # random base64url segments
        segs = draw(st.lists(st.text(alphabet=B64URL, max_size=120), min_size=1, max_size=5))
        return ".".join(segs)
    if kind == 3:  # altered header, old signature
        new_header = {
            "alg": "EdDSA",
            "kid": party.kid,
            draw(st.text(max_size=8)): draw(json_values),
        }
        return f"{jws.b64url_encode(_dump(new_header))}.{payload}.{signature}"
    if kind == 4:  # altered payload, old signature
        claims = _claims(party)
        claims[draw(st.sampled_from(CLAIM_NAMES))] = draw(json_values)
        return f"{header}.{jws.b64url_encode(_dump(claims))}.{signature}"
    if kind == 5:  # any JSON as payload, any header, old signature
        h, p = draw(json_values), draw(json_values)
        return f"{jws.b64url_encode(_dump(h))}.{jws.b64url_encode(_dump(p))}.{signature}"
    if kind == 6:  # non-string items
        return draw(json_values.filter(lambda v: not isinstance(v, str) and _plain(v)))
    return draw(st.text(max_size=200))


def _plain(value: Any) -> bool:
    """No lone surrogate: such a body is not UTF-8 JSON, a 400 for the whole request."""
    return "\\ud8" not in json.dumps(value)


def _post(party: Party, body: bytes) -> Any:
    return party.client.post("/api/v1/statements", body, content_type="application/json")


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_submit_never_5xx_and_never_accepts_an_unsigned_token(acme: Party, data: Any) -> None:
    """Mixed batches of valid, odd-but-signed and mutated tokens: no 5xx; only tokens we
    signed validly can be accepted, duplicate or stale."""
    valid: set[str] = set()
    items: list[Any] = []
    for _ in range(data.draw(st.integers(1, 6))):
        choice = data.draw(st.integers(0, 2))
        if choice == 0:
            token = acme.statement("pdq", pdq(), iat=int(time.time()) - 5, jti=uuid.uuid4().hex)
            valid.add(token)
        elif choice == 1:
            token = data.draw(signed_odd_claims(acme))
            valid.add(token)
        else:
            token = data.draw(mutated_token(acme))
        items.append(token)
    response = _post(acme, json.dumps({"statements": items}).encode())
    assert response.status_code < 500
    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["results"]) == len(items)
    for item, result in zip(items, body["results"], strict=True):
        if result["status"] != "rejected":
            assert isinstance(item, str) and item in valid, (item, result)
    assert sum(body[k] for k in ("accepted", "duplicate", "stale", "rejected")) == len(items)


@FUZZ
@given(body=json_values)
def test_random_json_bodies_never_5xx(acme: Party, body: Any) -> None:
    """Any JSON body gets 200 or a 4xx problem; nothing is accepted from it."""
    response = _post(acme, json.dumps(body).encode())
    assert response.status_code < 500
    if response.status_code == 200:
        assert response.json()["accepted"] == 0
    else:
        assert response["Content-Type"].startswith("application/problem+json")


@FUZZ
@given(raw=st.binary(max_size=300))
def test_random_bytes_bodies_never_5xx(acme: Party, raw: bytes) -> None:
    """No request body of random bytes makes the statements endpoint answer a server error."""
    response = _post(acme, raw)
    assert response.status_code < 500


cursor_strategy = (
    st.text(max_size=60)
    | st.text(alphabet=B64URL, max_size=80)
    | json_values.map(lambda v: jws.b64url_encode(_dump(v)))
    | st.dictionaries(
        st.sampled_from(["0", "m", "g1", "g2", "x"]),
        st.lists(st.integers(-(2**70), 2**70), min_size=0, max_size=3),
    ).map(lambda p: jws.b64url_encode(json.dumps({"v": 1, "p": p}).encode()))
)


@FUZZ
@given(cursor=st.none() | cursor_strategy, limit=st.none() | st.text(max_size=12))
def test_changes_cursor_and_limit_never_5xx(acme: Party, cursor: Any, limit: Any) -> None:
    """Random cursors and limits: 200 or a 4xx problem."""
    params = {}
    if cursor is not None:
        params["cursor"] = cursor
    if limit is not None:
        params["limit"] = limit
    response = acme.client.get("/api/v1/changes", params)
    assert response.status_code < 500, (params, response.content)


@FUZZ
@given(
    signal_type=st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=20
    )
    | st.sampled_from(["pdq", "url", "vpdq"]),
    # NUL is left to test_lookup_of_a_nul_value_is_404 (a known bug on PostgreSQL).
    value=st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
        min_size=1,
        max_size=200,
    ),
)
def test_lookup_and_opinion_paths_never_5xx(acme: Party, signal_type: str, value: str) -> None:
    """Random lookup paths: 200 or 404; opinions on them: 4xx."""
    path = f"{quote(signal_type, safe='')}/{quote(value, safe='/')}"
    response = acme.client.get(f"/api/v1/signals/{path}")
    assert response.status_code < 500
    response = acme.client.put(f"/api/v1/opinions/{path}", {"category": "positive"}, format="json")
    assert response.status_code < 500


@pytest.mark.parametrize(
    ("header", "claims"),
    [
        ({}, {"exp": 2**63}),
        ({}, {"exp": 2**64}),
        ({}, {"jti": "a\x00b"}),
        ({}, {"jti": "\udfff"}),
        ({}, {"ref": "a\x00"}),
        ({}, {"ref": "\ud800"}),
        ({}, {"labels": ["\ud800"]}),
        ({"kid": "\ud800"}, {}),
        ({"kid": "a\x00"}, {}),
    ],
)
def test_validly_signed_odd_claims_are_rejected_not_5xx(
    acme: Party, header: dict[str, Any], claims: dict[str, Any]
) -> None:
    """Values a database column or a UTF-8 response cannot hold are ``malformed`` (or the
    code their claim earns), never a server error; found by the fuzzer above."""
    signing_input = (
        jws.b64url_encode(_dump({"alg": "EdDSA", "kid": acme.kid, **header}))
        + "."
        + jws.b64url_encode(_dump({**_claims(acme), **claims}))
    )
    signature = acme.private_key.sign(signing_input.encode("ascii"))
    token = f"{signing_input}.{jws.b64url_encode(signature)}"
    response = _post(acme, json.dumps({"statements": [token]}).encode())
    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "rejected"


@pytest.mark.parametrize(
    ("signal_type", "value"),
    [("pdq", "\x00"), ("pdq", "a\x00b"), ("url", "https://a.example/\x00")],
)
def test_lookup_of_a_nul_value_is_400(acme: Party, signal_type: str, value: str) -> None:
    """No signal value contains NUL: looking one up is the 400 ``invalid_value`` of any
    value that cannot exist (never a 500 from the database)."""
    response = acme.client.get(f"/api/v1/signals/{signal_type}/{quote(value)}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_value"


@pytest.mark.parametrize("value", ["\x00", "a\x00b"])
def test_opinion_on_a_nul_value_is_404(acme: Party, value: str) -> None:
    """No signal value contains NUL: an opinion on one is the ordinary 404."""
    response = acme.client.put(
        f"/api/v1/opinions/pdq/{quote(value)}", {"category": "positive"}, format="json"
    )
    assert response.status_code == 404
