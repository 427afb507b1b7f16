"""API conventions shared by every endpoint: domain errors and RFC 9457 problem details.

Every error leaves the API as ``application/problem+json``::

    {"type": "https://cordiale.example/problems/not_authenticated",
     "title": "Not authenticated", "status": 401,
     "detail": "Send Authorization: Bearer <api key>.", "code": "not_authenticated"}

Field errors add ``errors: [{"field": ..., "code": ..., "detail": ...}]``. The ``code``
is stable and machine-readable; ``title`` and ``detail`` are for people.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from .errors import DomainError

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://cordiale.example/problems/"


def problem(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = Response(body, status=body["status"], headers=headers)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


# Seconds a client is asked to wait when the database does not answer: a PostgreSQL
# restart or fail-over takes a few; the client library retries after this delay.
DATABASE_RETRY_AFTER = 5


def is_database_unavailable(exc: BaseException | None) -> bool:
    """True for the errors of a database that is down, restarting or cut off.

    Django raises ``OperationalError`` when it cannot connect or the server ends the
    session (shutdown, restart, terminated backend) and ``InterfaceError`` when a
    connection it holds is already closed. Both are transient for the client, which may
    retry: a submission applies in one transaction, so a retried batch is either applied
    then or answered ``duplicate`` if the first try had committed.
    """
    return isinstance(exc, OperationalError | InterfaceError)


def database_unavailable_problem() -> tuple[dict[str, Any], dict[str, str]]:
    """The 503 problem body and headers for a request the database could not serve."""
    body = problem(
        status=503,
        code="database_unavailable",
        title="Database unavailable",
        detail="The database is not answering (restart or fail-over in progress); "
        f"retry after {DATABASE_RETRY_AFTER} seconds.",
    )
    return body, {"Retry-After": str(DATABASE_RETRY_AFTER)}


_DRF_CODES: dict[type[exceptions.APIException], tuple[str, str]] = {
    exceptions.NotAuthenticated: ("not_authenticated", "Not authenticated"),
    exceptions.AuthenticationFailed: ("authentication_failed", "Authentication failed"),
    exceptions.PermissionDenied: ("permission_denied", "Permission denied"),
    exceptions.NotFound: ("not_found", "Not found"),
    exceptions.MethodNotAllowed: ("method_not_allowed", "Method not allowed"),
    exceptions.NotAcceptable: ("not_acceptable", "Not acceptable"),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", "Unsupported media type"),
    exceptions.Throttled: ("throttled", "Too many requests"),
    exceptions.ParseError: ("malformed_request", "Malformed request body"),
    exceptions.ValidationError: ("invalid_request", "Invalid request"),
}


def _field_errors(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """Flatten DRF's nested validation errors into ``[{field, code, detail}]``."""
    out: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix
            out.extend(_field_errors(value, name))
    elif isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail) for item in detail):
            for item in detail:
                out.append({"field": prefix, "code": str(item.code), "detail": str(item)})
        else:
            for index, item in enumerate(detail):
                out.extend(_field_errors(item, f"{prefix}[{index}]"))
    elif isinstance(detail, exceptions.ErrorDetail):
        out.append({"field": prefix, "code": str(detail.code), "detail": str(detail)})
    return out


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler: every error becomes an RFC 9457 problem with a ``code``."""
    if isinstance(exc, DomainError):
        set_rollback()
        body = problem(
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            errors=exc.errors,
        )
        return problem_response(body)
    if is_database_unavailable(exc):
        logger.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        set_rollback()
        return problem_response(*database_unavailable_problem())
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: Django's 500 handler answers with a problem too

    set_rollback()
    code, title = "error", "Error"
    for cls in type(exc).__mro__:
        if cls in _DRF_CODES:
            code, title = _DRF_CODES[cls]
            break
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(int(exc.wait or 1))  # type: ignore[attr-defined]

    errors: list[dict[str, str]] | None = None
    if isinstance(exc, exceptions.ValidationError):
        errors = _field_errors(exc.detail)
        detail = "; ".join(
            f"{e['field']}: {e['detail']}" if e["field"] else e["detail"] for e in errors
        )
    else:
        detail = str(exc.detail)
        specific = getattr(exc.detail, "code", None)
        # DRF's own default code (``parse_error``) yields to ours (``malformed_request``).
        if specific and specific not in ("error", "invalid", code, "not_found", exc.default_code):
            code = str(specific)
    return problem_response(
        problem(status=exc.status_code, code=code, title=title, detail=detail, errors=errors),
        headers=headers,
    )


def _plain_problem(status_code: int, code: str, title: str, detail: str) -> HttpResponse:
    return JsonResponse(
        problem(status=status_code, code=code, title=title, detail=detail),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _plain_problem(404, "not_found", "Not found", f"No resource at {request.path}.")


def handler500(request: HttpRequest) -> HttpResponse:
    """Django's last resort; also reached by database errors outside DRF's views (in a
    middleware, the admin, a plain view), which get the same 503 as the API's."""
    if is_database_unavailable(sys.exc_info()[1]):
        body, headers = database_unavailable_problem()
        return JsonResponse(body, status=503, content_type=PROBLEM_CONTENT_TYPE, headers=headers)
    return _plain_problem(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        "internal_error",
        "Internal server error",
        "The server failed; the incident was logged.",
    )


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _plain_problem(400, "bad_request", "Bad request", "The request could not be read.")


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _plain_problem(403, "permission_denied", "Permission denied", "Not allowed.")
