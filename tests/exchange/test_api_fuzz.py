"""Schemathesis against the served schema: every operation of /api/v1/schema/, fuzzed
over HTTP against a live forum with a member's API key.

Checks: no 5xx (``not_a_server_error``), every answer conforms to its operation's
documented responses: status, content type, body schema, and for a problem the ``code``
list of that status (``status_code_conformance``, ``content_type_conformance``,
``response_schema_conformance``). A failure is a bug of the API or of its schema.

Generated path parameters mostly name nothing (404s); so that the success answers are
fuzzed too, half the cases are pointed at what the member really has: a signal it
submitted and sees, its webhook endpoint, a dispute on its signal (a dispute body, at
that signal). Bodies stay generated otherwise. Examples are bounded (``FUZZ_EXAMPLES``
per operation) to keep the run within a few minutes on two cores.

What the fuzzer cannot make: an accepted statement needs a valid JWS signed by the
member's key, which random strings never are; half the submit cases carry one signed
token in first place, and acceptance and each rejection code are covered by
tests/exchange/test_statements*.py. The tasks the API publishes (webhook pings and
wake-ups) go to a private Redis broker that no worker reads.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis import checks as st_checks

from tests.factories import make_party, pdq
from tests.support.live_server import LiveForum
from tests.support.receivers import Receiver
from tests.support.redis import RedisServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Generated requests per operation: valid ones (per the schema), then invalid ones.
FUZZ_EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 20}
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
]


@dataclass
class Fuzzed:
    """What the fuzzed member holds: its key, a signal it sees, a signed statement, a
    webhook endpoint (made again once a case deleted it)."""

    member: Any
    api_key: str
    signal: tuple[str, str]
    statement: str
    webhook_url: str

    @property
    def slug(self) -> str:
        return str(self.member.slug)

    def webhook_id(self) -> int:
        from exchange.models import WebhookEndpoint
        from exchange.webhooks.endpoints import webhook_create

        endpoint = WebhookEndpoint.objects.filter(member=self.member).order_by("pk").first()
        if endpoint is None:
            endpoint, _ = webhook_create(member=self.member, url=self.webhook_url, actor="test")
        return endpoint.pk

    def dispute_id(self) -> int:
        """A dispute on the member's own signal (so that it is a party that may respond)."""
        from exchange.disputes.services import dispute_open
        from exchange.models import Dispute

        dispute = Dispute.objects.filter(signal__value=self.signal[1]).order_by("pk").last()
        if dispute is None:
            signal_type, value = self.signal
            dispute = dispute_open(
                member=self.member,
                signal_type=signal_type,
                value=value,
                grounds="other",
                reason="fuzz",
                actor="test",
            )
        return dispute.pk


@pytest.fixture
def fuzzed(
    forum: LiveForum,
    receiver: Receiver,
    broker: RedisServer,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Fuzzed]:
    """A member with an all-scope key, a submitted signal and a webhook endpoint; DNS
    answers nothing (generated hosts fail at once instead of waiting on a resolver)."""
    from forum.throttling import ScopedWorkThrottle

    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True
    # Rates high enough that the run fuzzes the operations rather than the throttle
    # (429 is documented and checked, but would hide everything else).
    rates = {scope: "1000000/min" for scope in ScopedWorkThrottle.THROTTLE_RATES}
    monkeypatch.setattr(ScopedWorkThrottle, "THROTTLE_RATES", rates)
    real = socket.getaddrinfo

    def no_dns(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ipaddress.ip_address(str(host))
        except ValueError:
            if host != "localhost":
                raise socket.gaierror(socket.EAI_NONAME, "no DNS in this test") from None
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)

    party = make_party("fuzzer")
    value = pdq()
    result = party.submit(party.statement("pdq", value))
    assert result["accepted"] == 1, result
    yield Fuzzed(
        member=party.member,
        api_key=party.api_key,
        signal=("pdq", value),
        statement=party.statement("pdq", pdq()),
        webhook_url=receiver.url(),
    )


def _aim(case: Any, fuzzed: Fuzzed) -> None:
    """Point half the cases at what the member has (chosen by the generated data, so
    that Hypothesis can shrink and replay them)."""
    params = case.path_parameters or {}
    if isinstance(params.get("id"), int) and params["id"] % 2 == 0:
        disputes = "/disputes/" in case.operation.path
        params["id"] = fuzzed.dispute_id() if disputes else fuzzed.webhook_id()
    if isinstance(params.get("value"), str) and len(params["value"]) % 2 == 0:
        params["signal_type"], params["value"] = fuzzed.signal
    if isinstance(params.get("slug"), str) and len(params["slug"]) % 2 == 0:
        params["slug"] = fuzzed.slug
    body = case.body if isinstance(case.body, dict) else {}
    statements = body.get("statements")
    if isinstance(statements, list) and statements and _even(statements[0]):
        statements[0] = fuzzed.statement
    if "grounds" in body and _even(body.get("value")):
        body["signal_type"], body["value"] = fuzzed.signal
        body.update(grounds="benign_collision", reason="fuzz")
    if "url" in body and _even(body["url"]):
        body["url"] = fuzzed.webhook_url


def _even(value: Any) -> bool:
    return isinstance(value, str) and len(value) % 2 == 0


def _fuzz(operation: Any, mode: GenerationMode, forum: LiveForum, fuzzed: Fuzzed) -> Counter[int]:
    statuses: Counter[int] = Counter()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=FUZZ_EXAMPLES[mode],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def run(case: Any) -> None:
        _aim(case, fuzzed)
        response = case.call_and_validate(
            base_url=forum.url,
            headers={"Authorization": f"Bearer {fuzzed.api_key}"},
            checks=CHECKS,
        )
        statuses[response.status_code] += 1

    run()
    return statuses


def test_api_conforms_to_its_schema(forum: LiveForum, fuzzed: Fuzzed) -> None:
    """Every generated request of every operation, valid or not, gets a non-5xx answer
    that its operation documents."""
    schema = schemathesis.openapi.from_url(f"{forum.url}/api/v1/schema/")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in FUZZ_EXAMPLES:
            started = time.monotonic()
            try:
                statuses = _fuzz(operation, mode, forum, fuzzed)
            except Exception as exc:  # report every operation's failure, not just the first
                failures.append(f"{operation.label} ({mode.value}): {exc}")
                continue
            elapsed = time.monotonic() - started
            seen = dict(sorted(statuses.items()))
            print(f"{operation.label} ({mode.value}): {seen}, {elapsed:.1f} s")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
