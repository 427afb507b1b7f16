"""What the members were told, recorded as it happens, for the checks at the end: every
statement a member got ``accepted``/``duplicate`` for (with the exact token), every
audience each value was ever addressed to, every value a read showed a member, and every
HTTP attempt (time, endpoint, status, latency) the member drivers made."""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx

SignalKey = tuple[str, str]

_TEMPLATES = [
    (re.compile(r"^/api/v1/signals/[^/]+/.+$"), "/api/v1/signals/{type}/{value}"),
    (re.compile(r"^/api/v1/opinions/[^/]+/.+$"), "/api/v1/opinions/{type}/{value}"),
    (re.compile(r"^/api/v1/webhooks/\d+(/.*)?$"), "/api/v1/webhooks/{id}"),
]


def endpoint_of(method: str, path: str) -> str:
    """``METHOD /path`` with values replaced by placeholders, for per-endpoint figures."""
    for pattern, template in _TEMPLATES:
        if pattern.match(path):
            return f"{method} {template}"
    return f"{method} {path}"


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt: wall-clock start, endpoint, status (0: no answer), seconds to the
    answer's headers."""

    at: float
    endpoint: str
    status: int
    seconds: float
    member: str


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    attempts: list[Attempt] = field(default_factory=list)
    # (member, jti) -> the token sent; confirmed: -> "accepted" | "duplicate".
    sent: dict[tuple[str, str], str] = field(default_factory=dict)
    confirmed: dict[tuple[str, str], str] = field(default_factory=dict)
    # Answers other than accepted/duplicate for statements the drivers built valid.
    unexpected: list[str] = field(default_factory=list)
    audiences: dict[SignalKey, set[str]] = field(default_factory=lambda: defaultdict(set))
    by_audience: dict[str, list[SignalKey]] = field(default_factory=lambda: defaultdict(list))
    shown: dict[str, set[SignalKey]] = field(default_factory=lambda: defaultdict(set))
    errors: list[str] = field(default_factory=list)
    submits_in_flight: int = 0
    counters: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def addressed(self, key: SignalKey, audience: str) -> None:
        """``key`` was (about to be) asserted to ``audience``: recorded before sending."""
        with self.lock:
            if audience not in self.audiences[key]:
                self.by_audience[audience].append(key)
            self.audiences[key].add(audience)

    def allowed(self, key: SignalKey, audiences: set[str]) -> bool:
        """Whether a member of ``audiences`` may ever have been shown ``key``."""
        with self.lock:
            return bool(self.audiences.get(key, set()) & audiences)

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counters[name] += n

    def note_error(self, text: str) -> None:
        with self.lock:
            self.errors.append(f"{time.strftime('%H:%M:%S')} {text}")


class RecordingTransport(httpx.HTTPTransport):
    """httpx's transport, recording every attempt in the ledger (retries included)."""

    def __init__(self, ledger: Ledger, member: str) -> None:
        super().__init__()
        self.ledger = ledger
        self.member = member

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = endpoint_of(request.method, request.url.path)
        submit = endpoint == "POST /api/v1/statements"
        at, started = time.time(), time.perf_counter()
        if submit:
            with self.ledger.lock:
                self.ledger.submits_in_flight += 1
        status = 0
        try:
            response = super().handle_request(request)
            status = response.status_code
            return response
        finally:
            attempt = Attempt(at, endpoint, status, time.perf_counter() - started, self.member)
            with self.ledger.lock:
                self.ledger.attempts.append(attempt)
                if submit:
                    self.ledger.submits_in_flight -= 1
