"""
An HTTP client for the Cordiale wire contract (``/api/v1/``), on httpx.

Every endpoint has one typed method. Requests that fail transiently are retried, up to
``max_retries`` times, with exponential backoff and full jitter (attempt n waits a random
time up to ``min(backoff_cap, backoff_base * 2**n)`` seconds); a ``Retry-After`` header
from the server wins over our own delay. Transient means: 429 (throttled), 502 and 504
(a proxy could not reach the forum), 503 (the forum is unavailable, e.g.
``database_unavailable`` while PostgreSQL restarts), a connection error or a timeout. A
500 is a server bug and is not retried. Submitting statements is safe to retry because
the server applies a batch in one transaction and answers ``duplicate`` for a ``jti`` it
already processed; creating a webhook is not, so it is retried only on 429 or when the
request cannot have arrived (the connection was refused).

Errors become ``CordialeError`` carrying the RFC 9457 problem the server sent::

    try:
        client.submit([token])
    except CordialeError as exc:
        print(exc.status, exc.code, exc.detail, exc.errors)

Path values (signal values are often URLs) are percent-encoded completely, ``/`` included.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urljoin

import httpx

API_PREFIX = "/api/v1"
TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 5
# Full-jitter backoff: attempt n sleeps uniformly in [0, min(cap, base * 2**n)].
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
# Answers that say "try again later": throttled, bad gateway, unavailable, gateway timeout.
RETRIABLE_STATUSES = frozenset({429, 502, 503, 504})
# A server asking us to wait longer than this is treated as an outage, not a throttle.
MAX_RETRY_AFTER = 300.0

JSON = Any


class CordialeError(Exception):
    """A request that failed: the server's RFC 9457 problem, or a transport failure.

    ``status`` is the HTTP status (0 when no response arrived), ``code`` the problem's
    machine-readable code, ``errors`` its field errors.
    """

    def __init__(
        self,
        *,
        status: int,
        code: str,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{detail} ({code}, HTTP {status})" if status else f"{detail} ({code})")
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors or []
        self.problem = problem or {}

    @classmethod
    def from_response(cls, response: httpx.Response) -> CordialeError:
        """Build the error from a problem document, or from whatever the server sent."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            errors = body.get("errors")
            return cls(
                status=response.status_code,
                code=str(body.get("code") or _status_code_name(response.status_code)),
                detail=str(body.get("detail") or body.get("title") or response.reason_phrase),
                errors=errors if isinstance(errors, list) else None,
                problem=body,
            )
        text = response.text.strip()[:200] or response.reason_phrase
        return cls(
            status=response.status_code, code=_status_code_name(response.status_code), detail=text
        )

    def as_dict(self) -> dict[str, Any]:
        """The error as the CLI prints it in its last JSON line."""
        error: dict[str, Any] = {"status": self.status, "code": self.code, "detail": self.detail}
        if self.errors:
            error["errors"] = self.errors
        return error


def _status_code_name(status: int) -> str:
    return {
        400: "bad_request",
        401: "not_authenticated",
        403: "permission_denied",
        404: "not_found",
        429: "throttled",
    }.get(status, "server_error" if status >= 500 else f"http_{status}")


def _path_value(value: str) -> str:
    """Percent-encode one path segment completely: a URL value must stay one segment."""
    return quote(str(value), safe="")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC).timestamp()
    return max(0.0, when.timestamp() - current)


