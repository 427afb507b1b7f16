"""A fake forum behind ``httpx.MockTransport``: the server side is outside the client.

Every fake transport checks the host it is called on: a mock that answers any host would
hide a client sending the member's API key somewhere other than the forum.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client import jws
from exchange.client.statements import build_statement, sign_statement

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
FORUM_HOST = "forum.example"
FORUM_URL = f"https://{FORUM_HOST}"


def forum_transport(
    handler: Callable[[httpx.Request], httpx.Response], host: str = FORUM_HOST
) -> httpx.MockTransport:
    """A mock transport that serves ``handler`` on the forum's host only."""

    def checked(request: httpx.Request) -> httpx.Response:
        assert request.url.host == host, (
            f"the client called {request.url.host}, not the forum ({host}): "
            f"{request.method} {request.url} with Authorization "
            f"{request.headers.get('Authorization')!r}"
        )
        return handler(request)

    return httpx.MockTransport(checked)


# The forum's own key, which signs receipts (CONTRACT.md "Receipts").
FORUM_KEY = Ed25519PrivateKey.generate()


def jwk_for(private_key: Ed25519PrivateKey, member: str, **extra: Any) -> dict[str, Any]:
    key = jws.public_jwk(jws.public_key_x(private_key.public_key()))
    return {**key, "member": member, "status": "active", **extra}


def forum_jwk(private_key: Ed25519PrivateKey = FORUM_KEY, **extra: Any) -> dict[str, Any]:
    """The forum's key as the JWKS publishes it: ``forum: true`` and no ``member``."""
    key = jws.public_jwk(jws.public_key_x(private_key.public_key()))
    return {**key, "forum": True, "status": "active", **extra}


def receipt_for(
    token: str,
    *,
    received_at: int,
    forum_key: Ed25519PrivateKey = FORUM_KEY,
    typ: str = "cordiale-receipt",
    **overrides: Any,
) -> str:
    """The forum's receipt of the statement ``token`` (claims changed by ``overrides``)."""
    statement = jws.parse_compact(token)
    claims = {
        "jti": statement.claims["jti"],
        "member": statement.claims["iss"],
        "kid": statement.kid,
        "received_at": received_at,
        **overrides,
    }
    kid = jws.jwk_thumbprint(jws.public_key_x(forum_key.public_key()))
    return jws.sign_compact(claims, forum_key, kid, typ=typ)


def snapshot(
    private_key: Ed25519PrivateKey,
    *,
    member: str = "acme",
    signal_type: str = "md5",
    value: str = MD5,
    labels: tuple[str, ...] = ("violent-attack",),
    iat: int = 1_764_400_000,
    received_at: int | None = None,
) -> dict[str, Any]:
    """A snapshot with one statement signed by ``private_key`` as ``member``, with the
    forum's receipt (received a second after ``iat`` unless ``received_at`` says when)."""
    claims = build_statement(
        issuer=member,
        signal_type=signal_type,
        value=value,
        op="assert",
        labels=list(labels),
        tlp="green",
        audience="forum",
        iat=iat,
    )
    token = sign_statement(claims, private_key)
    return {
        "signal_type": signal_type,
        "value": claims["value"],
        "deleted": False,
        "benign": False,
        "updated_at": "2025-11-29T08:00:00Z",
        "statements": [
            {
                "member": member,
                "kid": jws.parse_compact(token).kid,
                "iat": iat,
                "labels": list(labels),
                "benign": False,
                "tlp": "green",
                "audience": "forum",
                "exp": None,
                "jws": token,
                "receipt": receipt_for(
                    token, received_at=iat + 1 if received_at is None else received_at
                ),
            }
        ],
        "opinions": {
            "positive": 1,
            "negative": 0,
            "investigation": 0,
            "disputed": False,
            "mine": None,
        },
    }


