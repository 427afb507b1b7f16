"""Directory endpoints: who am I, who are the members, their public keys, and the
forum's signed audit checkpoints."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from forum.actors import actor_for_api_key
from forum.errors import DomainError, NotFoundError
from forum.openapi import PARSED_BODY, problems

from .authentication import ApiPrincipal
from .checkpoints import MAX_LIST, audit_checkpoint_list
from .models import Member, SigningKey
from .openapi import CheckpointsOut, JwksOut, MemberOut, MeOut, SigningKeySummaryOut
from .selectors import jwks_for, member_list_active, signing_key_jwk, signing_key_summary
from .services import signing_key_request, signing_key_retire


def principal(request: Request) -> ApiPrincipal:
    user = request.user
    assert isinstance(user, ApiPrincipal)  # guaranteed by HasScope
    return user


class MeApi(APIView):
    required_scope = None
    throttle_scope = "read"

    @extend_schema(summary="The caller's member, key scopes and signing keys", responses=MeOut)
    def get(self, request: Request) -> Response:
        p = principal(request)
        member = p.member
        data: dict[str, Any] = {
            "member": {"slug": member.slug, "name": member.name, "status": member.status},
            "api_key": {
                "prefix": p.api_key.prefix,
                "scopes": p.scopes,
                "expires_at": p.api_key.expires_at,
            },
            "scopes": p.scopes,
            "signing_keys": [
                signing_key_jwk(k, member_slug=member.slug)
                for k in member.signing_keys.order_by("id")
            ],
            "groups": sorted(member.groups.values_list("slug", flat=True)),
        }
        return Response(data)


class MemberListApi(APIView):
    required_scope = None
    throttle_scope = "read"

    @extend_schema(summary="Active members of the forum", responses=MemberOut(many=True))
    def get(self, request: Request) -> Response:
        return Response([{"slug": m.slug, "name": m.name} for m in member_list_active()])


class JwksApi(APIView):
    required_scope = None
    throttle_scope = "read"

    @extend_schema(summary="Every member's signing keys as a JWK set", responses=JwksOut)
    def get(self, request: Request) -> Response:
        return Response(jwks_for())


class MemberJwksApi(APIView):
    required_scope = None
    throttle_scope = "read"

    @extend_schema(summary="One member's signing keys as a JWK set", responses=JwksOut)
    def get(self, request: Request, slug: str) -> Response:
        member = Member.objects.filter(slug=slug).exclude(status=Member.Status.APPLICANT).first()
        if member is None:
            raise NotFoundError(f"No member {slug!r}.")
        return Response(jwks_for(member=member))


class AuditCheckpointsApi(APIView):
    """Signed heads of the audit log, newest first (members/checkpoints.py)."""

    required_scope = "read"
    throttle_scope = "read"

    @extend_schema(
        summary="Signed checkpoints of the audit log, newest first",
        parameters=[OpenApiParameter("limit", int, description=f"1..{MAX_LIST}, default 100")],
        responses=CheckpointsOut,
    )
    @problems({400: ["invalid_limit"]})
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
            raise DomainError(
                f"limit must be an integer from 1 to {MAX_LIST}.",
                code="invalid_limit",
                errors=[{"field": "limit", "code": "invalid", "detail": f"1..{MAX_LIST}"}],
            )
        return Response({"checkpoints": audit_checkpoint_list(limit=int(raw))})


class SigningKeyInput(serializers.Serializer[Any]):
    jwk = serializers.JSONField(help_text='{"kty": "OKP", "crv": "Ed25519", "x": "..."}')
    proof = serializers.CharField(
        required=False,
        max_length=16 * 1024,
        help_text="compact JWS by one of your active keys over "
        '{"iss", "iat", "jti", "op": "add_key", "kid": <the new kid>}: the key is active at '
        "once; without it the key waits for an admin's approval",
    )


class SigningKeyListApi(APIView):
    """The caller's own signing keys: listed, registered (pending, or active with a proof)."""

    required_scope = "manage"
    throttle_scope = "manage"

    @extend_schema(summary="Your signing keys", responses=SigningKeySummaryOut(many=True))
    def get(self, request: Request) -> Response:
        keys = SigningKey.objects.filter(member=principal(request).member).order_by("id")
        return Response([signing_key_summary(k) for k in keys])

    @extend_schema(
        summary="Register a signing key (pending without a proof; active with one)",
        request=SigningKeyInput,
        responses={201: SigningKeySummaryOut},
    )
    @problems(PARSED_BODY)
    @problems(
        {
            400: ["invalid_key", "invalid_proof"],
            409: ["key_exists", "too_many_pending_keys"],
        }
    )
    def post(self, request: Request) -> Response:
        data = SigningKeyInput(data=request.data)
        data.is_valid(raise_exception=True)
        p = principal(request)
        key = signing_key_request(
            member=p.member,
            jwk=data.validated_data["jwk"],
            proof=data.validated_data.get("proof"),
            actor=actor_for_api_key(p.member, p.api_key),
        )
        return Response(signing_key_summary(key), status=201)


class SigningKeyApi(APIView):
    required_scope = "manage"
    throttle_scope = "manage"

    def _key(self, request: Request, kid: str) -> SigningKey:
        key = SigningKey.objects.filter(kid=kid, member=principal(request).member).first()
        if key is None:
            raise NotFoundError(f"You have no signing key {kid}.")
        return key

    @extend_schema(summary="One of your signing keys", responses=SigningKeySummaryOut)
    def get(self, request: Request, kid: str) -> Response:
        return Response(signing_key_summary(self._key(request, kid)))

    @extend_schema(
        summary="Retire a key (it signs nothing new; what it signed stays valid)",
        responses=SigningKeySummaryOut,
    )
    @problems({409: ["invalid_transition"]})
    def delete(self, request: Request, kid: str) -> Response:
        p = principal(request)
        key = signing_key_retire(
            key=self._key(request, kid), actor=actor_for_api_key(p.member, p.api_key)
        )
        return Response(signing_key_summary(key))
