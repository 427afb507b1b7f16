"""Webhook endpoints: creating, changing and deleting them, and where they may point.

Where a webhook may point. The server makes requests on a member's behalf, so a URL
must not turn it into a probe of the forum's own network (SSRF). A URL is ``https``
(``http`` only under ``DJANGO_DEBUG`` or ``CORDIALE_WEBHOOK_ALLOW_PRIVATE``), has no
credentials or fragment, and every address its host resolves to is a public unicast
address: loopback, private, link-local, shared, reserved, multicast and unspecified
addresses are refused unless ``CORDIALE_WEBHOOK_ALLOW_PRIVATE``, and so are IPv6
addresses that carry an IPv4 address which is not public (IPv4-mapped and -compatible,
NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``), the local-use NAT64 prefix
``64:ff9b:1::/48`` and the deprecated site-local ``fec0::/10``. The port is 443, 80 too
where plain http is allowed, or one of ``CORDIALE_WEBHOOK_ALLOWED_PORTS``; with
``CORDIALE_WEBHOOK_ALLOW_PRIVATE`` any port (a closed network or a test suite, whose
receivers listen on random ports). A host name is stored in its ASCII form (IDNA 2008
with UTS 46 mapping: ``https://bücher.example/`` is kept as
``https://xn--bcher-kva.example/``), the form DNS, TLS and the Host header all use.

The check runs when the endpoint is created or its URL changed, and again before every
delivery; delivery then connects to the address it checked (not to a second resolution
of the name), so a DNS answer that changes between the check and the connection
(rebinding) gains nothing.

Where a new endpoint starts. By default at the current end of the member's feed: it
receives changes committed from now on (a member that wants the current state first
pulls the feed, or asks for ``"start": "beginning"``, which delivers every signal it
may currently see, then every change).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import idna
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exchange.models import Label, WebhookEndpoint
from exchange.signal_types import SIGNAL_TYPES
from exchange.webhook_secrets import secret_encrypt, secret_generate
from forum.errors import ConflictError, DomainError
from members.audit import audit_record
from members.models import Member

MAX_URL_LENGTH = 2000
STARTS = ("now", "beginning")


class InvalidWebhookUrl(DomainError):
    code = "invalid_url"
    title = "Invalid webhook URL"


class PrivateWebhookAddress(DomainError):
    code = "private_address"
    title = "Webhook URL points to a private address"


@dataclass(frozen=True)
class WebhookTarget:
    """A checked URL: connect to ``address``, present ``host`` (Host header, TLS SNI)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str

    @property
    def connect_url(self) -> str:
        ip = ipaddress.ip_address(self.address)
        literal = f"[{ip}]" if ip.version == 6 else str(ip)
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"

    @property
    def request_url(self) -> str:
        """The URL requested: by host name, which keys the connection pool and TLS."""
        return f"{self.scheme}://{self.host_header}{self.path}"


def _allow_private() -> bool:
    return bool(getattr(settings, "CORDIALE_WEBHOOK_ALLOW_PRIVATE", False))


def _plain_http_allowed() -> bool:
    return bool(settings.DEBUG) or _allow_private()


# IPv6 ranges that reach IPv4 hosts, each with where the IPv4 address sits: the check is
# on that address (RFC 6052 NAT64, RFC 3056 6to4, RFC 4291 IPv4-compatible).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# Never public: NAT64 for the operator's own network (RFC 8215) and the deprecated
# site-local range (RFC 3879), which Python still counts as global.
_NEVER_PUBLIC = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("fec0::/10"))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _is_public(address: str) -> bool:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in _NEVER_PUBLIC):
            return False
        ip = _embedded_ipv4(ip) or ip
    return ip.is_global and not ip.is_multicast


def _port_allowed(port: int) -> bool:
    if _allow_private():
        return True
    allowed = {443, *getattr(settings, "CORDIALE_WEBHOOK_ALLOWED_PORTS", [])}
    if _plain_http_allowed():
        allowed.add(80)
    return port in allowed


def _ascii_host(host: str) -> str:
    """The host as DNS and TLS know it: IDNA 2008 with UTS 46 mapping, lowercase."""
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidWebhookUrl(f"The host {host!r} is not a valid domain name ({exc}).") from None


