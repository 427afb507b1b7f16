"""POST /api/v1/statements: every status and rejection code of CONTRACT.md, alone and mixed.

A rejected item leaves no trace: no Statement, CurrentStatement, FeedEntry or Signal row.
Key and membership changes act on what was already accepted: a retired key's statements
stay, a compromised key's statements received from ``compromised_since`` on are withdrawn, an
expelled member's statements disappear from everyone's view.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import override_settings

from exchange.client import jws
from exchange.models import CurrentStatement, FeedEntry, Label, Signal, Statement
from members.models import Member
from members.services import (
    member_set_status,
    signing_key_register,
    signing_key_retire,
    signing_key_revoke,
)
from tests.factories import ACTOR, Party, key_of, make_group, make_party, pdq

pytestmark = pytest.mark.django_db

NOW = int(time.time())


def _trace(value: str) -> dict[str, int]:
    """Every row that a statement about ``value`` could have left behind."""
    signal_ids = list(Signal.objects.filter(value=value).values_list("pk", flat=True))
    return {
        "signals": len(signal_ids),
        "statements": Statement.objects.filter(signal_id__in=signal_ids).count(),
        "current": CurrentStatement.objects.filter(signal_id__in=signal_ids).count(),
        "feed": FeedEntry.objects.filter(signal_id__in=signal_ids).count(),
    }


NO_TRACE = {"signals": 0, "statements": 0, "current": 0, "feed": 0}


def _one(party: Party, token: Any) -> dict[str, Any]:
    body = party.submit(token)
    assert len(body["results"]) == 1
    return body["results"][0]


def _rejected(party: Party, token: Any, code: str, value: str | None = None) -> None:
    result = _one(party, token)
    assert result["status"] == "rejected", result
    assert result["code"] == code, result
    assert result["index"] == 0
    assert result["detail"]
    if value is not None:
        assert _trace(value) == NO_TRACE


def _b64json(data: Any) -> str:
    import json

    return jws.b64url_encode(json.dumps(data, separators=(",", ":")).encode())


def _resign(party: Party, header: dict[str, Any], payload: bytes) -> str:
    return jws.sign_bytes(header, payload, party.private_key)


@pytest.fixture
def acme() -> Party:
    return make_party("acme")


@pytest.fixture
def globex() -> Party:
    return make_party("globex")


# --- each status alone -----------------------------------------------------------------


def test_accepted_stores_statement_current_state_and_feed_row(acme: Party) -> None:
    """A valid assertion is accepted and echoes jti, type and value; its rows exist."""
    value = pdq()
    claims = acme.claims("pdq", value, iat=NOW - 5)
    token = acme.sign(claims)
    result = _one(acme, token)
    assert result == {
        "index": 0,
        "status": "accepted",
        "jti": claims["jti"],
        "signal_type": "pdq",
        "value": value,
    }
    assert _trace(value) == {"signals": 1, "statements": 1, "current": 1, "feed": 1}
    assert Statement.objects.get(jti=claims["jti"]).jws == token


def test_duplicate_is_a_safe_retry(acme: Party) -> None:
    """The same token again is ``duplicate`` and changes nothing, in a later batch and
    within one batch."""
    value = pdq()
    token = acme.statement("pdq", value, iat=NOW - 5)
    assert _one(acme, token)["status"] == "accepted"
    before = _trace(value)
    again = acme.submit(token, token)
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert again["duplicate"] == 2 and again["accepted"] == 0
    assert _trace(value) == before

    other = pdq()
    token2 = acme.statement("pdq", other, iat=NOW - 5)
    body = acme.submit(token2, token2)
    assert [r["status"] for r in body["results"]] == ["accepted", "duplicate"]
    assert _trace(other)["statements"] == 1


def test_stale_equal_or_older_iat_changes_nothing(acme: Party) -> None:
    """A statement with an iat equal to or older than the member's current one is stale."""
    value = pdq()
    assert _one(acme, acme.statement("pdq", value, iat=NOW - 10))["status"] == "accepted"
    before = _trace(value)
    older = _one(acme, acme.statement("pdq", value, op="retract", iat=NOW - 20))
    equal = _one(acme, acme.statement("pdq", value, op="retract", iat=NOW - 10))
    assert older["status"] == equal["status"] == "stale"
    assert _trace(value) == before
    assert CurrentStatement.objects.get(signal__value=value).audience == 0


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jws",
        "a.b",
        "a.b.c.d",
        "..",
        "eyJhbGciOiJFZERTQSJ9.e30.",
        "eyJhbGciOiJFZERTQSIsImtpZCI6IngifQ==.e30.AAAA",
        "é.é.é",
        12345,
        None,
        ["a", "b"],
        {"jws": "x"},
        "A" * (jws.MAX_TOKEN_LENGTH + 1),
    ],
    ids=[
        "empty",
        "one-segment",
        "two-segments",
        "four-segments",
        "empty-segments",
        "empty-signature",
        "padded-base64",
        "non-ascii",
        "integer",
        "null",
        "list",
        "object",
        "too-long",
    ],
)
def test_malformed_token(acme: Party, token: Any) -> None:
    """Anything that is not a compact JWS string is ``malformed``."""
    _rejected(acme, token, "malformed")
    assert Statement.objects.count() == 0


