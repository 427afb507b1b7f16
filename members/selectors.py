"""Reads of the membership domain."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from exchange.client import jws

from .forum_key import forum_jwks_keys
from .models import Member, SigningKey


def member_list_active() -> QuerySet[Member]:
    return Member.objects.filter(status=Member.Status.ACTIVE).order_by("slug")


def signing_key_jwk(key: SigningKey, *, member_slug: str) -> dict[str, Any]:
    jwk = jws.public_jwk(key.x)
    jwk.update({"kid": key.kid, "member": member_slug, "status": key.status})
    if key.revoked_at is not None:
        jwk["revoked_at"] = key.revoked_at.isoformat().replace("+00:00", "Z")
    if key.compromised_since is not None:
        jwk["compromised_since"] = key.compromised_since.isoformat().replace("+00:00", "Z")
    return jwk


def jwks_for(*, member: Member | None = None) -> dict[str, Any]:
    """JWK set of every registered signing key (or one member's), retired and revoked too,
    so that recipients can still verify what was signed before. A pending key is not
    published until an admin approves it: it is no key of the member's yet."""
    keys = (
        SigningKey.objects.select_related("member")
        .exclude(member__status=Member.Status.APPLICANT)
        .exclude(status=SigningKey.Status.PENDING)
    )
    if member is not None:
        keys = keys.filter(member=member)
    members = [signing_key_jwk(k, member_slug=k.member.slug) for k in keys.order_by("id")]
    # The forum's own keys (receipts, checkpoints) belong to the whole set only.
    return {"keys": members if member is not None else [*forum_jwks_keys(), *members]}


def signing_key_summary(key: SigningKey) -> dict[str, Any]:
    """One of the caller's keys, as ``GET /api/v1/signing-keys`` lists it."""
    return {
        "kid": key.kid,
        "status": key.status,
        "created_at": key.created_at,
        "jwk": jws.public_jwk(key.x),
        "approved_at": key.approved_at,
        "retired_at": key.retired_at,
        "revoked_at": key.revoked_at,
    }
