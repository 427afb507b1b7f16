"""Receipts: every statement a member receives carries the forum's signed receipt.

A receipt is a compact JWS by the forum's own Ed25519 key, published in /api/v1/jwks
with ``"forum": true``, over exactly ``{"jti", "member", "kid", "received_at"}``. It is
checked here with joserfc, an independent JOSE implementation, against the published
key, on every read path a test client reaches (feed, lookup, match).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
import warnings
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from joserfc import jws as joserfc_jws
from joserfc.jwk import OKPKey

from exchange.client import jws
from exchange.models import Statement
from forum.errors import ConflictError
from members.forum_key import forum_key
from members.models import SigningKey
from members.services import signing_key_register
from tests.factories import ACTOR, Party, make_party, pdq

pytestmark = pytest.mark.django_db


def forum_jwk(reader: Party) -> dict[str, Any]:
    keys = [k for k in reader.get("/api/v1/jwks").json()["keys"] if k.get("forum")]
    assert len(keys) == 1, keys
    return keys[0]


def verified_receipt(receipt: str, jwk: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a receipt that joserfc verifies with ``jwk``."""
    public = OKPKey.import_key({k: jwk[k] for k in ("kty", "crv", "x")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc's deprecation note on "EdDSA"
        result = joserfc_jws.deserialize_compact(receipt, public, algorithms=["EdDSA"])
    header_segment = receipt.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(header_segment + "=" * (-len(header_segment) % 4)))
    return header, json.loads(result.payload)


def test_jwks_publishes_the_forum_key() -> None:
    """/api/v1/jwks holds the forum's key: an Ed25519 JWK with its RFC 7638 kid,
    ``forum: true``, status active and no member; a member's own JWKS does not."""
    acme = make_party("acme")
    jwk = forum_jwk(acme)
    assert set(jwk) == {"kid", "kty", "crv", "x", "alg", "use", "forum", "status"}
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert jwk["kid"] == jws.jwk_thumbprint(jwk["x"])
    assert jwk["status"] == "active" and jwk["forum"] is True
    member_keys = acme.get("/api/v1/members/acme/jwks").json()["keys"]
    assert [k["kid"] for k in member_keys] == [acme.kid]


def test_previous_forum_keys_stay_published_as_retired() -> None:
    """After a rotation the earlier forum keys (CORDIALE_FORUM_PREVIOUS_KEYS) are still in
    the JWKS, retired, so that receipts they signed still verify."""
    acme = make_party("acme")
    old_x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"  # RFC 8037 appendix A
    with override_settings(CORDIALE_FORUM_PREVIOUS_KEYS=[old_x]):
        keys = [k for k in acme.get("/api/v1/jwks").json()["keys"] if k.get("forum")]
    assert [(k["status"], k["x"]) for k in keys] == [
        ("active", forum_key().x),
        ("retired", old_x),
    ]
    assert keys[1]["kid"] == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_every_read_path_carries_a_verifiable_receipt() -> None:
    """Feed, lookup and match serve each statement with a receipt by the forum key whose
    claims are exactly the statement's jti, member, signing key and receipt time."""
    acme, globex = make_party("acme"), make_party("globex")
    value = pdq()
    md5 = uuid.uuid4().hex
    before = int(time.time())
    token = acme.statement("pdq", value, iat=before - 3600)
    acme.submit(token, acme.statement("md5", md5))
    after = int(time.time())
    jwk = forum_jwk(globex)

    feed = {c["value"]: c for c in globex.get("/api/v1/changes").json()["changes"]}
    lookup = globex.get(f"/api/v1/signals/pdq/{value}").json()
    match = globex.client.post(
        "/api/v1/match", {"queries": [{"signal_type": "md5", "value": md5}]}, format="json"
    ).json()["results"][0]["matches"][0]["signal"]
    statements = [
        feed[value]["statements"][0],
        feed[md5]["statements"][0],
        lookup["statements"][0],
        match["statements"][0],
    ]
    for statement in statements:
        header, claims = verified_receipt(statement["receipt"], jwk)
        assert header == {"alg": "EdDSA", "kid": jwk["kid"], "typ": "cordiale-receipt"}
        signed = jws.parse_compact(statement["jws"]).claims
        assert set(claims) == {"jti", "member", "kid", "received_at"}
        assert (claims["jti"], claims["member"], claims["kid"]) == (signed["jti"], "acme", acme.kid)
        assert type(claims["received_at"]) is int
        assert before <= claims["received_at"] <= after
    assert lookup["statements"][0]["jws"] == token


def test_issue_receipts_signs_statements_stored_without_one() -> None:
    """Statements stored before receipts existed get one from ``issue_receipts`` (as
    migration 0007 does), with their stored receipt time; a second run signs nothing."""
    acme, globex = make_party("acme"), make_party("globex")
    value = pdq()
    acme.submit(acme.statement("pdq", value))
    stored = Statement.objects.get(signal__value=value)
    Statement.objects.filter(pk=stored.pk).update(receipt="")

    call_command("issue_receipts", stdout=(out := _Lines()))
    assert out.last() == {"receipts_issued": 1}
    call_command("issue_receipts", stdout=(again := _Lines()))
    assert again.last() == {"receipts_issued": 0}
    receipt = globex.get(f"/api/v1/signals/pdq/{value}").json()["statements"][0]["receipt"]
    _, claims = verified_receipt(receipt, forum_jwk(globex))
    assert claims["received_at"] == int(stored.received_at.timestamp())
    assert claims["jti"] == stored.jti


def test_a_member_cannot_register_the_forums_key() -> None:
    """The forum's public key cannot become a member's signing key: the JWKS would list
    two holders of one kid."""
    acme = make_party("acme")
    with pytest.raises(ConflictError, match="forum's own key") as raised:
        signing_key_register(member=acme.member, public_key=forum_key().x, actor=ACTOR)
    assert raised.value.code == "key_exists"
    assert list(SigningKey.objects.filter(member=acme.member).values_list("kid")) == [(acme.kid,)]


class _Lines:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass

    def last(self) -> Any:
        return json.loads(self.text.strip().splitlines()[-1])


def test_webhook_delivery_bodies_carry_the_receipts() -> None:
    """The body a webhook delivery POSTs (the shared feed page) carries each statement's
    receipt, the same one the pull feed serves."""
    from exchange.webhooks.delivery.pages import shared_feed_page

    acme, globex = make_party("acme"), make_party("globex")
    value = pdq()
    acme.submit(acme.statement("pdq", value))
    pulled = globex.get("/api/v1/changes").json()["changes"]
    body = json.loads(shared_feed_page(member_id=globex.member.pk, cursor="", limit=100).body)
    delivered = {c["value"]: c for c in body["changes"]}
    receipt = delivered[value]["statements"][0]["receipt"]
    assert receipt == next(c for c in pulled if c["value"] == value)["statements"][0]["receipt"]
    _, claims = verified_receipt(receipt, forum_jwk(globex))
    assert (claims["member"], claims["kid"]) == ("acme", acme.kid)