def test_malformed_header_and_claims(acme: Party) -> None:
    """Wrong alg, alg none, an embedded jwk, a non-object payload, missing or ill-typed
    claims: ``malformed`` (the header checks run before any key is looked up)."""
    value = pdq()
    good = acme.claims("pdq", value, iat=NOW)
    kid = acme.kid
    payload = jws._dump_json(good)
    cases = [
        _resign(acme, {"alg": "HS256", "kid": kid}, payload),
        _resign(acme, {"alg": "none", "kid": kid}, payload),
        _resign(acme, {"alg": "EdDSA", "kid": kid, "jwk": {"kty": "OKP"}}, payload),
        _resign(acme, {"alg": "EdDSA", "kid": kid, "crit": ["exp"]}, payload),
        _resign(acme, {"alg": "EdDSA"}, payload),
        _resign(acme, {"alg": "EdDSA", "kid": kid}, b"[1, 2]"),
        _resign(acme, {"alg": "EdDSA", "kid": kid}, b'{"iss":"acme","iss":"acme"}'),
        _resign(acme, {"alg": "EdDSA", "kid": kid}, b'{"iat":NaN}'),
        acme.sign({**good, "jti": ""}),
        acme.sign({**good, "jti": "x" * 65}),
        acme.sign({**good, "jti": 7}),
        acme.sign({k: v for k, v in good.items() if k != "iat"}),
        acme.sign({k: v for k, v in good.items() if k != "op"}),
        acme.sign({**good, "iat": "now"}),
        acme.sign({**good, "iat": 1.5}),
        acme.sign({**good, "iat": True}),
        acme.sign({**good, "op": "delete"}),
        acme.sign({**good, "labels": []}),
        acme.sign({**good, "labels": "recruitment"}),
        acme.sign({**good, "labels": ["recruitment", "recruitment"]}),
        acme.sign({**good, "tlp": "white"}),
        acme.sign({**good, "exp": NOW - 100}),
        acme.sign({**good, "exp": "tomorrow"}),
        acme.sign({**good, "content_type": "audio"}),
        acme.sign({**good, "ref": "r" * 257}),
        acme.sign({**good, "signal_type": ["pdq"]}),
    ]
    body = acme.submit(*cases)
    codes = [(r["status"], r.get("code")) for r in body["results"]]
    assert codes == [("rejected", "malformed")] * len(cases), codes
    assert body["rejected"] == len(cases)
    assert _trace(value) == NO_TRACE


