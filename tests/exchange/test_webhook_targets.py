"""Where a webhook may point and how a delivery connects (issue #13, items 5 and 10).

Addresses that carry a private IPv4 address inside IPv6, ports, internationalised host
names, connection pooling per host name, and failures that must become logged attempts.
DNS is outside the system and faked; receivers are real HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exchange.models import WebhookDelivery, WebhookEndpoint
from exchange.webhooks.delivery import webhook_deliver
from exchange.webhooks.endpoints import webhook_create
from exchange.webhooks.targets import webhook_target_check
from forum.errors import DomainError
from tests.factories import make_party, pdq
from tests.support.receivers import Receiver

PUBLIC = "93.184.215.14"

EMBEDDING_PRIVATE_IPV4 = [
    "https://[64:ff9b::a00:1]/",  # NAT64 (RFC 6052) of 10.0.0.1
    "https://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254 (cloud metadata)
    "https://[64:ff9b:1::808:808]/",  # local-use NAT64 prefix (RFC 8215): never public
    "https://[2002:a00:1::1]/",  # 6to4 of 10.0.0.1
    "https://[2002:c0a8:101::1]/",  # 6to4 of 192.168.1.1
    "https://[fec0::1]/",  # site-local (deprecated, RFC 3879)
    "https://[fec0::a00:1]/",
    "https://[::a00:1]/",  # IPv4-compatible 10.0.0.1
    "https://[::7f00:1]/",  # IPv4-compatible 127.0.0.1
    "https://[::ffff:a00:1]/",  # IPv4-mapped 10.0.0.1
]


@pytest.fixture
def strict(settings: Any) -> None:
    settings.DEBUG = False
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = False
    settings.CORDIALE_WEBHOOK_ALLOWED_PORTS = []


def code_of(url: str) -> str | None:
    try:
        webhook_target_check(url=url)
    except DomainError as exc:
        return exc.code
    return None


# --- addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", EMBEDDING_PRIVATE_IPV4)
def test_ipv6_forms_of_private_ipv4_addresses_are_refused(strict: None, url: str) -> None:
    """NAT64, 6to4, IPv4-compatible and -mapped addresses are judged by the IPv4 address
    they carry; the local-use NAT64 prefix and site-local addresses are never public."""
    assert code_of(url) == "private_address"


@pytest.mark.parametrize("url", ["https://[64:ff9b::808:808]/", "https://[2002:808:808::1]/"])
def test_ipv6_forms_of_public_ipv4_addresses_are_accepted(strict: None, url: str) -> None:
    """An IPv6-only network reaches public IPv4 receivers through NAT64: that stays open."""
    assert code_of(url) is None


def test_a_name_resolving_to_nat64_of_a_private_address_is_refused(
    strict: None, resolve: dict[str, str]
) -> None:
    """The rule applies to what a name resolves to, not only to address literals."""
    resolve["nat64.example.org"] = "64:ff9b::c0a8:101"
    assert code_of("https://nat64.example.org/hook") == "private_address"


# --- ports -------------------------------------------------------------------------------


@pytest.mark.parametrize("port", [22, 25, 80, 6379, 8443])
def test_only_port_443_by_default(strict: None, port: int) -> None:
    """In production a webhook uses port 443: other ports of public hosts are refused."""
    assert code_of(f"https://{PUBLIC}:{port}/") == "port_not_allowed"
    assert code_of(f"https://{PUBLIC}/") is None
    assert code_of(f"https://{PUBLIC}:443/") is None


def test_the_allowed_ports_setting_adds_ports(strict: None, settings: Any) -> None:
    """A port listed in CORDIALE_WEBHOOK_ALLOWED_PORTS is allowed; other ports stay refused with
    ``port_not_allowed``."""
    settings.CORDIALE_WEBHOOK_ALLOWED_PORTS = [8443]
    assert code_of(f"https://{PUBLIC}:8443/") is None
    assert code_of(f"https://{PUBLIC}:22/") == "port_not_allowed"


def test_port_80_is_allowed_where_plain_http_is(settings: Any) -> None:
    """Under DJANGO_DEBUG (plain http allowed, private addresses still refused): 80 and 443."""
    settings.DEBUG = True
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = False
    settings.CORDIALE_WEBHOOK_ALLOWED_PORTS = []
    assert code_of(f"http://{PUBLIC}/") is None
    assert code_of(f"http://{PUBLIC}:8080/") == "port_not_allowed"


def test_any_port_when_private_targets_are_allowed(settings: Any) -> None:
    """CORDIALE_WEBHOOK_ALLOW_PRIVATE (closed networks, test receivers on random ports)."""
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    settings.CORDIALE_WEBHOOK_ALLOWED_PORTS = []
    assert code_of("http://127.0.0.1:6379/") is None


@pytest.mark.django_db
def test_the_port_rule_applies_at_creation_and_at_url_change(strict: None) -> None:
    """Through the API: a 400 problem with code port_not_allowed, and nothing changes."""
    globex = make_party()
    refused = globex.client.post(
        "/api/v1/webhooks", {"url": f"https://{PUBLIC}:22/hook"}, format="json"
    )
    assert refused.status_code == 400 and refused.json()["code"] == "port_not_allowed"
    assert not WebhookEndpoint.objects.exists()
    created = globex.client.post("/api/v1/webhooks", {"url": f"https://{PUBLIC}/h"}, format="json")
    assert created.status_code == 201, created.content
    path = f"/api/v1/webhooks/{created.json()['id']}"
    changed = globex.client.patch(path, {"url": f"https://{PUBLIC}:25/h"}, format="json")
    assert changed.status_code == 400 and changed.json()["code"] == "port_not_allowed"
    assert globex.get(path).json()["url"] == f"https://{PUBLIC}/h"


@pytest.mark.django_db
def test_the_port_rule_applies_again_at_delivery(
    settings: Any, resolve: dict[str, str], tasks_in_process: None
) -> None:
    """A port allowed at creation and no longer allowed at delivery gets no request; the
    attempt is logged with the reason and retried later."""
    settings.DEBUG = True
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = False
    settings.CORDIALE_WEBHOOK_ALLOWED_PORTS = [8443]
    resolve["hooks.example.org"] = PUBLIC
    acme, globex = make_party(), make_party()
    endpoint, _ = webhook_create(
        member=globex.member, url="https://hooks.example.org:8443/h", actor="test"
    )
    acme.submit(acme.statement("pdq", pdq()))
    settings.CORDIALE_WEBHOOK_ALLOWED_PORTS = []
    assert webhook_deliver(endpoint_id=endpoint.pk) == "failed"
    attempt = WebhookDelivery.objects.get(endpoint=endpoint)
    assert attempt.error.startswith("port_not_allowed") and attempt.status_code is None


# --- connections -------------------------------------------------------------------------


@pytest.mark.django_db
def test_connections_are_pooled_per_host_name_not_per_address(
    settings: Any, resolve: dict[str, str], receiver: Receiver
) -> None:
    """Two hosts that resolve to the same address never share a connection (each request
    goes to its own host, as TLS would verify it); one host's connection is reused."""
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    port = receiver.server.server_address[1]
    resolve["a.example.org"] = "127.0.0.1"
    resolve["b.example.org"] = "127.0.0.1"
    acme, globex, initech = make_party(), make_party(), make_party()
    a, _ = webhook_create(member=globex.member, url=f"http://a.example.org:{port}/a", actor="t")
    b, _ = webhook_create(member=initech.member, url=f"http://b.example.org:{port}/b", actor="t")
    acme.submit(acme.statement("pdq", pdq()))
    assert webhook_deliver(endpoint_id=a.pk) == "caught_up"
    assert webhook_deliver(endpoint_id=b.pk) == "caught_up"
    acme.submit(acme.statement("pdq", pdq()))
    assert webhook_deliver(endpoint_id=a.pk) == "caught_up"

    first_a, second_a = receiver.at("/a")
    (to_b,) = receiver.at("/b")
    assert to_b.client != first_a.client, "b.example.org was sent over a.example.org's connection"
    assert second_a.client == first_a.client, "a.example.org's connection was not kept"
    assert to_b.headers["host"] == f"b.example.org:{port}"