class FakeForum:
    """Just enough of CONTRACT.md: /me, /jwks, /labels, /statements, /changes, /webhooks."""

    def __init__(self, member: str = "acme", host: str = FORUM_HOST) -> None:
        self.member = member
        self.host = host
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.keys: list[dict[str, Any]] = []
        self.forum_keys: list[dict[str, Any]] = [forum_jwk()]
        self.pages: list[dict[str, Any]] = []
        self.seen_jtis: dict[str, str] = {}
        self.requests: list[httpx.Request] = []
        self.submitted: list[list[str]] = []
        self.fail_submit_after: int | None = None
        # Statement values the fake rejects, with the code it gives (e.g. unknown_key).
        self.rejecting: dict[str, str] = {}
        self.jwks_calls = 0
        self.labels = [
            {"slug": slug, "name": slug.title(), "kind": "behaviour", "active": True}
            for slug in ("recruitment", "glorification", "violent-attack")
        ]

    def transport(self) -> httpx.MockTransport:
        return forum_transport(self.handle, self.host)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.removeprefix("/api/v1")
        if path == "/me":
            return httpx.Response(200, json={"member": {"slug": self.member}})
        if path == "/jwks":
            self.jwks_calls += 1
            return httpx.Response(200, json={"keys": self.keys + self.forum_keys})
        if path == "/labels":
            return httpx.Response(200, json=self.labels)
        if path == "/statements":
            return self._submit(json.loads(request.content)["statements"])
        if path == "/changes":
            cursor = request.url.params.get("cursor")
            index = int(cursor) if cursor else 0
            if index >= len(self.pages):
                return httpx.Response(
                    200, json={"changes": [], "cursor": str(index), "has_more": False}
                )
            return httpx.Response(200, json=self.pages[index])
        if path.startswith("/webhooks"):
            return self._webhooks(request, path.removeprefix("/webhooks").strip("/"))
        return httpx.Response(404, json={"code": "not_found", "detail": "no such thing"})

    def _webhooks(self, request: httpx.Request, rest: str) -> httpx.Response:
        """Create (POST /webhooks), rotate-secret and enable, as the server answers them."""
        if request.method == "POST" and not rest:
            number = len(self.webhooks) + 1
            body = json.loads(request.content)
            self.webhooks[number] = {"id": number, "url": body["url"], "active": True}
            return httpx.Response(201, json={**self.webhooks[number], "secret": f"whsec_{number}"})
        number_text, _, action = rest.partition("/")
        webhook = self.webhooks.get(int(number_text)) if number_text.isdigit() else None
        if webhook is None:
            return httpx.Response(404, json={"code": "not_found", "detail": "no such webhook"})
        if request.method == "POST" and action == "rotate-secret":
            return httpx.Response(200, json={**webhook, "secret": f"whsec_new{webhook['id']}"})
        if request.method == "POST" and action == "enable":
            webhook["active"] = True
            return httpx.Response(200, json=webhook)
        return httpx.Response(405, json={"code": "method_not_allowed", "detail": "no"})

    def _submit(self, tokens: list[str]) -> httpx.Response:
        interrupt = (
            self.fail_submit_after is not None and len(self.submitted) >= self.fail_submit_after
        )
        self.submitted.append(tokens)
        results = []
        for index, token in enumerate(tokens):
            claims = jws.parse_compact(token).claims
            jti = claims["jti"]
            if claims.get("value") in self.rejecting:
                code = self.rejecting[claims["value"]]
                results.append({"index": index, "status": "rejected", "code": code, "detail": code})
                continue
            if jti in self.seen_jtis:
                status = "duplicate" if self.seen_jtis[jti] == token else "rejected"
                results.append({"index": index, "status": status, "jti": jti})
                continue
            self.seen_jtis[jti] = token
            results.append({"index": index, "status": "accepted", "jti": jti})
        if interrupt:
            # The server committed the batch, but the member's process dies before the answer.
            raise KeyboardInterrupt
        counts = {s: sum(r["status"] == s for r in results) for s in ("accepted", "duplicate")}
        return httpx.Response(200, json={"results": results, **counts, "stale": 0, "rejected": 0})

    def add_page(self, changes: list[dict[str, Any]], *, has_more: bool) -> None:
        self.pages.append(
            {"changes": changes, "cursor": str(len(self.pages) + 1), "has_more": has_more}
        )