def test_bad_signature(acme: Party) -> None:
    """A token whose signature does not verify with the kid's key: ``bad_signature``,
    whether the payload was altered or another key signed under acme's kid."""
    value = pdq()
    token = acme.statement("pdq", value, iat=NOW)
    header, _payload, signature = token.split(".")
    altered = jws.b64url_encode(
        jws._dump_json({**acme.claims("pdq", value, iat=NOW), "labels": ["incitement"]})
    )
    stranger = Ed25519PrivateKey.generate()
    foreign = jws.sign_compact(acme.claims("pdq", value, iat=NOW), stranger, acme.kid)
    body = acme.submit(f"{header}.{altered}.{signature}", foreign)
    assert [r.get("code") for r in body["results"]] == ["bad_signature", "bad_signature"]
    assert _trace(value) == NO_TRACE


def test_unknown_key_including_another_members_kid(acme: Party, globex: Party) -> None:
    """An unregistered kid, and a kid registered to another member, are ``unknown_key``."""
    value = pdq()
    stranger = Ed25519PrivateKey.generate()
    unregistered = acme.sign(acme.claims("pdq", value, iat=NOW), key=stranger)
    globex_signed = acme.sign(acme.claims("pdq", value, iat=NOW), key=globex.private_key)
    body = acme.submit(unregistered, globex_signed)
    assert [r.get("code") for r in body["results"]] == ["unknown_key", "unknown_key"]
    assert _trace(value) == NO_TRACE


def test_revoked_key_for_revoked_and_retired_keys(acme: Party) -> None:
    """New statements signed by a revoked or a retired key are ``revoked_key``."""
    value = pdq()
    spare = Ed25519PrivateKey.generate()
    spare_key = signing_key_register(
        member=acme.member, public_key=jws.public_key_x(spare.public_key()), actor=ACTOR
    )
    signing_key_retire(key=spare_key, actor=ACTOR)
    _rejected(acme, acme.sign(acme.claims("pdq", value, iat=NOW), key=spare), "revoked_key", value)
    signing_key_revoke(key=key_of(acme), actor=ACTOR)
    _rejected(acme, acme.statement("pdq", value, iat=NOW), "revoked_key", value)


def test_issuer_mismatch(acme: Party, globex: Party) -> None:
    """``iss`` must be the authenticated member, even for a validly signed token."""
    value = pdq()
    _rejected(
        acme, acme.sign({**acme.claims("pdq", value), "iss": "globex"}), "issuer_mismatch", value
    )
    _rejected(acme, acme.sign({**acme.claims("pdq", value), "iss": None}), "issuer_mismatch")
    # globex's own valid token, replayed through acme's API key.
    _rejected(acme, globex.statement("pdq", value), "unknown_key", value)


def test_unknown_signal_type(acme: Party) -> None:
    """A type not in the registry (names are case-sensitive) is ``unknown_signal_type``."""
    for name in ("photodna", "PDQ", ""):
        _rejected(acme, acme.statement(name, pdq()), "unknown_signal_type")
    assert Statement.objects.count() == 0


def test_invalid_value(acme: Party) -> None:
    """A non-canonical or impossible value is ``invalid_value``; the server never rewrites."""
    value = pdq()
    for bad in (value.upper(), value[:-1], f" {value}", 42):
        _rejected(acme, acme.sign({**acme.claims("pdq", value), "value": bad}), "invalid_value")
    assert Signal.objects.count() == 0


def test_unknown_label_including_a_deactivated_one(acme: Party) -> None:
    """Labels must exist and be active; a deactivated label stays on old statements."""
    value = pdq()
    _rejected(acme, acme.statement("pdq", value, labels=["no-such-label"]), "unknown_label", value)
    assert (
        _one(acme, acme.statement("pdq", value, labels=["financing"], iat=NOW - 9))["status"]
        == "accepted"
    )
    Label.objects.filter(slug="financing").update(active=False)
    other = pdq()
    _rejected(acme, acme.statement("pdq", other, labels=["financing"]), "unknown_label", other)
    snapshot = acme.get(f"/api/v1/signals/pdq/{value}").json()
    assert snapshot["statements"][0]["labels"] == ["financing"]


