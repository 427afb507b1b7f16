"""The OpenAPI schema's problem responses: which RFC 9457 problems each operation answers.

An operation's problems come from two places, so that a view states only its own:

- the DRF policy classes it runs, each declaring the problems it raises in a
  ``problem_codes(view, method)`` hook (authentication: 401; permissions: 403;
  throttles: 429 and 413), plus what every request may meet on the way (406 from
  content negotiation, 413 ``request_too_large`` from the body size limit for an
  operation with a body, 404 ``not_found`` for a path that has parameters);
- the view method, decorated with ``@problems({400: ["invalid_limit"], ...})``.

Each status becomes a response with ``application/problem+json`` whose schema is the
shared ``Problem`` component narrowed to that status and to the ``code`` values the
operation can raise, with one example per code::

    "401": {"content": {"application/problem+json": {"schema": {"allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {"properties": {"status": {"enum": [401]}, "code": {"enum": ["unknown_key", ...]}}}
    ]}}}}

``tests/members/test_openapi.py`` checks that the codes documented across the schema
are exactly the codes the API can raise, and the schemathesis run checks each answer
against its operation's list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from drf_spectacular import openapi
from rest_framework import serializers

from .api import PROBLEM_BASE, PROBLEM_CONTENT_TYPE

ProblemCodes = Mapping[int, Iterable[str]]
F = TypeVar("F", bound=Callable[..., Any])

# What any request may meet before its view runs (forum/api.py, forum/middleware.py).
NEGOTIATION = {406: ("not_acceptable",)}
# Any operation, while the database does not answer (forum/api.py): retry after Retry-After.
DATABASE_DOWN = {503: ("database_unavailable",)}
BODY_LIMIT = {413: ("request_too_large",)}
PATH_NOT_FOUND = {404: ("not_found",)}
# A view that reads ``request.data`` (DRF's parser, then a serializer).
PARSED_BODY = {
    400: ("malformed_request", "invalid_request"),
    415: ("unsupported_media_type",),
}

_TITLES = {
    400: "Invalid request",
    401: "Not authenticated",
    403: "Permission denied",
    404: "Not found",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    410: "Gone",
    429: "Too many requests",
    503: "Service unavailable",
}
_BODY_METHODS = ("POST", "PUT", "PATCH")


def problems(codes: ProblemCodes) -> Callable[[F], F]:
    """Declare the problems a view method raises itself: ``{status: [code, ...]}``."""

    def decorate(method: F) -> F:
        declared: dict[int, set[str]] = {}
        for status, names in [*getattr(method, "problem_codes", {}).items(), *codes.items()]:
            declared.setdefault(status, set()).update(names)
        method.problem_codes = declared  # type: ignore[attr-defined]
        return method

    return decorate


def merge(*sources: ProblemCodes) -> dict[int, list[str]]:
    merged: dict[int, set[str]] = {}
    for source in sources:
        for status, names in source.items():
            merged.setdefault(status, set()).update(names)
    return {status: sorted(names) for status, names in sorted(merged.items())}


class FieldErrorSerializer(serializers.Serializer[Any]):
    field = serializers.CharField(help_text="The field at fault, `a.b[0]` for nested ones")
    code = serializers.CharField(help_text="Machine-readable reason, e.g. `required`")
    detail = serializers.CharField()


class ProblemSerializer(serializers.Serializer[Any]):
    """RFC 9457 problem details, as every error of the API is answered."""

    type = serializers.URLField(help_text=f"`{PROBLEM_BASE}<code>`")
    title = serializers.CharField(help_text="Short summary, for people")
    status = serializers.IntegerField(help_text="The HTTP status")
    detail = serializers.CharField(help_text="What went wrong with this request, for people")
    code = serializers.CharField(help_text="Stable machine-readable code (snake_case)")
    # The metaclass takes declared fields off the class: this does not hide `.errors`.
    errors = FieldErrorSerializer(  # type: ignore[assignment]
        many=True, required=False, help_text="Field errors, if any"
    )

    class Meta:
        ref_name = "Problem"


_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": 'The scheme to use: `Bearer realm="cordiale"`',
        }
    },
    429: {
        "Retry-After": {
            "schema": {"type": "integer"},
            "description": "Seconds to wait before trying again",
        }
    },
    503: {
        "Retry-After": {
            "schema": {"type": "integer"},
            "description": "Seconds to wait before trying again",
        }
    },
}


def _example(status: int, code: str) -> dict[str, Any]:
    return {
        "summary": code,
        "value": {
            "type": PROBLEM_BASE + code,
            "title": _TITLES.get(status, "Error"),
            "status": status,
            "detail": "What went wrong, in words.",
            "code": code,
        },
    }


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema, with each operation's problem responses added."""

    def problem_codes(self) -> dict[int, list[str]]:
        view, method = self.view, self.method
        sources: list[ProblemCodes] = [NEGOTIATION, DATABASE_DOWN]
        for policy in [
            *view.get_authenticators(),
            *view.get_permissions(),
            *view.get_throttles(),
        ]:
            hook = getattr(policy, "problem_codes", None)
            if hook is not None:
                sources.append(hook(view, method))
        if method in _BODY_METHODS and self.get_request_serializer() is not None:
            sources.append(BODY_LIMIT)
        if "{" in self.path:
            sources.append(PATH_NOT_FOUND)
        handler = getattr(view, method.lower(), None)
        sources.append(getattr(handler, "problem_codes", {}))
        return merge(*sources)

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        component = self.resolve_serializer(ProblemSerializer, "response")
        for status, codes in self.problem_codes().items():
            narrowed = {
                "type": "object",
                "properties": {
                    "status": {"type": "integer", "enum": [status]},
                    "code": {"type": "string", "enum": codes},
                },
            }
            response: dict[str, Any] = {
                "description": f"{_TITLES.get(status, 'Error')}: `{'`, `'.join(codes)}`",
                "content": {
                    PROBLEM_CONTENT_TYPE: {
                        "schema": {"allOf": [component.ref, narrowed]},
                        "examples": {code: _example(status, code) for code in codes},
                    }
                },
            }
            if status in _HEADERS:
                response["headers"] = _HEADERS[status]
            responses[str(status)] = response
        return responses
