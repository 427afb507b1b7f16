"""TAXII clients' ways of sending the API key: ``Bearer`` or ``Token`` as everywhere, and
HTTP Basic with the key as the password (any username), which MISP, OpenCTI and
taxii2-client send when given a user and password."""

from __future__ import annotations

import base64
import binascii

from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header
from rest_framework.request import Request

from members.authentication import ApiKeyAuthentication, ApiPrincipal
from members.models import ApiKey


class TaxiiAuthentication(ApiKeyAuthentication):
    """``Bearer``/``Token <key>``, or ``Basic`` with the key as password: unknown → 401."""

    def authenticate(self, request: Request) -> tuple[ApiPrincipal, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != b"basic":
            return super().authenticate(request)
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Authorization header must be 'Basic <credentials>'.", code="invalid_header"
            )
        try:
            decoded = base64.b64decode(header[1], validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed(
                "Basic credentials must be base64 of 'user:api key'.", code="invalid_header"
            ) from None
        _, sep, password = decoded.partition(":")
        if not sep or not password:
            raise exceptions.AuthenticationFailed(
                "Send the API key as the Basic password.", code="invalid_header"
            )
        return self.authenticate_key(password)

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="cordiale-taxii"'
