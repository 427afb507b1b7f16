"""Where a webhook may point: https, public addresses, checked again at delivery."""

from __future__ import annotations

from typing import Any

import pytest

from exchange.models import WebhookDelivery
from exchange.webhooks.delivery import webhook_deliver
from exchange.webhooks.endpoints import webhook_create
from exchange.webhooks.targets import webhook_target_check
from forum.errors import DomainError
from tests.factories import make_party, pdq
from tests.support.receivers import Receiver

PRIVATE = [
    "https://127.0.0.1/hook",
    "https://10.1.2.3/hook",
    "https://172.16.0.1/",
    "https://192.168.1.1/",
    "https://169.254.169.254/latest/meta-data/",
    "https://100.64.0.1/",
    "https://0.0.0.0/",
    "https://[::1]/",
    "https://[fe80::1]/",
    "https://[fd00::1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://224.0.0.1/",
    "https://localhost/",
]


@pytest.fixture
def strict(settings: Any) -> None:
    settings.DEBUG = False
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = False


@pytest.mark.parametrize("url", PRIVATE)
def test_private_targets_are_refused(strict: None, url: str) -> None:
    """Loopback, private, link-local, shared, multicast and unspecified: private_address."""
    with pytest.raises(DomainError) as caught:
        webhook_target_check(url=url)
    assert caught.value.code == "private_address"


@pytest.mark.parametrize("url", PRIVATE[:-1])
def test_private_targets_are_allowed_when_configured(settings: Any, url: str) -> None:
    """With private addresses allowed, a URL on a private address passes the check (default port 443
    for HTTPS)."""
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    assert webhook_target_check(url=url).port == 443


@pytest.mark.parametrize(
    "url",
    [
        "http://203.0.113.7/hook",  # plain http outside debug
        "ftp://example.com/",
        "https://user:pw@example.com/",
        "https://example.com/#frag",
        "https:///nohost",
        "https://example.com:99999/",
        "",
    ],
)
def test_malformed_or_insecure_urls_are_refused(strict: None, url: str) -> None:
    """A malformed or insecure URL is refused with ``invalid_url``."""
    with pytest.raises(DomainError) as caught:
        webhook_target_check(url=url)
    assert caught.value.code == "invalid_url"


def test_a_public_name_is_accepted_and_pinned(
    strict: None, resolve: dict[str, str], settings: Any
) -> None:
    """The checked address is the one delivery connects to; the name goes in Host/SNI."""
    settings.CORDIALE_WEBHOOK_ALLOWED_PORTS = [8443]  # beside 443, the default
    resolve["hooks.example.org"] = "93.184.215.14"
    target = webhook_target_check(url="https://hooks.example.org:8443/in?x=1")
    assert target.connect_url == "https://93.184.215.14:8443/in?x=1"
    assert target.host_header == "hooks.example.org:8443"


def test_a_name_that_resolves_to_a_private_address_is_refused(
    strict: None, resolve: dict[str, str]
) -> None:
    """A host name that resolves to a private address is refused with ``private_address``."""
    resolve["rebind.example.org"] = "127.0.0.1"
    with pytest.raises(DomainError) as caught:
        webhook_target_check(url="https://rebind.example.org/")
    assert caught.value.code == "private_address"


@pytest.mark.django_db
def test_dns_rebinding_after_creation_is_caught_at_delivery(
    settings: Any, resolve: dict[str, str]
) -> None:
    """A name that was public at creation and points inside at delivery gets no request;
    the attempt is logged with the reason and retried later."""
    settings.DEBUG = True  # allows http, still refuses private addresses
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = False
    receiver = Receiver()
    port = receiver.server.server_address[1]
    settings.CORDIALE_WEBHOOK_ALLOWED_PORTS = [port]  # debug allows 80 and 443 only
    try:
        acme, globex = make_party(), make_party()
        resolve["rebind.example.org"] = "93.184.215.14"
        endpoint, _ = webhook_create(
            member=globex.member, url=f"http://rebind.example.org:{port}/h", actor="test"
        )
        acme.submit(acme.statement("pdq", pdq()))
        resolve["rebind.example.org"] = "127.0.0.1"
        assert webhook_deliver(endpoint_id=endpoint.pk) == "failed"
        attempt = WebhookDelivery.objects.get(endpoint=endpoint)
        assert attempt.error.startswith("private_address")
        assert receiver.requests == []
    finally:
        receiver.close()


@pytest.mark.django_db
def test_delivery_connects_to_the_checked_address_with_the_name_as_host(
    settings: Any, resolve: dict[str, str]
) -> None:
    """A delivery connects to the address the check resolved and sends the endpoint's host name in
    the Host header."""
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    receiver = Receiver()
    port = receiver.server.server_address[1]
    try:
        acme, globex = make_party(), make_party()
        resolve["hooks.example.org"] = "127.0.0.1"
        endpoint, _ = webhook_create(
            member=globex.member, url=f"http://hooks.example.org:{port}/h", actor="test"
        )
        acme.submit(acme.statement("pdq", pdq()))
        assert webhook_deliver(endpoint_id=endpoint.pk) == "caught_up"
        assert receiver.requests[0].headers["host"] == f"hooks.example.org:{port}"
    finally:
        receiver.close()