def test_invalid_audience(acme: Party, globex: Party) -> None:
    """An unknown group, a group the submitter is not in, or a bad audience form:
    ``invalid_audience``, with the same message for "no such group" and "not yours"."""
    make_group("others", globex)
    make_group("ours", acme)
    value = pdq()
    unknown = _one(acme, acme.statement("pdq", value, audience="group:nowhere"))
    not_mine = _one(acme, acme.statement("pdq", value, audience="group:others"))
    for result in (unknown, not_mine):
        assert result["code"] == "invalid_audience"
    assert unknown["detail"].replace("nowhere", "X") == not_mine["detail"].replace("others", "X")
    for audience in ("everyone", "group:", "Forum", 0):
        _rejected(acme, acme.statement("pdq", value, audience=audience), "invalid_audience")
    assert _trace(value) == NO_TRACE
    assert _one(acme, acme.statement("pdq", value, audience="group:ours"))["status"] == "accepted"


@override_settings(CORDIALE_CLOCK_SKEW=60)
def test_clock_skew(acme: Party) -> None:
    """An iat further in the future than the tolerance is ``clock_skew``; within it, fine."""
    value = pdq()
    now = int(time.time())
    _rejected(acme, acme.statement("pdq", value, iat=now + 120), "clock_skew", value)
    assert _one(acme, acme.statement("pdq", value, iat=now + 30))["status"] == "accepted"


@override_settings(CORDIALE_MAX_STATEMENT_AGE=3600)
def test_too_old(acme: Party) -> None:
    """An iat older than the acceptance window is ``too_old``; inside it, fine."""
    value = pdq()
    now = int(time.time())
    _rejected(acme, acme.statement("pdq", value, iat=now - 7200), "too_old", value)
    assert _one(acme, acme.statement("pdq", value, iat=now - 1800))["status"] == "accepted"


def test_jti_reused(acme: Party) -> None:
    """The same jti with different content is ``jti_reused``, across and within batches."""
    value, other = pdq(), pdq()
    claims = acme.claims("pdq", value, iat=NOW - 5)
    assert _one(acme, acme.sign(claims))["status"] == "accepted"
    _rejected(acme, acme.sign({**claims, "value": other}), "jti_reused", other)

    jti = uuid.uuid4().hex
    third, fourth = pdq(), pdq()
    body = acme.submit(
        acme.statement("pdq", third, jti=jti, iat=NOW - 5),
        acme.statement("pdq", fourth, jti=jti, iat=NOW - 5),
    )
    assert [(r["status"], r.get("code")) for r in body["results"]] == [
        ("accepted", None),
        ("rejected", "jti_reused"),
    ]
    assert _trace(fourth) == NO_TRACE


# --- all of them in one batch --------------------------------------------------------


