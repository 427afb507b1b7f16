"""Directory endpoints: who am I, who are the members, their public keys, and the
forum's signed audit checkpoints."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from forum.errors import DomainError, NotFoundError
from forum.openapi import problems

from .authentication import ApiPrincipal
from .checkpoints import MAX_LIST, audit_checkpoint_list
from .models import Member
from .openapi import CheckpointsOut, JwksOut, MemberOut, MeOut
from .selectors import jwks_for, member_list_active, signing_key_jwk


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