def _parse_url(url: Any) -> tuple[str, str, int, str]:
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl(f"url must be a string of 1 to {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidWebhookUrl(f"url cannot be parsed: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and _plain_http_allowed()):
        raise InvalidWebhookUrl("url must use https.")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("url must not contain credentials; use the signing secret.")
    if parts.fragment:
        raise InvalidWebhookUrl("url must not contain a fragment.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidWebhookUrl("url must name a host.")
    host = _ascii_host(host)
    port = port or (443 if scheme == "https" else 80)
    if not _port_allowed(port):
        raise InvalidWebhookUrl(
            f"Port {port} is not allowed for webhooks: use 443 (https), or ask the forum's "
            "operators to allow it.",
            code="port_not_allowed",
        )
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, host, port, path


def webhook_url_normalize(*, url: str) -> str:
    """The URL as stored: its host in ASCII (punycode), everything else as given.

    Raises ``invalid_url`` (or ``port_not_allowed``) like the target check, without
    resolving the host."""
    _parse_url(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host.isascii():
        return url
    netloc = _ascii_host(host.rstrip(".")) + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _resolution_timeout() -> float:
    return min(float(settings.CORDIALE_WEBHOOK_TIMEOUT), 5.0)


def _resolve(host: str, port: int) -> list[Any]:
    """``getaddrinfo`` within a time limit. The member runs the name's DNS servers and
    may make them answer slowly; getaddrinfo cannot be interrupted, so it runs in a
    thread that is left behind (it ends when the resolver gives up) if it is late."""
    answer: dict[str, Any] = {}
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # an address literal: no DNS involved, and no thread needed (~0.1-0.5 ms)
        try:
            return socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        except OSError as exc:
            raise InvalidWebhookUrl(
                f"The address {host!r} cannot be used ({exc}).", code="unresolvable_host"
            ) from None

    def run() -> None:
        try:
            answer["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            answer["error"] = exc

    timeout = _resolution_timeout()
    resolver = threading.Thread(target=run, name="webhook-resolve", daemon=True)
    resolver.start()
    resolver.join(timeout)
    if resolver.is_alive():
        raise InvalidWebhookUrl(
            f"The host {host!r} did not resolve within {timeout:g} s.", code="unresolvable_host"
        )
    if "error" in answer:
        raise InvalidWebhookUrl(
            f"The host {host!r} does not resolve ({answer['error']}).", code="unresolvable_host"
        )
    return list(answer["infos"])


def webhook_target_check(*, url: str) -> WebhookTarget:
    """Parse, resolve and vet a webhook URL; raises ``invalid_url``, ``port_not_allowed``,
    ``unresolvable_host`` or ``private_address``."""
    scheme, host, port, path = _parse_url(url)
    infos = _resolve(host, port)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise InvalidWebhookUrl(f"The host {host!r} does not resolve.", code="unresolvable_host")
    if not _allow_private():
        # One private answer is enough to refuse: a name may mix them to get lucky.
        refused = [a for a in addresses if not _is_public(a)]
        if refused:
            raise PrivateWebhookAddress(
                f"The host {host!r} resolves to a loopback, private, link-local or reserved "
                "address; webhooks must point to the public internet."
            )
    return WebhookTarget(scheme, host, port, path, addresses[0].split("%", 1)[0])


def _check_filters(signal_types: Any, labels: Any) -> tuple[list[str], list[str]]:
    errors: list[dict[str, str]] = []
    if not isinstance(signal_types, list) or not all(isinstance(s, str) for s in signal_types):
        errors.append({"field": "signal_types", "code": "invalid", "detail": "a list of names"})
        signal_types = []
    if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
        errors.append({"field": "labels", "code": "invalid", "detail": "a list of label slugs"})
        labels = []
    for name in signal_types:
        if name not in SIGNAL_TYPES:
            errors.append({"field": "signal_types", "code": "unknown_signal_type", "detail": name})
    known = set(Label.objects.filter(slug__in=labels).values_list("slug", flat=True))
    for slug in labels:
        if slug not in known:
            errors.append({"field": "labels", "code": "unknown_label", "detail": slug})
    if errors:
        raise DomainError(
            "; ".join(f"{e['field']}: {e['code']} {e['detail']}" for e in errors),
            code="invalid_filter",
            errors=errors,
        )
    return sorted(set(signal_types)), sorted(set(labels))


def _state(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "url": endpoint.url,
        "signal_types": endpoint.signal_types,
        "labels": endpoint.labels,
        "active": endpoint.active,
        "status": endpoint.status,
    }


def _audit(endpoint: WebhookEndpoint, action: str, actor: str, before: Any, after: Any) -> None:
    audit_record(
        actor=actor,
        action=f"webhook.{action}",
        object_type="webhook",
        object_id=f"{endpoint.member.slug}/{endpoint.pk}",
        before=before,
        after=after,
    )


def webhook_cursor_at_head(*, member_id: int) -> str:
    """A cursor at the current end of the member's feed (positions in commit order)."""
    from exchange.feed import Cursor, Reader, advance, feed_head

    empty = Cursor({})
    reader = Reader(member_id)
    return advance(empty, reader.scans(empty), feed_head()).encode()


def webhook_create(
    *,
    member: Member,
    url: str,
    signal_types: list[str] | None = None,
    labels: list[str] | None = None,
    description: str = "",
    start: str = "now",
    actor: str,
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret; the secret is returned this once and never again."""
    url = webhook_url_normalize(url=url)
    webhook_target_check(url=url)
    types, label_slugs = _check_filters(signal_types or [], labels or [])
    if start not in STARTS:
        raise DomainError(f"start must be one of {', '.join(STARTS)}.", code="invalid_start")
    limit = settings.CORDIALE_WEBHOOK_MAX_PER_MEMBER
    secret = secret_generate()
    with transaction.atomic():
        Member.objects.select_for_update().filter(pk=member.pk).first()
        if WebhookEndpoint.objects.filter(member=member).count() >= limit:
            raise ConflictError(
                f"A member may have at most {limit} webhook endpoints.", code="too_many_webhooks"
            )
        cursor = webhook_cursor_at_head(member_id=member.pk) if start == "now" else ""
        endpoint = WebhookEndpoint.objects.create(
            member=member,
            url=url,
            description=description,
            signal_types=types,
            labels=label_slugs,
            secret_encrypted=secret_encrypt(secret),
            cursor=cursor,
            cursor_updated_at=timezone.now(),
        )
        _audit(endpoint, "created", actor, None, {**_state(endpoint), "start": start})
    if start == "beginning":
        from exchange.services.webhook_delivery import webhook_wake

        transaction.on_commit(lambda: webhook_wake(endpoint_id=endpoint.pk), robust=True)
    return endpoint, secret


def webhook_update(*, endpoint: WebhookEndpoint, actor: str, **changes: Any) -> WebhookEndpoint:
    """Change ``url``, ``signal_types``, ``labels``, ``description`` or ``active``."""
    unknown = set(changes) - {"url", "signal_types", "labels", "description", "active"}
    if unknown:
        raise DomainError(f"Cannot change {', '.join(sorted(unknown))}.", code="invalid_request")
    if "url" in changes:
        changes["url"] = webhook_url_normalize(url=changes["url"])
        webhook_target_check(url=changes["url"])
    if "signal_types" in changes or "labels" in changes:
        changes["signal_types"], changes["labels"] = _check_filters(
            changes.get("signal_types", endpoint.signal_types),
            changes.get("labels", endpoint.labels),
        )
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _state(endpoint)
        for name, value in changes.items():
            setattr(endpoint, name, value)
        endpoint.save(update_fields=list(changes))
        _audit(endpoint, "updated", actor, before, _state(endpoint))
    return endpoint


def webhook_delete(*, endpoint: WebhookEndpoint, actor: str) -> None:
    with transaction.atomic():
        _audit(endpoint, "deleted", actor, _state(endpoint), None)
        endpoint.delete()


def webhook_rotate_secret(*, endpoint: WebhookEndpoint, actor: str) -> tuple[WebhookEndpoint, str]:
    """A new secret; for a grace period deliveries carry signatures by both (the Standard
    Webhooks header holds several), so the receiver can switch without losing any."""
    secret = secret_generate()
    grace = timedelta(seconds=settings.CORDIALE_WEBHOOK_SECRET_GRACE)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_expires_at = timezone.now() + grace
        endpoint.secret_encrypted = secret_encrypt(secret)
        endpoint.save(
            update_fields=[
                "secret_encrypted",
                "previous_secret_encrypted",
                "previous_secret_expires_at",
            ]
        )
        _audit(
            endpoint, "secret_rotated", actor, None, {"grace_seconds": int(grace.total_seconds())}
        )
    return endpoint, secret


def webhook_enable(*, endpoint: WebhookEndpoint, actor: str) -> WebhookEndpoint:
    """Switch an endpoint on and clear its failure state; it resumes from its cursor."""
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _state(endpoint)
        endpoint.active = True
        endpoint.status = WebhookEndpoint.Status.HEALTHY
        endpoint.disabled_reason = ""
        endpoint.failing_since = None
        endpoint.next_attempt_at = None
        endpoint.attempts = 0
        endpoint.save(
            update_fields=[
                "active",
                "status",
                "disabled_reason",
                "failing_since",
                "next_attempt_at",
                "attempts",
            ]
        )
        _audit(endpoint, "enabled", actor, before, _state(endpoint))
    from exchange.services.webhook_delivery import webhook_wake

    transaction.on_commit(lambda: webhook_wake(endpoint_id=endpoint.pk), robust=True)
    return endpoint


def webhook_disable(*, endpoint_id: int, reason: str, actor: str) -> WebhookEndpoint | None:
    """Mark an endpoint disabled by the server (failing past the horizon)."""
    with transaction.atomic():
        endpoint = (
            WebhookEndpoint.objects.select_for_update()
            .select_related("member")
            .filter(pk=endpoint_id)
            .first()
        )
        if endpoint is None or endpoint.status == WebhookEndpoint.Status.DISABLED:
            return None
        before = _state(endpoint)
        endpoint.status = WebhookEndpoint.Status.DISABLED
        endpoint.disabled_reason = reason
        endpoint.next_attempt_at = None
        endpoint.save(update_fields=["status", "disabled_reason", "next_attempt_at"])
        _audit(endpoint, "disabled", actor, before, {**_state(endpoint), "reason": reason})
    return endpoint