def test_mixed_batch_keeps_order_and_totals_and_isolates_bad_items(
    acme: Party, globex: Party
) -> None:
    """One batch holding every status and code: results in input order, right totals, the
    valid items stored, the invalid ones without trace."""
    make_group("others", globex)
    now = int(time.time())
    retired = Ed25519PrivateKey.generate()
    retired_key = signing_key_register(
        member=acme.member, public_key=jws.public_key_x(retired.public_key()), actor=ACTOR
    )
    signing_key_retire(key=retired_key, actor=ACTOR)
    Label.objects.filter(slug="financing").update(active=False)

    dup_value, stale_value, reuse_value = pdq(), pdq(), pdq()
    dup_token = acme.statement("pdq", dup_value, iat=now - 50)
    reuse_claims = acme.claims("pdq", reuse_value, iat=now - 50)
    acme.submit(
        dup_token, acme.statement("pdq", stale_value, iat=now - 50), acme.sign(reuse_claims)
    )

    values = {name: pdq() for name in ("ok1", "ok2", "bad")}
    bad = values["bad"]
    good_retract = acme.statement("pdq", values["ok2"], op="retract", iat=now - 1)
    sig_token = acme.statement("pdq", bad, iat=now)
    h, p, s = sig_token.split(".")
    wrong_sig = f"{h}.{p}.{s[:-2]}{'A' if s[-2] != 'A' else 'B'}{s[-1]}"
    plan: list[tuple[str, str | None, str]] = [
        ("accepted", None, acme.statement("pdq", values["ok1"], iat=now - 1)),
        ("rejected", "malformed", "x.y"),
        ("duplicate", None, dup_token),
        ("rejected", "bad_signature", wrong_sig),
        ("stale", None, acme.statement("pdq", stale_value, op="retract", iat=now - 60)),
        ("rejected", "unknown_key", acme.sign(acme.claims("pdq", bad), key=globex.private_key)),
        ("rejected", "revoked_key", acme.sign(acme.claims("pdq", bad), key=retired)),
        ("rejected", "issuer_mismatch", acme.sign({**acme.claims("pdq", bad), "iss": "globex"})),
        ("rejected", "unknown_signal_type", acme.statement("photodna", bad)),
        ("rejected", "invalid_value", acme.statement("pdq", bad.upper())),
        ("rejected", "unknown_label", acme.statement("pdq", bad, labels=["financing"])),
        ("rejected", "invalid_audience", acme.statement("pdq", bad, audience="group:others")),
        ("rejected", "clock_skew", acme.statement("pdq", bad, iat=now + 3600)),
        ("rejected", "too_old", acme.statement("pdq", bad, iat=now - 400 * 86400)),
        ("rejected", "jti_reused", acme.sign({**reuse_claims, "value": bad})),
        ("accepted", None, good_retract),
    ]
    before = {v: _trace(v) for v in (dup_value, stale_value, reuse_value)}
    body = acme.submit(*[t for _, _, t in plan])

    got = [(r["index"], r["status"], r.get("code")) for r in body["results"]]
    assert got == [(i, status, code) for i, (status, code, _) in enumerate(plan)]
    assert (body["accepted"], body["duplicate"], body["stale"], body["rejected"]) == (2, 1, 1, 12)
    assert _trace(values["ok1"]) == {"signals": 1, "statements": 1, "current": 1, "feed": 1}
    # A first retraction changes the member's state but nobody's view: no feed row.
    assert _trace(values["ok2"]) == {"signals": 1, "statements": 1, "current": 1, "feed": 0}
    assert _trace(bad) == NO_TRACE
    assert {v: _trace(v) for v in before} == before


# --- whole-body errors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b'"statements"', 400, "invalid_request"),
        (b"[]", 400, "invalid_request"),
        (b"{}", 400, "invalid_request"),
        (b'{"statements": "x.y.z"}', 400, "invalid_request"),
        (b'{"statements": []}', 400, "invalid_request"),
        (b'{"statements": null}', 400, "invalid_request"),
    ],
)
def test_body_errors_are_problems(acme: Party, raw: bytes, status: int, code: str) -> None:
    """A body that is not JSON, has no list, or an empty one is a problem for the request."""
    response = acme.client.post("/api/v1/statements", raw, content_type="application/json")
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code and problem["status"] == status
    assert {"type", "title", "detail"} <= set(problem)
    assert Statement.objects.count() == 0


def test_too_many_items_is_a_problem_and_stores_nothing(acme: Party) -> None:
    """10,001 items (even if all valid) is a 4xx problem and nothing of it is stored."""
    token = acme.statement("pdq", pdq())
    response = acme.client.post(
        "/api/v1/statements", {"statements": [token] * 10_001}, format="json"
    )
    assert 400 <= response.status_code < 500
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "too_many_statements"
    assert Statement.objects.count() == 0 and Signal.objects.count() == 0


# --- keys and membership ---------------------------------------------------------------


def _visible_values(party: Party) -> dict[str, bool]:
    """Follow the whole feed from the start: value -> still present (not a tombstone)."""
    state: dict[str, bool] = {}
    cursor = None
    while True:
        page = party.get("/api/v1/changes", **({"cursor": cursor} if cursor else {})).json()
        for change in page["changes"]:
            state[change["value"]] = not change["deleted"]
        cursor = page["cursor"]
        if not page["has_more"]:
            return state


