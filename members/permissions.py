"""Authorisation policy: an active member whose key has the view's scopes."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .authentication import ApiPrincipal


def scope_require(principal: ApiPrincipal, scope: str) -> None:
    """Raise 403 ``missing_scope`` unless the principal's key holds ``scope``; for views
    whose need depends on the request body (a webhook PATCH that changes the URL)."""
    if scope not in principal.api_key.scopes:
        raise exceptions.PermissionDenied(
            f"This API key lacks the {scope!r} scope.", code="missing_scope"
        )


class HasScope(BasePermission):
    """Allows a request from an active member whose key holds ``view.required_scope``
    (``None``: any valid key of an active member) and the scopes ``view.method_scopes``
    adds for the request's method."""

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.user
        if not isinstance(principal, ApiPrincipal):
            raise exceptions.NotAuthenticated(
                "Send 'Authorization: Bearer <api key>'.", code="not_authenticated"
            )
        if not principal.member.is_active:
            raise exceptions.PermissionDenied(
                f"Member {principal.member.slug} is {principal.member.status}.",
                code="member_not_active",
            )
        scope = getattr(view, "required_scope", None)
        if scope is not None:
            scope_require(principal, scope)
        method_scopes: dict[str, tuple[str, ...]] = getattr(view, "method_scopes", {})
        for extra in method_scopes.get(request.method or "", ()):
            scope_require(principal, extra)
        return True

    @staticmethod
    def problem_codes(view: Any, method: str) -> dict[int, tuple[str, ...]]:
        """The problems this policy answers for the view (the OpenAPI schema's)."""
        forbidden = ["member_not_active"]
        if getattr(view, "required_scope", None) or getattr(view, "method_scopes", {}).get(method):
            forbidden.append("missing_scope")
        return {401: ("not_authenticated",), 403: tuple(forbidden)}
