"""Statements signed without ``exchange.client.jws`` are accepted and served byte for byte.

Two independent signers: plain ``cryptography`` with a compact JWS assembled by hand
(own base64url, JSON spelled differently from ours: spaces, other member order, ``typ``),
and the joserfc JOSE library. What /changes and the lookup serve is exactly the submitted
token, and it verifies with joserfc against the key published in /api/v1/jwks.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
import warnings
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws as joserfc_jws
from joserfc.jwk import OKPKey

from members.services import api_key_issue, member_create, signing_key_register
from tests.factories import ACTOR, make_party, pdq

pytestmark = pytest.mark.django_db


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def raw_public(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def thumbprint(x: str) -> str:
    """RFC 7638 by hand: members in lexicographic order, no whitespace, SHA-256."""
    import hashlib

    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode()).digest())


def hand_built_jws(private: Ed25519PrivateKey, kid: str, claims: dict[str, Any]) -> str:
    # Deliberately not our spelling: spaces after separators, typ first, non-sorted claims.
    header = json.dumps({"typ": "JWT", "kid": kid, "alg": "EdDSA"}).encode()
    payload = json.dumps(dict(reversed(list(claims.items())))).encode()
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    return f"{signing_input}.{b64url(private.sign(signing_input.encode('ascii')))}"


def joserfc_jws_token(key: OKPKey, kid: str, claims: dict[str, Any]) -> str:
    with warnings.catch_warnings():
        # joserfc warns that RFC 9864 deprecates "EdDSA" in favour of "Ed25519".
        warnings.simplefilter("ignore")
        return joserfc_jws.serialize_compact(
            {"alg": "EdDSA", "kid": kid}, json.dumps(claims).encode(), key, algorithms=["EdDSA"]
        )


def joserfc_verify(token: str, jwk: dict[str, Any]) -> dict[str, Any]:
    public = OKPKey.import_key({k: jwk[k] for k in ("kty", "crv", "x")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = joserfc_jws.deserialize_compact(token, public, algorithms=["EdDSA"])
    return dict(json.loads(result.payload))


def claims_for(slug: str, value: str) -> dict[str, Any]:
    return {
        "iss": slug,
        "iat": int(time.time()) - 5,
        "jti": uuid.uuid4().hex,
        "op": "assert",
        "signal_type": "pdq",
        "value": value,
        "labels": ["recruitment", "glorification"],
        "tlp": "amber",
        "audience": "forum",
        "content_type": "photo",
        "ref": "case-Ω-1",
    }


def test_independent_signers_are_accepted_and_served_verbatim() -> None:
    """Hand-built and joserfc tokens are accepted; the feed and lookup serve them byte for
    byte, and they verify with joserfc against the published JWKS."""
    from rest_framework.test import APIClient

    member = member_create(slug="indie", name="Indie", status="active", actor=ACTOR)
    _, secret = api_key_issue(member=member, actor=ACTOR)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    private = Ed25519PrivateKey.generate()
    x_hand = b64url(raw_public(private))
    kid_hand = thumbprint(x_hand)
    registered = signing_key_register(member=member, public_key=x_hand, actor=ACTOR)
    assert registered.kid == kid_hand

    okp = OKPKey.generate_key("Ed25519")
    x_jose = okp.as_dict()["x"]
    kid_jose = okp.thumbprint()
    assert signing_key_register(member=member, public_key=x_jose, actor=ACTOR).kid == kid_jose

    value_hand, value_jose = pdq(), pdq()
    tokens = {
        value_hand: hand_built_jws(private, kid_hand, claims_for("indie", value_hand)),
        value_jose: joserfc_jws_token(okp, kid_jose, claims_for("indie", value_jose)),
    }
    response = client.post("/api/v1/statements", {"statements": list(tokens.values())}, "json")
    assert response.status_code == 200
    assert response.json()["accepted"] == 2, response.json()

    reader = make_party("reader")
    jwks = {k["kid"]: k for k in reader.get("/api/v1/jwks").json()["keys"]}
    page = reader.get("/api/v1/changes").json()
    served = {c["value"]: c["statements"][0]["jws"] for c in page["changes"]}
    assert served == tokens
    for value, token in tokens.items():
        looked = reader.get(f"/api/v1/signals/pdq/{value}").json()
        statement = looked["statements"][0]
        assert statement["jws"] == token
        assert joserfc_verify(statement["jws"], jwks[statement["kid"]])["value"] == value
        assert statement["labels"] == ["recruitment", "glorification"]


def test_independent_signer_with_a_wrong_key_is_bad_signature() -> None:
    """The same hand-built token signed by a key other than the kid's is refused."""
    acme = make_party("acme")
    value = pdq()
    forged = hand_built_jws(Ed25519PrivateKey.generate(), acme.kid, claims_for("acme", value))
    result = acme.submit(forged)["results"][0]
    assert (result["status"], result["code"]) == ("rejected", "bad_signature")
