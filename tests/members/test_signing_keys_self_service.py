"""Self-service signing keys (``/api/v1/signing-keys``): a member registers a key, which
waits for an admin without a proof and is active at once with a proof by one of its
active keys; retiring is the member's call. A thief holding only an API key gets nothing
that signs."""

from __future__ import annotations

import json
import time
import uuid
from io import StringIO
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command

from exchange.client import jws
from exchange.client.statement_format import OP_ADD_KEY
from members.models import AuditEntry, SigningKey
from members.services import MAX_PENDING_KEYS, signing_key_approve
from tests.factories import Party, make_party
from tests.members.problems import assert_problem

pytestmark = pytest.mark.django_db


def new_key() -> tuple[Ed25519PrivateKey, dict[str, str]]:
    private = Ed25519PrivateKey.generate()
    x = jws.public_key_x(private.public_key())
    return private, {"kty": "OKP", "crv": "Ed25519", "x": x}


def proof_for(
    party: Party, jwk: dict[str, str], _signer: Ed25519PrivateKey | None = None, **overrides: Any
) -> str:
    """A key-addition proof for ``jwk`` by ``party``'s key (or ``_signer``)."""
    claims: dict[str, Any] = {
        "iss": party.slug,
        "iat": int(time.time()),
        "jti": uuid.uuid4().hex,
        "op": OP_ADD_KEY,
        "kid": jws.jwk_thumbprint(jwk["x"]),
    }
    claims.update(overrides)
    signer = _signer or party.private_key
    return jws.sign_compact(
        claims, signer, jws.jwk_thumbprint(jws.public_key_x(signer.public_key()))
    )


def register(party: Party, body: dict[str, Any]) -> Any:
    return party.client.post("/api/v1/signing-keys", body, format="json")


def test_without_a_proof_a_key_waits_signs_nothing_and_is_not_published() -> None:
    """A pending key is listed for its member, rejected as ``unknown_key`` when it signs,
    absent from the JWKS; after the admin's approval it signs and is published."""
    party = make_party()
    private, jwk = new_key()
    response = register(party, {"jwk": jwk})
    assert response.status_code == 201, response.content
    created = response.json()
    kid = jws.jwk_thumbprint(jwk["x"])
    assert created["kid"] == kid and created["status"] == "pending"

    listed = party.client.get("/api/v1/signing-keys").json()
    assert {k["kid"]: k["status"] for k in listed} == {party.kid: "active", kid: "pending"}

    token = party.sign(party.claims("md5", uuid.uuid4().hex), key=private)
    result = party.submit(token)["results"][0]
    assert (result["status"], result["code"]) == ("rejected", "unknown_key")
    jwks_kids = {k["kid"] for k in party.client.get("/api/v1/jwks").json()["keys"]}
    assert kid not in jwks_kids and party.kid in jwks_kids

    out = StringIO()
    call_command("approve_signing_key", kid, stdout=out)
    assert json.loads(out.getvalue().strip().splitlines()[-1]) == {"kid": kid, "status": "active"}
    assert party.submit(token)["results"][0]["status"] == "accepted"
    assert kid in {k["kid"] for k in party.client.get("/api/v1/jwks").json()["keys"]}
    actions = list(
        AuditEntry.objects.filter(object_id=kid).order_by("id").values_list("action", flat=True)
    )
    assert actions == ["signing_key.registered", "signing_key.approved"]


def test_a_proof_by_an_active_key_makes_the_new_key_active_at_once() -> None:
    """A rotation: the new key signs at once, with no admin; the audit says which key
    vouched for it."""
    party = make_party()
    private, jwk = new_key()
    response = register(party, {"jwk": jwk, "proof": proof_for(party, jwk)})
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "active"
    token = party.sign(party.claims("md5", uuid.uuid4().hex), key=private)
    assert party.submit(token)["results"][0]["status"] == "accepted"
    entry = AuditEntry.objects.get(object_id=response.json()["kid"])
    assert entry.after["proved_by"] == party.kid


@pytest.mark.parametrize(
    "case",
    [
        "other_kid",
        "other_iss",
        "other_op",
        "stale_iat",
        "future_iat",
        "extra_claim",
        "foreign_signer",
        "retired_signer",
        "pending_signer",
        "not_a_jws",
        "tampered",
    ],
)
def test_a_bad_proof_registers_nothing(case: str) -> None:
    """Every way a proof can be wrong answers 400 ``invalid_proof`` and stores no key."""
    party = make_party()
    _, jwk = new_key()
    proof: Any
    if case == "other_kid":
        proof = proof_for(party, jwk, kid=party.kid)
    elif case == "other_iss":
        proof = proof_for(party, jwk, iss="someone-else")
    elif case == "other_op":
        proof = proof_for(party, jwk, op="assert")
    elif case == "stale_iat":
        proof = proof_for(party, jwk, iat=int(time.time()) - 3600)
    elif case == "future_iat":
        proof = proof_for(party, jwk, iat=int(time.time()) + 3600)
    elif case == "extra_claim":
        proof = proof_for(party, jwk, signal_type="md5")
    elif case == "foreign_signer":
        stranger = make_party()
        proof = proof_for(party, jwk, _signer=stranger.private_key)
    elif case == "retired_signer":
        old = party.private_key
        SigningKey.objects.filter(kid=party.kid).update(status=SigningKey.Status.RETIRED)
        proof = proof_for(party, jwk, _signer=old)
    elif case == "pending_signer":
        waiting, waiting_jwk = new_key()
        assert register(party, {"jwk": waiting_jwk}).status_code == 201
        proof = proof_for(party, jwk, _signer=waiting)
    elif case == "not_a_jws":
        proof = "not.a.jws"
    else:
        header, payload, signature = proof_for(party, jwk).split(".")
        proof = f"{header}.{payload}.{signature[:-4]}AAAA"
    before = set(SigningKey.objects.values_list("kid", flat=True))
    assert_problem(register(party, {"jwk": jwk, "proof": proof}), 400, "invalid_proof")
    assert set(SigningKey.objects.values_list("kid", flat=True)) == before


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "RSA", "n": "x", "e": "AQAB"},
        {"kty": "OKP", "crv": "X25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        {"kty": "OKP", "crv": "Ed25519", "x": "short"},
        {"kty": "OKP", "crv": "Ed25519"},
        "a string",
        [1, 2],
    ],
)
def test_a_bad_jwk_is_a_clear_problem(jwk: Any) -> None:
    """Whatever the JWK, a client error answers 400 ``invalid_key``, never a 500."""
    party = make_party()
    assert_problem(register(party, {"jwk": jwk}), 400, "invalid_key")


