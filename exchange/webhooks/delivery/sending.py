"""Signing and sending one delivery, and logging the attempt."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import httpx
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from exchange.models import WebhookDelivery, WebhookEndpoint
from exchange.webhooks.secrets import secret_decrypt
from exchange.webhooks.targets import webhook_target_check
from forum.errors import DomainError

from .pages import SharedPage
from .transport import PinnedTransport, attempt
from .waking import USER_AGENT

logger = logging.getLogger(__name__)


def batch_message_id(endpoint_id: int, before: str, after: str) -> str:
    """The ``webhook-id`` of a batch: the same for a resend of the same cursors."""
    digest = hashlib.sha256(f"{endpoint_id}\n{before}\n{after}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


@lru_cache(maxsize=1024)
def _signer(secret_encrypted: str) -> Webhook:
    """Keyed by the stored token, which a rotation replaces: decrypt once per process."""
    return Webhook(secret_decrypt(secret_encrypted))


def _signature(endpoint: WebhookEndpoint, message_id: str, at: datetime, body: str) -> str:
    signatures = [_signer(endpoint.secret_encrypted).sign(message_id, at, body)]
    previous = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and previous and previous > timezone.now():
        signatures.append(_signer(endpoint.previous_secret_encrypted).sign(message_id, at, body))
    return " ".join(signatures)


# --- sending ---------------------------------------------------------------------------


@dataclass
class SendResult:
    status_code: int | None
    latency_ms: int
    error: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


_client: httpx.Client | None = None
_client_pid = 0


def http_client() -> httpx.Client:
    """One pooled client per worker process (keep-alive to receivers, pooled per host name;
    see ``transport.py``)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        timeout = float(settings.CORDIALE_WEBHOOK_TIMEOUT)
        # Idle connections are dropped well before common servers' idle timeouts (Node's
        # is 5 s), so that a reused one is rarely closed under a request; they serve the
        # back-to-back batches of one delivery.
        limits = httpx.Limits(
            max_connections=200, max_keepalive_connections=100, keepalive_expiry=2.0
        )
        _client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,
            transport=PinnedTransport(limits=limits),
        )
        _client_pid = os.getpid()
    return _client


# Receivers answer with a status; a short body is read (within the deadline) so that the
# connection can carry the next delivery, a long one is dropped with its connection.
_MAX_ANSWER = 64 * 1024


def _drain(response: httpx.Response) -> None:
    received = 0
    for chunk in response.iter_raw():
        received += len(chunk)
        if received > _MAX_ANSWER:
            return


def send_signed(endpoint: WebhookEndpoint, message_id: str, body: bytes) -> SendResult:
    """One attempt, never longer than ``CORDIALE_WEBHOOK_TIMEOUT`` once the target is
    vetted; whatever goes wrong is a failed attempt (logged, retried with backoff), never
    an exception: an error that escaped here would leave the endpoint stuck, unlogged."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    timeout = float(settings.CORDIALE_WEBHOOK_TIMEOUT)
    try:
        target = webhook_target_check(url=endpoint.url)
        at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": _signature(endpoint, message_id, at, body.decode()),
        }
        with (
            # The deadline counts from the start: resolving the name is part of it.
            attempt(host=target.host, address=target.address, timeout=timeout - elapsed() / 1000),
            http_client().stream("POST", target.request_url, content=body, headers=headers) as r,
        ):
            status = r.status_code
            _drain(r)
    except DomainError as exc:
        return SendResult(None, elapsed(), f"{exc.code}: {exc.detail}")
    except httpx.TimeoutException:
        return SendResult(None, elapsed(), f"timeout: no answer within {timeout:g} s")
    except httpx.HTTPError as exc:
        return SendResult(None, elapsed(), f"{type(exc).__name__}: {exc}"[:500])
    except SoftTimeLimitExceeded:
        return SendResult(None, elapsed(), "timeout: the delivery task's time limit passed")
    except Exception as exc:
        logger.exception("webhook %s: sending failed", endpoint.pk)
        # The member reads this in /deliveries: the type only, the details go to the log.
        return SendResult(None, elapsed(), f"internal error ({type(exc).__name__})")
    error = "" if 200 <= status < 300 else f"HTTP {status}"
    if 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed"
    return SendResult(status, elapsed(), error)


def attempt_record(
    endpoint: WebhookEndpoint,
    *,
    kind: str,
    message_id: str,
    result: SendResult,
    batch: SharedPage | None = None,
    cursor_before: str = "",
    started_at: datetime,
) -> None:
    """Log one attempt in the endpoint's deliveries (what ``/deliveries`` shows)."""
    WebhookDelivery.objects.create(
        endpoint=endpoint,
        kind=kind,
        message_id=message_id,
        attempt=endpoint.attempts + 1,
        started_at=started_at,
        status_code=result.status_code,
        latency_ms=result.latency_ms,
        ok=result.ok,
        error=result.error,
        changes=batch.count if batch else 0,
        first_change=batch.first if batch else "",
        last_change=batch.last if batch else "",
        cursor_before=cursor_before,
        cursor_after=batch.cursor if batch else "",
    )
