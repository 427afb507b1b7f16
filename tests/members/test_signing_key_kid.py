"""A signing key's ``kid`` is its RFC 7638 JWK thumbprint, checked against RFC 8037 A.3."""

import pytest
from rest_framework.test import APIClient

from members.services import signing_key_register
from tests.factories import MemberFactory, make_party

pytestmark = pytest.mark.django_db

# RFC 8037 appendix A.2 (public key) and A.3 (its thumbprint).
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_KID = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_kid_is_the_rfc7638_thumbprint_and_published() -> None:
    """Registered through the service, the RFC's key gets the RFC's kid, and /jwks
    publishes it with every field of the contract."""
    member = MemberFactory(slug="rfc")
    key = signing_key_register(member=member, public_key=RFC8037_X, actor="test")
    assert key.kid == RFC8037_KID

    reader = make_party()
    jwks = reader.client.get("/api/v1/jwks").json()
    published = next(k for k in jwks["keys"] if k["kid"] == RFC8037_KID)
    assert published == {
        "kid": RFC8037_KID,
        "kty": "OKP",
        "crv": "Ed25519",
        "x": RFC8037_X,
        "alg": "EdDSA",
        "use": "sig",
        "member": "rfc",
        "status": "active",
    }


def test_same_key_twice_is_refused() -> None:
    """One key belongs to one member: registering it again is a conflict."""
    from forum.errors import ConflictError

    signing_key_register(member=MemberFactory(), public_key=RFC8037_X, actor="test")
    with pytest.raises(ConflictError):
        signing_key_register(member=MemberFactory(), public_key=RFC8037_X, actor="test")


def test_jwks_needs_authentication() -> None:
    """The members' JWKS is not served without an API key (401)."""
    assert APIClient().get("/api/v1/jwks").status_code == 401
