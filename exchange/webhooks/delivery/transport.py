"""The HTTP transport of webhook deliveries: a deadline, pinned addresses, per-host pools.

httpx's stock transport cannot express three rules that deliveries need:

- **A wall-clock deadline per attempt.** httpx's timeouts bound each socket operation,
  not the request: a receiver that sends one byte of its answer every few seconds never
  trips a read timeout and holds a worker for as long as it likes. Here every connect,
  TLS handshake, read and write of an attempt gets at most the time left until the
  attempt's deadline, so ``CORDIALE_WEBHOOK_TIMEOUT`` bounds the whole attempt, from
  resolving the name (bounded in ``webhook_target_check``) to the response's status
  line, headers and short body.
- **Connect to the vetted address.** The target check resolves the endpoint's host and
  vets every address; a connection opened for the attempt goes to the address it vetted,
  never to a second resolution of the name (a DNS answer that changes in between,
  "rebinding", gains nothing).
- **Pool by host name.** The request URL carries the endpoint's host name, so httpcore
  keys its pool by (scheme, host name, port), TLS verifies the certificate for that name
  and sends it as SNI. A connection opened for one host is never reused for another
  host that happens to resolve to the same address. A pooled connection to a name was
  opened to an address vetted then, and the name is vetted again before every attempt.

The pin and the deadline travel in a thread-local set by ``attempt()`` around one
request: synchronous httpcore does all of a request's network calls on the calling
thread. A connection opened outside ``attempt()``, or for another host than the pinned
one, is refused.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpcore
import httpx
from httpcore._backends.base import SOCKET_OPTION  # the type in NetworkBackend's signature

# Writes go out in slices so that a receiver reading slowly cannot stretch one write
# call (which loops over send() with one timeout) much past the deadline.
_WRITE_SLICE = 16 * 1024


@dataclass(frozen=True)
class _Attempt:
    host: str
    address: str
    deadline: float


_current = threading.local()


@contextmanager
def attempt(*, host: str, address: str, timeout: float) -> Iterator[None]:
    """Within this block, connections to ``host`` go to ``address`` and every network
    operation ends by ``timeout`` seconds from now."""
    _current.attempt = _Attempt(host.lower(), address, time.monotonic() + timeout)
    try:
        yield
    finally:
        _current.attempt = None


def _left(timeout: float | None, error: type[Exception]) -> float:
    """The time an operation may take: its own timeout, cut to what is left of the attempt."""
    current: _Attempt | None = getattr(_current, "attempt", None)
    if current is None:
        raise httpcore.ConnectError("webhook requests are sent within an attempt")
    left = current.deadline - time.monotonic()
    if left <= 0:
        raise error("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        while view:
            self._inner.write(bytes(view[:_WRITE_SLICE]), _left(timeout, httpcore.WriteTimeout))
            view = view[_WRITE_SLICE:]

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, left))

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """Opens TCP connections to the address pinned for the current attempt's host only."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        current: _Attempt = _current.attempt
        if host.lower() != current.host:
            raise httpcore.ConnectError(f"no vetted address for {host!r}")
        stream = self._inner.connect_tcp(current.address, port, left, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks are sent over TCP only")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """httpx's transport over ``PinnedBackend``; certificate checks as httpx's defaults."""

    def __init__(self, *, limits: httpx.Limits) -> None:
        super().__init__(limits=limits)
        # httpx builds its pool without a way to pass a network backend; rebuild it the
        # same way with ours (same TLS context, limits and keep-alive expiry).
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=PinnedBackend(),
        )


__all__ = ["PinnedBackend", "PinnedTransport", "attempt"]