class CordialeClient:
    """A member's connection to the forum; use as a context manager or call ``close()``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = "cordiale-client/1",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json, application/problem+json",
                "User-Agent": user_agent,
            },
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # Directory

    def me(self) -> dict[str, Any]:
        """The caller's member, its API key's scopes and its signing keys."""
        result: dict[str, Any] = self._request("GET", "/me")
        return result

    def members(self) -> list[dict[str, Any]]:
        """Active members (slug, name)."""
        return _as_list(self._request("GET", "/members"))

    def jwks(self) -> dict[str, Any]:
        """All members' signing keys as a JWK set."""
        result: dict[str, Any] = self._request("GET", "/jwks")
        return result

    def member_jwks(self, slug: str) -> dict[str, Any]:
        """One member's signing keys as a JWK set."""
        result: dict[str, Any] = self._request("GET", f"/members/{_path_value(slug)}/jwks")
        return result

    def signal_types(self) -> list[dict[str, Any]]:
        return _as_list(self._request("GET", "/signal-types"))

    def labels(self) -> list[dict[str, Any]]:
        return _as_list(self._request("GET", "/labels"))

    # Statements and the feed

    def submit(self, statements: list[str]) -> dict[str, Any]:
        """Submit 1 to 10,000 signed statements; one result per item, in input order."""
        result: dict[str, Any] = self._request(
            "POST", "/statements", json={"statements": list(statements)}
        )
        return result

    def changes(self, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """One page of the change feed after ``cursor`` (from the beginning if None)."""
        params: dict[str, str | int] = {}
        if cursor is not None:
            params["cursor"] = cursor
        if limit is not None:
            params["limit"] = limit
        result: dict[str, Any] = self._request("GET", "/changes", params=params)
        return result

    def iter_changes(
        self, cursor: str | None = None, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Pages of the feed from ``cursor`` until ``has_more`` is false."""
        while True:
            page = self.changes(cursor, limit)
            yield page
            cursor = page.get("cursor", cursor)
            if not page.get("has_more"):
                return

    def lookup(self, signal_type: str, value: str) -> dict[str, Any] | None:
        """The signal's snapshot, or None if the caller cannot see it (or nobody sent it)."""
        try:
            result: dict[str, Any] = self._request(
                "GET", f"/signals/{_path_value(signal_type)}/{_path_value(value)}"
            )
        except CordialeError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def match(
        self,
        queries: Iterable[dict[str, str]],
        max_distance: int | None = None,
        *,
        vpdq_query_match_percent: float | None = None,
        vpdq_compared_match_percent: float | None = None,
    ) -> dict[str, Any]:
        """Match 1 to 1,000 ``{"signal_type", "value"}`` queries; closest matches first.

        For vpdq queries the two percentages filter the candidate videos (unset: the
        forum's defaults, python-threatexchange's matcher's)."""
        body: dict[str, Any] = {"queries": list(queries)}
        if max_distance is not None:
            body["max_distance"] = max_distance
        if vpdq_query_match_percent is not None:
            body["vpdq_query_match_percent"] = vpdq_query_match_percent
        if vpdq_compared_match_percent is not None:
            body["vpdq_compared_match_percent"] = vpdq_compared_match_percent
        result: dict[str, Any] = self._request("POST", "/match", json=body)
        return result

    # Opinions

    def set_opinion(
        self,
        signal_type: str,
        value: str,
        *,
        category: str,
        tags: Iterable[str] = (),
        reason: str = "",
    ) -> dict[str, Any]:
        """Set the caller's opinion (positive, negative, investigation) on a visible signal."""
        body = {"category": category, "tags": list(tags), "reason": reason}
        return _as_dict(self._request("PUT", self._opinion_path(signal_type, value), json=body))

    def delete_opinion(self, signal_type: str, value: str) -> None:
        """Withdraw the caller's opinion on a signal."""
        self._request("DELETE", self._opinion_path(signal_type, value))

    @staticmethod
    def _opinion_path(signal_type: str, value: str) -> str:
        return f"/opinions/{_path_value(signal_type)}/{_path_value(value)}"

    # Disputes

    def open_dispute(
        self,
        signal_type: str,
        value: str,
        *,
        grounds: str,
        reason: str,
        proposed_labels: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Open a dispute on a signal you may see (``not_tvec``, ``wrong_label``,
        ``benign_collision`` or ``other``); the answer is the dispute."""
        body = {
            "signal_type": signal_type,
            "value": value,
            "grounds": grounds,
            "reason": reason,
            "proposed_labels": list(proposed_labels),
        }
        return _as_dict(self._request("POST", "/disputes", json=body, idempotent=False))

    def disputes(
        self, *, status: str | None = None, before: int | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """One page of the disputes on signals you may see, newest first."""
        params = {
            k: v for k, v in {"status": status, "before": before, "limit": limit}.items() if v
        }
        return _as_dict(self._request("GET", "/disputes", params=params))

    def dispute(self, dispute_id: int) -> dict[str, Any]:
        return _as_dict(self._request("GET", f"/disputes/{int(dispute_id)}"))

    def respond_to_dispute(self, dispute_id: int, text: str) -> dict[str, Any]:
        """Answer a dispute on your statement."""
        path = f"/disputes/{int(dispute_id)}/responses"
        return _as_dict(self._request("POST", path, json={"text": text}, idempotent=False))

    # Webhooks

    def create_webhook(
        self,
        url: str,
        *,
        signal_types: Iterable[str] | None = None,
        labels: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Create an endpoint; the answer holds its ``whsec_`` secret, shown only this once."""
        body: dict[str, Any] = {"url": url}
        if signal_types is not None:
            body["signal_types"] = list(signal_types)
        if labels is not None:
            body["labels"] = list(labels)
        return _as_dict(self._request("POST", "/webhooks", json=body, idempotent=False))

    def list_webhooks(self) -> list[dict[str, Any]]:
        return _as_list(self._request("GET", "/webhooks"))

    def get_webhook(self, webhook_id: str | int) -> dict[str, Any]:
        return _as_dict(self._request("GET", f"/webhooks/{_path_value(str(webhook_id))}"))

    def update_webhook(self, webhook_id: str | int, **fields: Any) -> dict[str, Any]:
        """PATCH the endpoint with ``fields`` (for example ``url``, ``signal_types``)."""
        path = f"/webhooks/{_path_value(str(webhook_id))}"
        return _as_dict(self._request("PATCH", path, json=fields))

    def delete_webhook(self, webhook_id: str | int) -> None:
        self._request("DELETE", f"/webhooks/{_path_value(str(webhook_id))}")

    def webhook_deliveries(self, webhook_id: str | int) -> list[dict[str, Any]]:
        path = f"/webhooks/{_path_value(str(webhook_id))}/deliveries"
        return _as_list(self._request("GET", path))

    def ping_webhook(self, webhook_id: str | int) -> dict[str, Any]:
        path = f"/webhooks/{_path_value(str(webhook_id))}/ping"
        return _as_dict(self._request("POST", path, idempotent=False))

    def rotate_webhook_secret(self, webhook_id: str | int) -> dict[str, Any]:
        """A new ``whsec_`` secret for the endpoint, shown only in this answer.

        Not retried after it may have arrived: a second rotation would make the first
        answer's secret useless.
        """
        path = f"/webhooks/{_path_value(str(webhook_id))}/rotate-secret"
        return _as_dict(self._request("POST", path, idempotent=False))

    def enable_webhook(self, webhook_id: str | int) -> dict[str, Any]:
        """Re-enable an endpoint the forum disabled; deliveries resume from its cursor."""
        path = f"/webhooks/{_path_value(str(webhook_id))}/enable"
        return _as_dict(self._request("POST", path))

    # Signing keys (self-service)

    def list_signing_keys(self) -> list[dict[str, Any]]:
        """The member's own keys with their status (``pending``, ``active``, ...)."""
        return _as_list(self._request("GET", "/signing-keys"))

    def register_signing_key(
        self, jwk: dict[str, Any], *, proof: str | None = None
    ) -> dict[str, Any]:
        """Register a public key: pending until an admin approves it, or active at once
        with a ``proof`` signed by one of the member's active keys (``key_proof``).

        Retrying is safe: a second attempt after a lost answer gets ``key_exists``.
        """
        body: dict[str, Any] = {"jwk": jwk}
        if proof is not None:
            body["proof"] = proof
        return _as_dict(self._request("POST", "/signing-keys", json=body))

    def retire_signing_key(self, kid: str) -> dict[str, Any]:
        """Retire a key: it signs nothing new; what it signed stays valid."""
        return _as_dict(self._request("DELETE", f"/signing-keys/{_path_value(kid)}"))

    # TAXII 2.1 (CONTRACT.md "TAXII 2.1 and STIX 2.1"): what a TIP is configured with

    def taxii_discovery(self) -> dict[str, Any]:
        """The TAXII discovery resource, ``GET /taxii2/``."""
        return _as_dict(self._taxii("/taxii2/"))

    def taxii_api_root(self, api_root: str) -> dict[str, Any]:
        """An API root resource (``versions``, ``max_content_length``)."""
        return _as_dict(self._taxii(self.same_origin_path(api_root)))

    def taxii_collections(self, api_root: str) -> list[dict[str, Any]]:
        """The collections the caller may read under ``api_root``."""
        body = _as_dict(self._taxii(self.same_origin_path(api_root).rstrip("/") + "/collections/"))
        collections = body.get("collections") or []
        return [item for item in collections if isinstance(item, dict)]

    def taxii_objects(
        self,
        api_root: str,
        collection_id: str,
        *,
        added_after: str | None = None,
        next: str | None = None,
        limit: int | None = None,
        match: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One page of a collection's objects: the envelope (``more``, ``next``,
        ``objects``). ``match`` holds the filters without their ``match[...]`` wrapping:
        ``{"type": "indicator"}``."""
        params: dict[str, Any] = {
            name: value
            for name, value in (("added_after", added_after), ("next", next), ("limit", limit))
            if value is not None
        }
        params.update({f"match[{name}]": value for name, value in (match or {}).items()})
        path = self.same_origin_path(api_root).rstrip("/")
        return _as_dict(
            self._request(
                "GET",
                f"{path}/collections/{_path_value(collection_id)}/objects/",
                params=params,
                prefix="",
                accept=TAXII_MEDIA_TYPE,
            )
        )

    def same_origin_path(self, url: str) -> str:
        """The path of ``url`` (absolute, or relative to the forum's TAXII discovery), which
        must lie on the forum's own origin: the API key goes nowhere else."""
        absolute = urljoin(self.base_url + "/taxii2/", url)
        base = httpx.URL(self.base_url + "/")
        target = httpx.URL(absolute)
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            raise CordialeError(
                status=0,
                code="foreign_taxii_root",
                detail=f"the forum's TAXII discovery names {absolute}, outside {self.base_url}; "
                "the API key is not sent there",
            )
        base_path = base.path.rstrip("/")
        return target.path.removeprefix(base_path) or "/"

    def taxii_url(self, path: str) -> str:
        """The absolute URL of a TAXII path on the forum."""
        return self.base_url + path

    def _taxii(self, path: str) -> JSON:
        return self._request("GET", path, prefix="", accept=TAXII_MEDIA_TYPE)

    # Transport

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: JSON = None,
        idempotent: bool = True,
        prefix: str = API_PREFIX,
        accept: str | None = None,
    ) -> JSON:
        url = prefix + path
        headers = {"Accept": accept} if accept else None
        attempt = 0
        while True:
            try:
                response = self._http.request(
                    method, url, params=params, json=json, headers=headers
                )
            except httpx.TransportError as exc:
                # A connect failure means the request never left; others may have arrived.
                retriable = idempotent or isinstance(exc, httpx.ConnectError)
                if not retriable or attempt >= self.max_retries:
                    raise CordialeError(
                        status=0,
                        code="connection_error",
                        detail=f"{type(exc).__name__}: {exc} ({self.base_url})",
                    ) from exc
                self._sleep(self._backoff(attempt, None))
                attempt += 1
                continue
            if response.is_success:
                if response.status_code == 204 or not response.content:
                    return None
                try:
                    return response.json()
                except ValueError as exc:
                    raise CordialeError(
                        status=response.status_code,
                        code="invalid_response",
                        detail=f"the server did not answer JSON: {response.text[:200]!r}",
                    ) from exc
            status = response.status_code
            retriable = status == 429 or (idempotent and status in RETRIABLE_STATUSES)
            if not retriable or attempt >= self.max_retries:
                raise CordialeError.from_response(response)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            self._sleep(self._backoff(attempt, retry_after))
            attempt += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))


def _as_list(body: JSON) -> list[dict[str, Any]]:
    """A list endpoint's items, whether the server paginates (``results``) or not."""
    if isinstance(body, dict):
        for key in ("results", "keys", "items"):
            if isinstance(body.get(key), list):
                return list(body[key])
    if isinstance(body, list):
        return body
    raise CordialeError(
        status=200, code="invalid_response", detail=f"expected a list, got {str(body)[:200]}"
    )


def _as_dict(body: JSON) -> dict[str, Any]:
    return body if isinstance(body, dict) else {}
