"""Where a webhook may point: the URL and address checks (``webhook_target_check``).

The server makes requests on a member's behalf, so a URL
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
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import idna
from django.conf import settings

from forum.errors import DomainError

MAX_URL_LENGTH = 2000


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
