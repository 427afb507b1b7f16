"""The directory endpoints answer with the shapes of CONTRACT.md."""

import re

import pytest

from members.forum_key import forum_key
from members.models import Member
from members.services import (
    member_set_status,
    signing_key_register,
    signing_key_retire,
    signing_key_revoke,
)
from tests.factories import MemberFactory, key_of, make_group, make_party

pytestmark = pytest.mark.django_db

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
JWK_FIELDS = {"kid", "kty", "crv", "x", "alg", "use", "member", "status"}


def test_me() -> None:
    """/me: the caller's member, its key's scopes, its signing keys and groups."""
    acme = make_party("acme", scopes=["read", "submit"])
    make_group("g1", acme)
    body = acme.client.get("/api/v1/me").json()
    assert body["member"] == {"slug": "acme", "name": "Acme", "status": "active"}
    assert body["scopes"] == ["read", "submit"]
    assert body["api_key"]["scopes"] == ["read", "submit"]
    assert acme.api_key.startswith(f"cdl_{body['api_key']['prefix']}_")
    assert [k["kid"] for k in body["signing_keys"]] == [acme.kid]
    assert body["signing_keys"][0].keys() >= JWK_FIELDS
    assert body["groups"] == ["g1"]


def test_members_lists_active_members_only() -> None:
    """/members: slug and name of active members, nobody else."""
    acme = make_party("acme")
    make_party("globex")
    MemberFactory(slug="applicant", status=Member.Status.APPLICANT)
    gone = make_party("gone")
    member_set_status(member=gone.member, status=Member.Status.SUSPENDED, actor="test")
    body = acme.client.get("/api/v1/members").json()
    assert body == [{"slug": "acme", "name": "Acme"}, {"slug": "globex", "name": "Globex"}]


def test_jwks_lists_every_key_with_status() -> None:
    """/jwks: every member's keys, retired and revoked ones too, with revoked_at."""
    acme, globex, initech = make_party("acme"), make_party("globex"), make_party("initech")
    signing_key_retire(key=key_of(globex), actor="test")
    signing_key_revoke(key=key_of(initech), actor="test")
    keys = {k["kid"]: k for k in acme.client.get("/api/v1/jwks").json()["keys"]}
    # Every member key, plus the forum's own (tests/exchange/test_receipts.py).
    assert set(keys) == {acme.kid, globex.kid, initech.kid, forum_key().kid}
    forum = keys.pop(forum_key().kid)
    assert forum.keys() == JWK_FIELDS - {"member"} | {"forum"} and forum["forum"] is True
    for key in keys.values():
        assert key.keys() >= JWK_FIELDS
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == (
            "OKP",
            "Ed25519",
            "EdDSA",
            "sig",
        )
    assert keys[acme.kid]["status"] == "active" and "revoked_at" not in keys[acme.kid]
    assert keys[globex.kid]["status"] == "retired"
    assert keys[initech.kid]["status"] == "revoked"
    assert RFC3339_UTC.match(keys[initech.kid]["revoked_at"])
    assert keys[initech.kid]["member"] == "initech"


def test_member_jwks() -> None:
    """/members/<slug>/jwks: that member's keys only; 404 problem for an unknown slug."""
    acme, globex = make_party("acme"), make_party("globex")
    body = acme.client.get("/api/v1/members/globex/jwks").json()
    assert [k["kid"] for k in body["keys"]] == [globex.kid]
    assert body["keys"][0]["member"] == "globex"
    assert acme.client.get("/api/v1/members/nobody/jwks").status_code == 404


def test_applicant_keys_are_not_published() -> None:
    """An applicant is not in the forum yet: its keys appear nowhere."""
    acme = make_party("acme")
    applicant = MemberFactory(slug="hopeful", status=Member.Status.APPLICANT)
    key = signing_key_register(
        member=applicant, public_key="11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", actor="test"
    )
    assert acme.client.get("/api/v1/members/hopeful/jwks").status_code == 404
    assert key.kid not in {k["kid"] for k in acme.client.get("/api/v1/jwks").json()["keys"]}
