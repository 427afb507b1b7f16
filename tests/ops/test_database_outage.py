"""PostgreSQL restarted under ingest (DESIGN.md invariant 9, issue #15).

gunicorn (production settings, two sync workers) serves a private PostgreSQL cluster
that the test stops (``fast``: open sessions are terminated) and starts again while
threads submit batches. Every request must get an answer a client can act on: 200, or a
503 ``database_unavailable`` problem with ``Retry-After``, never a 500; afterwards the
same worker processes serve again on fresh connections, and a batch retried after a
503 is stored exactly once. The member's client library, retrying on its own, carries a
sequence of batches through the same kind of restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from exchange.client.api import CordialeClient, CordialeError
from tests.factories import pdq, random_hex
from tests.support.private_stack import PROXY_HEADERS, PrivateStack, StackMember, private_stack

pytestmark = pytest.mark.slow

BATCH = 20


@dataclass
class Tally:
    """Every answer the submitting threads got, and the batches stored in the end."""

    answers: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stored: list[list[str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def statuses(self) -> list[int]:
        return [status for status, _, _ in self.answers]


@pytest.fixture(scope="module")
def stack() -> Iterator[PrivateStack]:
    with private_stack() as stack:
        yield stack


def submit_until_stored(
    stack: PrivateStack, member: StackMember, tally: Tally, stop: threading.Event
) -> None:
    """Submit new batches until ``stop``; retry a batch on 503 until it is stored."""
    with stack.client(member) as http:
        while not stop.is_set():
            batch = [member.statement("pdq", pdq()) for _ in range(BATCH)]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    response = http.post("/api/v1/statements", json={"statements": batch})
                except httpx.HTTPError as exc:
                    with tally.lock:
                        tally.failures.append(f"{type(exc).__name__}: {exc}")
                    return
                with tally.lock:
                    tally.answers.append(
                        (response.status_code, dict(response.headers), response.text[:2000])
                    )
                if response.status_code == 200:
                    body = response.json()
                    # All accepted, or (the first try committed but its answer was lost)
                    # all duplicate: never a mix.
                    assert body["accepted"] in (0, BATCH), body
                    assert body["accepted"] + body["duplicate"] == BATCH, body
                    with tally.lock:
                        tally.stored.append(batch)
                    break
                if response.status_code != 503:
                    return
                time.sleep(0.1)


def test_a_database_restart_under_ingest_gives_503s_not_500s(stack: PrivateStack) -> None:
    """While PostgreSQL restarts, submissions get 503 ``database_unavailable`` with
    Retry-After (never a 500); afterwards the same gunicorn workers answer 200, and every
    batch retried through the outage is stored exactly once."""
    member = stack.member("ingest")
    workers = stack.workers()
    assert len(workers) == 2
    tally = Tally()
    stop = threading.Event()
    threads = [
        threading.Thread(target=submit_until_stored, args=(stack, member, tally, stop))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        stack.server.stop("fast")
        time.sleep(3)
        stack.server.start()
        time.sleep(3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(90)

    statuses = tally.statuses()
    assert not tally.failures, tally.failures[:5]
    errors = [(s, text) for s, _, text in tally.answers if s not in (200, 503)]
    assert not errors, f"{len(errors)} answers neither 200 nor 503, e.g. {errors[:3]}"
    unavailable = [(headers, text) for s, headers, text in tally.answers if s == 503]
    assert unavailable, f"no request met the outage: {statuses}"
    for headers, text in unavailable:
        assert headers["content-type"] == "application/problem+json", text
        assert '"code":"database_unavailable"' in text.replace(" ", ""), text
        assert int(headers["retry-after"]) >= 1
    assert statuses[-1] == 200

    # The same processes serve again, on fresh connections.
    with stack.client(member) as http:
        answers = [http.get("/api/v1/me").status_code for _ in range(10)]
    assert answers == [200] * 10
    assert stack.workers() == workers

    stored = int(
        stack.server.psql(
            "cordiale",
            "SELECT count(*) FROM exchange_statement s JOIN members_member m "
            f"ON m.id = s.member_id WHERE m.slug = '{member.slug}'",
        )
    )
    assert stored == BATCH * len(tally.stored)
    print(f"\n{len(statuses)} answers: {statuses.count(200)} were 200, {len(unavailable)} were 503")


class ViaProxy(httpx.HTTPTransport):
    """What the TLS-terminating proxy adds in front of gunicorn: the public host, HTTPS."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.headers.update(PROXY_HEADERS)
        return super().handle_request(request)


def test_the_client_library_submits_through_a_database_restart(stack: PrivateStack) -> None:
    """The member's client, retrying 503s after Retry-After, submits every batch while
    PostgreSQL restarts; in the end each statement is stored exactly once."""
    member = stack.member("client")
    batches = [[member.statement("md5", random_hex(32)) for _ in range(BATCH)] for _ in range(30)]
    results: list[dict[str, int]] = []
    failures: list[BaseException] = []
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    def submit_all() -> None:
        client = CordialeClient(
            stack.base, member.api_key, transport=ViaProxy(), max_retries=8, sleep=sleep
        )
        with client:
            for batch in batches:
                try:
                    body = client.submit(batch)
                except CordialeError as exc:
                    failures.append(exc)
                    return
                results.append({k: body[k] for k in ("accepted", "duplicate", "rejected")})
                time.sleep(0.1)

    thread = threading.Thread(target=submit_all)
    thread.start()
    time.sleep(1)
    stack.server.stop("fast")
    time.sleep(3)
    stack.server.start()
    thread.join(120)

    assert not failures, failures
    assert len(results) == len(batches)
    assert sleeps, "the client never met the outage"
    assert all(r["rejected"] == 0 and r["accepted"] + r["duplicate"] == BATCH for r in results)
    jtis = {token for batch in batches for token in batch}
    counts = stack.server.psql(
        "cordiale",
        "SELECT count(*), count(DISTINCT s.jti) FROM exchange_statement s "
        f"JOIN members_member m ON m.id = s.member_id WHERE m.slug = '{member.slug}'",
    )
    assert counts == f"{len(jtis)}|{len(jtis)}"
    print(f"\nclient slept {len(sleeps)} times, {sum(sleeps):.1f} s in all")
