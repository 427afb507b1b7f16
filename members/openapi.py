"""How the OpenAPI schema describes API-key authentication, so that Swagger UI's
"Authorize" button sends the key: ``Authorization: Bearer <api key>`` (``Token <api key>``
is accepted too, for TAXII clients); and the directory endpoints' answers."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "members.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A member's API key: `Authorization: Bearer <api key>`. "
            "`Authorization: Token <api key>` is accepted too. Keys are issued by the "
            "forum's admins (`manage.py issue_api_key`).",
        }


# Documentation-only serializers: what the directory endpoints (members/apis.py) answer.

KEY_STATUSES = ["pending", "active", "retired", "revoked"]
MEMBER_STATUSES = ["applicant", "active", "suspended", "expelled"]


class PublicJwkOut(serializers.Serializer[Any]):
    """A bare public JWK, as ``/api/v1/signing-keys`` shows each of the caller's keys."""

    kty = serializers.ChoiceField(choices=["OKP"])
    crv = serializers.ChoiceField(choices=["Ed25519"])
    x = serializers.CharField(help_text="The public key, base64url")
    kid = serializers.CharField(help_text="RFC 7638 thumbprint")
    alg = serializers.ChoiceField(choices=["EdDSA"])
    use = serializers.ChoiceField(choices=["sig"])


class JwkOut(PublicJwkOut):
    """A key as the JWKS publishes it: the public JWK and what the forum says of it."""

    status = serializers.ChoiceField(choices=KEY_STATUSES)
    member = serializers.CharField(required=False, help_text="The member's slug (not forum keys)")
    forum = serializers.BooleanField(required=False, help_text="true on the forum's own keys")
    revoked_at = serializers.CharField(required=False, help_text="RFC 3339, when revoked")
    compromised_since = serializers.CharField(
        required=False, help_text="RFC 3339: statements received since are withdrawn"
    )


class JwksOut(serializers.Serializer[Any]):
    keys = JwkOut(many=True)


class MemberOut(serializers.Serializer[Any]):
    slug = serializers.CharField()
    name = serializers.CharField()


class MeMemberOut(MemberOut):
    status = serializers.ChoiceField(choices=MEMBER_STATUSES)


class MeKeyOut(serializers.Serializer[Any]):
    prefix = serializers.CharField(help_text="The key's public prefix")
    scopes = serializers.ListField(child=serializers.CharField())
    expires_at = serializers.DateTimeField(allow_null=True)


class MeOut(serializers.Serializer[Any]):
    member = MeMemberOut()
    api_key = MeKeyOut()
    scopes = serializers.ListField(child=serializers.CharField())
    signing_keys = JwkOut(many=True)
    groups = serializers.ListField(child=serializers.CharField(), help_text="Sharing groups")


class CheckpointOut(serializers.Serializer[Any]):
    head_id = serializers.IntegerField()
    head_hash = serializers.CharField()
    entries = serializers.IntegerField()
    created_at = serializers.CharField(help_text="RFC 3339, UTC")
    jws = serializers.CharField(help_text="Signed by the forum's key")


class CheckpointsOut(serializers.Serializer[Any]):
    checkpoints = CheckpointOut(many=True)


class SigningKeySummaryOut(serializers.Serializer[Any]):
    """One of the caller's keys (``/api/v1/signing-keys``)."""

    kid = serializers.CharField(help_text="RFC 7638 thumbprint of the public JWK")
    status = serializers.ChoiceField(choices=KEY_STATUSES)
    created_at = serializers.DateTimeField()
    jwk = PublicJwkOut()
    approved_at = serializers.DateTimeField(allow_null=True)
    retired_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