# --- internationalised host names and failures ---------------------------------------------


@pytest.mark.django_db
def test_an_internationalised_host_is_stored_and_sent_as_punycode(
    settings: Any, resolve: dict[str, str], receiver: Receiver
) -> None:
    """``http://Bücher.example:PORT/h`` is kept as ``http://xn--bcher-kva.example:PORT/h``
    (IDNA 2008, UTS 46), shown so by the API, and delivered with that Host."""
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    port = receiver.server.server_address[1]
    resolve["xn--bcher-kva.example"] = resolve["bücher.example"] = "127.0.0.1"
    acme, globex = make_party(), make_party()
    response = globex.client.post(
        "/api/v1/webhooks", {"url": f"http://Bücher.example:{port}/h"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["url"] == f"http://xn--bcher-kva.example:{port}/h"
    endpoint = WebhookEndpoint.objects.get(pk=response.json()["id"])
    assert endpoint.url == f"http://xn--bcher-kva.example:{port}/h"
    acme.submit(acme.statement("pdq", pdq()))
    assert webhook_deliver(endpoint_id=endpoint.pk) == "caught_up"
    assert receiver.requests[0].headers["host"] == f"xn--bcher-kva.example:{port}"


def test_a_host_that_is_no_valid_domain_name_is_refused(strict: None) -> None:
    """A host name that is not a valid domain name is refused with ``invalid_url``."""
    assert code_of("https://☃.example/") == "invalid_url"


@pytest.mark.django_db
def test_an_endpoint_stored_with_a_non_ascii_host_still_gets_deliveries(
    settings: Any, resolve: dict[str, str], receiver: Receiver
) -> None:
    """An endpoint saved before hosts were normalised (non-ASCII in the database) is sent
    to by its ASCII name rather than failing outside the attempt log."""
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    port = receiver.server.server_address[1]
    resolve["xn--bcher-kva.example"] = resolve["bücher.example"] = "127.0.0.1"
    acme, globex = make_party(), make_party()
    endpoint, _ = webhook_create(member=globex.member, url=receiver.url("/h"), actor="test")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=f"http://bücher.example:{port}/h")
    acme.submit(acme.statement("pdq", pdq()))
    assert webhook_deliver(endpoint_id=endpoint.pk) == "caught_up"
    assert receiver.requests[0].headers["host"] == f"xn--bcher-kva.example:{port}"


@pytest.mark.django_db
def test_any_error_while_sending_is_a_logged_failed_attempt_with_backoff(
    settings: Any, receiver: Receiver, tasks_in_process: None
) -> None:
    """A secret that cannot be decrypted (SECRET_KEY changed without its fallback) makes
    signing raise: the delivery is a failed attempt in the log, the endpoint is failing
    with a retry scheduled, nothing is sent, and the task itself does not crash."""
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    acme, globex = make_party(), make_party()
    endpoint, _ = webhook_create(member=globex.member, url=receiver.url("/h"), actor="test")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret_encrypted="not-a-fernet-token")
    acme.submit(acme.statement("pdq", pdq()))
    assert webhook_deliver(endpoint_id=endpoint.pk) == "failed"
    (attempt,) = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert not attempt.ok and attempt.status_code is None and attempt.error
    endpoint.refresh_from_db()
    assert endpoint.status == "failing" and endpoint.attempts == 1
    assert endpoint.next_attempt_at is not None
    assert receiver.requests == []