def test_retired_key_keeps_its_old_statements(acme: Party, globex: Party) -> None:
    """Retiring a key leaves what it signed visible, verbatim."""
    value = pdq()
    token = acme.statement("pdq", value, iat=NOW - 5)
    acme.submit(token)
    signing_key_retire(key=key_of(acme), actor=ACTOR)
    snapshot = globex.get(f"/api/v1/signals/pdq/{value}").json()
    assert snapshot["statements"][0]["jws"] == token
    assert _visible_values(globex) == {value: True}


def test_compromised_key_withdraws_from_since_on(acme: Party, globex: Party) -> None:
    """Revoked as compromised since T: statements *received* at or after T vanish
    (tombstones in the feed, 404 on lookup) whatever their iat; those received before T
    stay, even with an iat after T."""
    since = NOW - 100
    before_t, at_t, after_t = pdq(), pdq(), pdq()
    acme.submit(
        acme.statement("pdq", before_t, iat=since + 10),
        acme.statement("pdq", at_t, iat=since - 10),
        acme.statement("pdq", after_t, iat=since - 50),
    )
    for value, received in ((before_t, since - 1), (at_t, since), (after_t, since + 50)):
        Statement.objects.filter(signal__value=value).update(
            received_at=datetime.fromtimestamp(received, UTC)
        )
    first = globex.get("/api/v1/changes").json()
    assert {c["value"] for c in first["changes"]} == {before_t, at_t, after_t}

    signing_key_revoke(
        key=key_of(acme), compromised_since=datetime.fromtimestamp(since, UTC), actor=ACTOR
    )
    page = globex.get("/api/v1/changes", cursor=first["cursor"]).json()
    assert {(c["value"], c["deleted"]) for c in page["changes"]} == {
        (at_t, True),
        (after_t, True),
    }
    assert globex.get(f"/api/v1/signals/pdq/{before_t}").status_code == 200
    for value in (at_t, after_t):
        assert globex.get(f"/api/v1/signals/pdq/{value}").status_code == 404
        assert acme.get(f"/api/v1/signals/pdq/{value}").status_code == 404
    assert _visible_values(globex) == {before_t: True, at_t: False, after_t: False}


def test_suspended_member_cannot_submit(acme: Party) -> None:
    """Suspension acts at once: 403 problem, nothing stored."""
    member_set_status(member=acme.member, status=Member.Status.SUSPENDED, actor=ACTOR)
    value = pdq()
    response = acme.client.post(
        "/api/v1/statements", {"statements": [acme.statement("pdq", value)]}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "member_not_active"
    assert _trace(value) == NO_TRACE


def test_expelled_members_statements_disappear_for_everyone(acme: Party, globex: Party) -> None:
    """Expulsion withdraws everything the member said from everyone's view; the rows stay
    for the audit."""
    initech = make_party("initech")
    make_group("pair", acme, globex)
    forum_value, group_value, shared = pdq(), pdq(), pdq()
    acme.submit(
        acme.statement("pdq", forum_value, iat=NOW - 5),
        acme.statement("pdq", group_value, audience="group:pair", iat=NOW - 5),
        acme.statement("pdq", shared, iat=NOW - 5),
    )
    initech.submit(initech.statement("pdq", shared, iat=NOW - 5))
    first = globex.get("/api/v1/changes").json()
    member_set_status(member=acme.member, status=Member.Status.EXPELLED, actor=ACTOR)

    page = globex.get("/api/v1/changes", cursor=first["cursor"]).json()
    last = {c["value"]: c for c in page["changes"]}
    assert last[forum_value]["deleted"] and last[group_value]["deleted"]
    assert [s["member"] for s in last[shared]["statements"]] == ["initech"]
    for reader in (globex, initech):
        assert reader.get(f"/api/v1/signals/pdq/{forum_value}").status_code == 404
        assert reader.get(f"/api/v1/signals/pdq/{group_value}").status_code == 404
    assert _visible_values(initech) == {shared: True, forum_value: False}
    assert Statement.objects.filter(member=acme.member).count() == 3