def test_a_private_jwk_is_refused_and_never_stored() -> None:
    """Sending the private half (``d``) by mistake is refused with a message saying so."""
    party = make_party()
    _, jwk = new_key()
    body = assert_problem(register(party, {"jwk": {**jwk, "d": jwk["x"]}}), 400, "invalid_key")
    assert "private" in body["detail"]
    assert not SigningKey.objects.filter(x=jwk["x"]).exists()


def test_a_wrong_kid_in_the_jwk_is_refused() -> None:
    """A JWK whose ``kid`` is not its thumbprint would mislead whoever compares kids."""
    party = make_party()
    _, jwk = new_key()
    assert_problem(register(party, {"jwk": {**jwk, "kid": party.kid}}), 400, "invalid_key")


def test_a_key_registered_already_is_a_conflict_whoever_asks() -> None:
    """Another member's key (or the caller's own) cannot be registered again."""
    party, other = make_party(), make_party()
    x = jws.public_key_x(other.private_key.public_key())
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": x}
    assert_problem(register(party, {"jwk": jwk}), 409, "key_exists")


def test_a_thief_with_an_api_key_cannot_bury_the_admins_in_requests() -> None:
    """Pending keys per member are capped; retiring one makes room."""
    party = make_party()
    for _ in range(MAX_PENDING_KEYS):
        assert register(party, {"jwk": new_key()[1]}).status_code == 201
    assert_problem(register(party, {"jwk": new_key()[1]}), 409, "too_many_pending_keys")
    pending = SigningKey.objects.filter(member=party.member, status="pending").first()
    assert pending is not None
    assert party.client.delete(f"/api/v1/signing-keys/{pending.kid}").status_code == 200
    assert register(party, {"jwk": new_key()[1]}).status_code == 201


def test_retiring_is_the_members_call_and_only_for_its_own_keys() -> None:
    """DELETE retires the caller's key (what it signed stays valid); another member's kid
    is a 404, as if it did not exist; retiring twice is a conflict."""
    party, other = make_party(), make_party()
    token = party.statement("md5", uuid.uuid4().hex)
    assert party.submit(token)["results"][0]["status"] == "accepted"
    assert_problem(party.client.delete(f"/api/v1/signing-keys/{other.kid}"), 404, "not_found")
    assert SigningKey.objects.get(kid=other.kid).status == "active"
    response = party.client.delete(f"/api/v1/signing-keys/{party.kid}")
    assert response.status_code == 200 and response.json()["status"] == "retired"
    assert_problem(party.client.delete(f"/api/v1/signing-keys/{party.kid}"), 409)
    late = party.statement("md5", uuid.uuid4().hex)
    assert party.submit(late)["results"][0]["code"] == "revoked_key"
    published = {k["kid"]: k["status"] for k in party.client.get("/api/v1/jwks").json()["keys"]}
    assert published[party.kid] == "retired"


def test_self_service_needs_scope_manage() -> None:
    """A read-only key can neither list nor register keys."""
    party = make_party(scopes=["read"])
    assert_problem(party.client.get("/api/v1/signing-keys"), 403)
    assert_problem(register(party, {"jwk": new_key()[1]}), 403)


def test_approving_is_for_pending_keys_only() -> None:
    """An active, retired or revoked key cannot be 'approved' back into use."""
    party = make_party()
    key = SigningKey.objects.get(kid=party.kid)
    key.status = SigningKey.Status.RETIRED
    key.save()
    from forum.errors import ConflictError

    with pytest.raises(ConflictError):
        signing_key_approve(key=key, actor="test")
    assert SigningKey.objects.get(kid=party.kid).status == "retired"


def test_register_signing_key_accepts_the_jwk_keygen_prints() -> None:
    """The command takes a JWK (JSON text) and registers it active."""
    party = make_party()
    _, jwk = new_key()
    out = StringIO()
    call_command("register_signing_key", party.slug, json.dumps(jwk), stdout=out)
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line == {"member": party.slug, "kid": jws.jwk_thumbprint(jwk["x"])}
    assert SigningKey.objects.get(kid=line["kid"]).status == "active"