@pytest.mark.django_db
def test_a_slow_dns_answer_is_a_failed_attempt_within_the_timeout(
    settings: Any, monkeypatch: pytest.MonkeyPatch, tasks_in_process: None
) -> None:
    """The member runs its name's DNS servers: one that answers after ten seconds costs
    a delivery no more than the attempt timeout, and the attempt is logged."""
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    settings.CORDIALE_WEBHOOK_TIMEOUT = 1.0
    acme, globex = make_party(), make_party()
    endpoint, _ = webhook_create(member=globex.member, url="http://127.0.0.1:9/h", actor="test")
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url="http://slow.example.org:9/h")
    real = socket.getaddrinfo

    def slow(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow.example.org":
            time.sleep(10)
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    acme.submit(acme.statement("pdq", pdq()))
    started = time.monotonic()
    assert webhook_deliver(endpoint_id=endpoint.pk) == "failed"
    assert time.monotonic() - started < 3.0
    (attempt,) = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert attempt.error.startswith("unresolvable_host"), attempt.error


def tls_contexts(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for ``name`` only, issued by a fresh test CA,
    and a client context that trusts that CA (and nothing else)."""
    now = datetime.datetime.now(datetime.UTC)

    def issue(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Cordiale test CA")])
    ca = issue("Cordiale test CA", ca_key, ca_name, ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue(name, leaf_key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return server, client


@pytest.mark.django_db
def test_tls_is_verified_per_host_even_when_hosts_share_an_address(
    settings: Any,
    resolve: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tasks_in_process: None,
) -> None:
    """A receiver holds a certificate for a.example.org only. b.example.org resolves to the
    same address and port; a.example.org's connection is open in the pool. Delivery to b
    fails certificate verification (and nothing reaches the receiver for b) instead of
    riding on a's verified connection."""
    from exchange.webhooks.delivery import sending, transport

    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    server_tls, client_tls = tls_contexts(tmp_path, "a.example.org")
    monkeypatch.setattr(transport.httpx, "create_ssl_context", lambda *a, **k: client_tls)
    # A client built with the test CA; monkeypatch puts the previous one back after.
    monkeypatch.setattr(sending, "_client", None)
    receiver = Receiver(tls=server_tls)
    port = receiver.server.server_address[1]
    settings.CORDIALE_WEBHOOK_ALLOWED_PORTS = [port]
    try:
        resolve["a.example.org"] = resolve["b.example.org"] = "127.0.0.1"
        acme, globex, initech = make_party(), make_party(), make_party()
        a, _ = webhook_create(
            member=globex.member, url=f"https://a.example.org:{port}/a", actor="t"
        )
        b, _ = webhook_create(
            member=initech.member, url=f"https://b.example.org:{port}/b", actor="t"
        )
        acme.submit(acme.statement("pdq", pdq()))
        assert webhook_deliver(endpoint_id=a.pk) == "caught_up"
        assert webhook_deliver(endpoint_id=b.pk) == "failed"
        (attempt,) = WebhookDelivery.objects.filter(endpoint=b)
        assert "CERTIFICATE_VERIFY_FAILED" in attempt.error, attempt.error
        assert receiver.at("/b") == [] and len(receiver.at("/a")) == 1
    finally:
        receiver.close()
