"""API-key authentication, shaped like DRF's ``TokenAuthentication``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from .models import ApiKey, Member
from .services import api_key_lookup

# Recording last use on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass
class ApiPrincipal:
    """``request.user`` for API requests: the member behind the key."""

    member: Member
    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False

    @property
    def pk(self) -> int:
        # Throttles key on this: limits apply per member, not per key.
        return self.member.pk

    @property
    def scopes(self) -> list[str]:
        return list(self.api_key.scopes)


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer <key>`` (or ``Token <key>``): unknown, expired or revoked → 401."""

    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[ApiPrincipal, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower().decode(errors="replace") not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Authorization header must be '<keyword> <api key>'.", code="invalid_header"
            )
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(
                "API key must be ASCII.", code="invalid_header"
            ) from None
        return self.authenticate_key(secret)

    def authenticate_key(self, secret: str) -> tuple[ApiPrincipal, ApiKey]:
        """The principal of an API key however it was sent; 401 unless it is usable."""
        key = api_key_lookup(secret)
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown API key.", code="unknown_key")
        now = timezone.now()
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key was revoked.", code="revoked_key")
        if key.expires_at is not None and key.expires_at <= now:
            raise exceptions.AuthenticationFailed("This API key has expired.", code="expired_key")
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return ApiPrincipal(member=key.member, api_key=key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="cordiale"'

    @staticmethod
    def problem_codes(view: Any, method: str) -> dict[int, tuple[str, ...]]:
        """The problems this policy answers (the OpenAPI schema's)."""
        return {401: ("invalid_header", "unknown_key", "revoked_key", "expired_key")}
