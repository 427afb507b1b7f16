"""The served OpenAPI schema: valid, complete, and truthful about the problem codes.

The codes are compared with the source: every ``code`` the server's code can give a
problem (a ``DomainError`` subclass's, any literal ``code=`` argument: of a DomainError,
a DRF exception or a problem built by hand; ``forum.api``'s DRF mapping) is documented
on some operation, unless it is listed below as one the API cannot answer, with the
reason; and nothing is documented that the code cannot raise. Which operation answers
which code is checked by the schemathesis run (tests/exchange/test_api_fuzz.py) against
each answer.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from openapi_spec_validator import validate

from forum.api import _DRF_CODES
from forum.errors import DomainError

ROOT = Path(__file__).resolve().parents[2]
SERVER_PACKAGES = ("forum", "members", "exchange")
NOT_SERVER = ("exchange/client/", "/migrations/")

# Codes in the source that no API operation answers, and why.
NOT_FROM_THE_API = {
    # Answered to any request before or outside an operation (forum/api.py, urls).
    "internal_error": "the 500 handler: a bug, which the fuzzing run looks for",
    "bad_request": "Django's 400 handler (a disallowed Host header), before routing",
    "method_not_allowed": "a method the path does not have: not an operation",
    # DRF's fallbacks, when a policy raises without a code; ours always give one.
    "authentication_failed": "ApiKeyAuthentication always names the reason",
    "permission_denied": "HasScope always names the reason (and the 403 page, for forms)",
    # Service guards behind a serializer that refuses first with invalid_request.
    "invalid_category": "OpinionInput refuses an unknown category first",
    "invalid_tags": "OpinionInput refuses bad tags first",
    "invalid_start": "WebhookInput refuses an unknown start first",
    # The admin's and the command line's services (members/, exchange/services/incidents.py).
    "commitments_missing": "membership applications (admin)",
    "member_exists": "member creation (admin, manage.py)",
    "unknown_user": "staff accounts (manage.py)",
    "invalid_status": "member status (manage.py)",
    "invalid_scopes": "API key issue (admin, manage.py)",
    "group_exists": "sharing groups (admin, manage.py)",
    "conflict": "incidents and labels (admin)",
    "label_kind_fixed": "labels (admin)",
    "audit_chain_broken": "audit checkpoints (celery beat, manage.py verify_audit)",
    "port_in_use": "manage.py demo, before it serves",
    "invalid_argument": "management commands' arguments (manage.py)",
    # Deciding disputes: the admin and manage.py decide_dispute (exchange/disputes/).
    "invalid_decision": "decide_dispute's argument choices, the admin's form",
    "invalid_rationale": "dispute decisions (admin, manage.py)",
    "decision_not_permitted": "dispute decisions by staff without the permission",
    "already_approved": "the two-person rule of overturns (admin, manage.py)",
    "unreadable_archive": "manage.py verify_audit --jsonl",
    # The TAXII channel (exchange/taxii/) answers TAXII error messages, which TAXII's own
    # specification describes; its views are not in the OpenAPI schema (docs/api.md).
    "invalid_next": "TAXII: a next token this server did not issue for the collection",
    "collection_not_found": "TAXII: a collection id that is not the caller's",
    "object_not_found": "TAXII: an object id the caller's collection does not hold",
}


def _domain_error_codes() -> set[str]:
    codes: set[str] = set()
    todo: list[type[DomainError]] = [DomainError]
    while todo:
        cls = todo.pop()
        codes.add(cls.code)
        todo.extend(cls.__subclasses__())
    return codes


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def raisable_codes() -> set[str]:
    """Problem codes the server's source can produce."""
    import exchange.urls
    import forum.urls  # noqa: F401  (loads every view, hence every exception class)

    codes = _domain_error_codes() | {code for code, _ in _DRF_CODES.values()}
    for package in SERVER_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if any(part in path.as_posix() for part in NOT_SERVER):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                for keyword in node.keywords:
                    if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                        codes.add(keyword.value.value)
                if _call_name(node) == "_plain_problem":
                    codes.add(ast.literal_eval(node.args[1]))
    assert exchange.urls
    return codes


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    response = Client().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    ]


def documented_codes(schema: dict[str, Any]) -> dict[str, set[str]]:
    """Problem code -> the operations (``METHOD path status``) that document it."""
    out: dict[str, set[str]] = {}
    for method, path, operation in _operations(schema):
        for status, response in operation["responses"].items():
            content = response.get("content", {}).get("application/problem+json")
            if content is None:
                continue
            for code in content["schema"]["allOf"][1]["properties"]["code"]["enum"]:
                out.setdefault(code, set()).add(f"{method} {path} {status}")
    return out


def test_served_schema_is_valid_openapi(schema: dict[str, Any]) -> None:
    """openapi-spec-validator accepts the schema the forum serves at /api/v1/schema/."""
    validate(schema)
    assert schema["openapi"].startswith("3.")


def test_every_operation_documents_its_answers(schema: dict[str, Any]) -> None:
    """Each operation has a described success body (only a 204 has none), needs the
    bearer API key, and answers its errors as application/problem+json."""
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    for method, path, operation in _operations(schema):
        where = f"{method} {path}"
        assert operation["security"] == [{"ApiKey": []}], where
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert len(successes) == 1, where
        [(status, success)] = successes.items()
        if status == "204":
            assert "content" not in success, where
        else:
            body = success["content"]["application/json"]["schema"]
            assert "$ref" in body or body.get("type") == "array", where
        errors = {s: r for s, r in operation["responses"].items() if not s.startswith("2")}
        assert {"401", "403", "406"} <= set(errors), where
        for status, response in errors.items():
            assert list(response["content"]) == ["application/problem+json"], where
            narrowed = response["content"]["application/problem+json"]["schema"]["allOf"][1]
            assert narrowed["properties"]["status"]["enum"] == [int(status)], where


def test_list_endpoints_are_declared_as_arrays(schema: dict[str, Any]) -> None:
    """The endpoints that answer a JSON list are declared so (GET /api/v1/webhooks was
    declared an object)."""
    for path in ("webhooks", "webhooks/{id}/deliveries", "labels", "signal-types", "members"):
        body = schema["paths"][f"/api/v1/{path}"]["get"]["responses"]["200"]["content"]
        assert body["application/json"]["schema"]["type"] == "array", path


def test_problem_codes_match_the_code(schema: dict[str, Any]) -> None:
    """The schema documents every problem code the API can raise and no other."""
    raisable = raisable_codes()
    documented = documented_codes(schema)
    assert set(NOT_FROM_THE_API) <= raisable, "listed as not from the API but not in the code"
    assert not set(NOT_FROM_THE_API) & set(documented), "listed as not from the API"
    assert set(documented) <= raisable, "documented but nothing raises it"
    assert raisable - set(NOT_FROM_THE_API) <= set(documented), "raisable but undocumented"


def test_the_code_scan_sees_raised_codes() -> None:
    """The scan finds codes given as class attributes, as ``code=`` of a DomainError,
    of a DRF exception and of a problem built by hand, so the comparison can fail."""
    codes = raisable_codes()
    assert {"invalid_cursor", "missing_scope", "unknown_key", "request_too_large"} <= codes
    assert {"invalid_max_distance", "too_many_hashes", "too_many_webhooks"} <= codes
    assert "bad_signature" not in codes  # a submission result's code, not a problem's


def test_docs_page_is_self_hosted() -> None:
    """Swagger UI at /api/v1/docs/ loads its files from the forum, none from a CDN."""
    page = Client().get("/api/v1/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert 'src="http' not in page and 'href="http' not in page
