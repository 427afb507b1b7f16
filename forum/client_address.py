"""The address of the client behind the forum's own reverse proxies.

``REMOTE_ADDR`` is the peer that opened the connection: behind a proxy, the proxy. The
proxy reports the address it saw by appending it to ``X-Forwarded-For``, but a client
may send that header too, with anything in it. So the header is read only when the peer
is one of ``CORDIALE_TRUSTED_PROXIES`` (addresses or CIDR networks), and only from the
right: walking ``X-Forwarded-For: <forged>, 203.0.113.9`` back from ``REMOTE_ADDR``, each
trusted proxy vouches for the hop before it, and the first address that is not a trusted
proxy is the client (203.0.113.9); what lies left of it was written by the client and is
ignored. With no trusted proxies the header is never read.

django-axes counts failed sign-ins by this address (``AXES_CLIENT_IP_CALLABLE``) and the
audit log records it, so both see the same client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_proxy_networks(values: Sequence[str]) -> list[Network]:
    """Parse ``CORDIALE_TRUSTED_PROXIES`` entries; ``ValueError`` names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"CORDIALE_TRUSTED_PROXIES: {value!r} is not an address") from exc
    return networks


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    # An IPv4 client reaching an IPv6 socket shows as ::ffff:a.b.c.d.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def client_address(request: HttpRequest) -> str | None:
    """The client's address: ``REMOTE_ADDR`` unless that is a trusted proxy (see above)."""
    remote: str | None = request.META.get("REMOTE_ADDR")
    networks = trusted_proxy_networks(getattr(settings, "CORDIALE_TRUSTED_PROXIES", []))
    if not networks or remote is None:
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop for hop in forwarded.split(",") if hop.strip()]
    closest = remote
    for hop in reversed([*hops, remote]):
        ip = _parse(hop)
        if ip is None:
            # Garbage in the chain: trust nothing past it; the last proxy is all we know.
            return closest
        if not any(ip in network for network in networks):
            return str(ip)
        closest = str(ip)
    return closest  # only proxies in the chain: a request from the proxies' own network
