"""Webhook delivery end to end with real parts (DESIGN.md invariant 6).

Each test runs a real Celery worker process (with an embedded beat running the webhook
sweep every second) against the committed test database, a private redis-server, and
an HTTP receiver on 127.0.0.1 in this process. Submissions go through the API.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from exchange.models import WebhookEndpoint
from exchange.selectors import feed_page
from exchange.webhooks.delivery import change_passes
from exchange.webhooks.endpoints import webhook_cursor_at_head
from tests.factories import Party, make_group, make_party, pdq, random_hex
from tests.support.processes import Worker, celery_worker_env, wait_for
from tests.support.receivers import Receiver
from tests.support.redis import RedisServer

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

WAIT = 30.0


@pytest.fixture
def worker_env(broker: RedisServer) -> dict[str, str]:
    return celery_worker_env(
        broker.url,
        CORDIALE_WEBHOOK_SWEEP_INTERVAL="1",
        CORDIALE_WEBHOOK_RETRY_BASE="0.2",
        CORDIALE_WEBHOOK_RETRY_MAX="1",
        CORDIALE_WEBHOOK_TIMEOUT="10",
        CORDIALE_WEBHOOK_BATCH="7",  # small pages: many batches, ordering across them
    )


@pytest.fixture
def workers(
    worker_env: dict[str, str], tmp_path: Path, transactional_db: None
) -> Iterator[list[Worker]]:
    """Started by the test (``start_worker``); all stopped before the tables are flushed."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


def start_worker(workers: list[Worker], env: dict[str, str], tmp_path: Path) -> Worker:
    worker = Worker(env=env, log=tmp_path / f"worker-{len(workers)}.log")
    workers.append(worker)
    worker.start()
    return worker


@pytest.fixture(autouse=True)
def _allow_private(settings: Any) -> None:
    settings.CORDIALE_WEBHOOK_ALLOW_PRIVATE = True


def subscribe(party: Party, url: str, **extra: Any) -> tuple[int, str]:
    response = party.client.post("/api/v1/webhooks", {"url": url, **extra}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    return body["id"], body["secret"]


def delivered(receiver: Receiver, path: str, secret: str) -> list[dict[str, Any]]:
    """Changes received at ``path``, in arrival order, after checking every signature."""
    changes: list[dict[str, Any]] = []
    for request in receiver.at(path):
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["type"] == "changes"
        changes.extend(payload["changes"])
    return changes


def keys(changes: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    return [(c["signal_type"], c["value"], c["deleted"]) for c in changes]


def settled(items: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    """Each signal at the place of its last change, with its last state.

    The feed (pull or push) reports that a signal changed, with its state when read: a
    follower that reads late sees two changes of one signal as one, at the later place.
    Two streams agree on order and content when they settle to the same list.
    """
    last = {item[:2]: index for index, item in enumerate(items)}
    return [item for index, item in enumerate(items) if last[item[:2]] == index]


def pull(party: Party, cursor: str | None = None, **filters: Any) -> list[dict[str, Any]]:
    """The pull feed from ``cursor`` to its end, with an endpoint's filters applied."""
    out: list[dict[str, Any]] = []
    while True:
        changes, cursor, has_more = feed_page(member_id=party.member.pk, cursor=cursor, limit=5)
        out.extend(
            c
            for c in changes
            if change_passes(
                change=c,
                signal_types=filters.get("signal_types", []),
                labels=filters.get("labels", []),
            )
        )
        if not has_more:
            return orjson.loads(orjson.dumps(out))  # as a receiver parses it


def final(changes: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The last snapshot of each signal: the state a follower ends up with."""
    return {(c["signal_type"], c["value"]): c for c in changes}


def submit_batches(party: Party, batches: int, size: int) -> list[tuple[str, str, bool]]:
    sent: list[tuple[str, str, bool]] = []
    now = int(time.time())
    for b in range(batches):
        tokens = []
        for i in range(size):
            kind, value = ("md5", random_hex(32)) if i % 3 == 0 else ("pdq", pdq())
            tokens.append(party.statement(kind, value, iat=now - 100 + b))
            sent.append((kind, value, False))
        body = party.submit(*tokens)
        assert body["accepted"] == size, body
    return sent


def test_every_change_reaches_every_subscribed_endpoint_in_feed_order(
    labels: None,
    workers: list[Worker],
    worker_env: dict[str, str],
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    """Three endpoints of two members receive every change they subscribed to, once per
    batch, in feed order, with Standard Webhooks signatures that verify."""
    acme, globex, initech = make_party("acme"), make_party("globex"), make_party("initech")
    start_worker(workers, worker_env, tmp_path)
    globex_start = webhook_cursor_at_head(member_id=globex.member.pk)
    subs = {
        "/globex-all": subscribe(globex, receiver.url("/globex-all")),
        "/globex-md5": subscribe(globex, receiver.url("/globex-md5"), signal_types=["md5"]),
        "/initech": subscribe(initech, receiver.url("/initech")),
    }
    sent = submit_batches(acme, batches=4, size=6)
    # One retraction: its tombstone must follow the assertion it cancels.
    acme.submit(acme.statement(sent[0][0], sent[0][1], op="retract"))
    expected = [*sent, (sent[0][0], sent[0][1], True)]
    md5 = [k for k in expected if k[0] == "md5"]

    for path, want in [("/globex-all", expected), ("/globex-md5", md5), ("/initech", expected)]:
        wait_for(
            lambda p=path, w=want: settled(keys(delivered(receiver, p, subs[p][1]))) == settled(w),
            WAIT,
            f"deliveries to {path}",
        )
    # The same snapshots as the pull feed, filtered the same way.
    assert final(delivered(receiver, "/globex-md5", subs["/globex-md5"][1])) == final(
        pull(globex, globex_start, signal_types=["md5"])
    )
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == len(set(ids))
    for endpoint_id, _ in subs.values():
        endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
        assert endpoint.status == "healthy"
        wait_for(
            lambda e=endpoint: (
                feed_page(
                    member_id=e.member_id,
                    cursor=WebhookEndpoint.objects.get(pk=e.pk).cursor,
                    limit=1,
                )[0]
                == []
            ),
            WAIT,
            "cursors to reach the end of the feed",
        )


def test_a_failing_receiver_gets_everything_once_it_recovers(
    labels: None,
    workers: list[Worker],
    worker_env: dict[str, str],
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    """While the receiver answers 500 the endpoint is failing and retried with backoff;
    after it recovers it receives every change in order, and is healthy again."""
    acme, globex = make_party("acme"), make_party("globex")
    start_worker(workers, worker_env, tmp_path)
    endpoint_id, secret = subscribe(globex, receiver.url("/g"))
    receiver.fail_until = time.monotonic() + 4
    sent = submit_batches(acme, batches=3, size=5)
    wait_for(
        lambda: WebhookEndpoint.objects.get(pk=endpoint_id).status == "failing", WAIT, "failing"
    )
    response = globex.get(f"/api/v1/webhooks/{endpoint_id}/deliveries").json()
    assert any(d["status_code"] == 500 and not d["ok"] for d in response)

    wait_for(lambda: time.monotonic() > receiver.fail_until, 10, "the outage to end")
    wait_for(
        lambda: settled(keys(delivered(receiver, "/g", secret))) == sent,
        WAIT,
        "every change after recovery",
    )
    wait_for(
        lambda: WebhookEndpoint.objects.get(pk=endpoint_id).status == "healthy", WAIT, "healthy"
    )
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    assert endpoint.attempts == 0 and endpoint.failing_since is None


def test_a_worker_killed_mid_delivery_loses_nothing(
    labels: None,
    workers: list[Worker],
    worker_env: dict[str, str],
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    """SIGKILL to the whole worker while a batch is in flight: once a new worker runs,
    everything arrives, in order (the batch in flight may arrive twice, same id)."""
    acme, globex = make_party("acme"), make_party("globex")
    worker = start_worker(workers, worker_env, tmp_path)
    endpoint_id, secret = subscribe(globex, receiver.url("/g"))
    receiver.delay = 5.0
    sent = submit_batches(acme, batches=3, size=5)
    wait_for(lambda: receiver.at("/g"), WAIT, "the first batch to be in flight")
    worker.kill()
    receiver.delay = 0.0
    cursor = WebhookEndpoint.objects.get(pk=endpoint_id).cursor
    assert len(delivered(receiver, "/g", secret)) < len(sent)

    start_worker(workers, worker_env, tmp_path)
    wait_for(
        lambda: settled(keys(delivered(receiver, "/g", secret))) == sent,
        WAIT,
        "every change after the restart",
    )
    assert WebhookEndpoint.objects.get(pk=endpoint_id).cursor != cursor


def test_submissions_succeed_while_redis_is_down_and_are_delivered_after(
    labels: None,
    workers: list[Worker],
    worker_env: dict[str, str],
    tmp_path: Path,
    receiver: Receiver,
    broker: RedisServer,
) -> None:
    """With the broker gone, submissions still answer 200 promptly; when Redis comes back
    (empty: the wake-ups published meanwhile are lost) the beat sweep finds the lagging
    endpoint and everything is delivered."""
    acme, globex = make_party("acme"), make_party("globex")
    start_worker(workers, worker_env, tmp_path)
    endpoint_id, secret = subscribe(globex, receiver.url("/g"))
    before = submit_batches(acme, batches=1, size=3)
    wait_for(lambda: len(delivered(receiver, "/g", secret)) == 3, WAIT, "the first batch")

    broker.kill()
    started = time.monotonic()
    during = submit_batches(acme, batches=4, size=3)
    assert time.monotonic() - started < 10, "a submission waited on the broker"
    time.sleep(1.5)

    broker.start()

    # kombu 5.7's Redis transport can crash the worker when the broker vanishes with
    # unacknowledged messages ("Unrecoverable error"); in production the supervisor
    # (compose restart policy, Kubernetes) starts it again, as this test does.
    def supervised_delivery() -> bool:
        if workers[-1].process is None or workers[-1].process.poll() is not None:
            start_worker(workers, worker_env, tmp_path)
        return settled(keys(delivered(receiver, "/g", secret))) == before + during

    wait_for(supervised_delivery, WAIT, "every change after Redis returned", step=0.2)
    assert WebhookEndpoint.objects.get(pk=endpoint_id).status == "healthy"


def test_webhooks_never_carry_what_the_pull_feed_would_not_give(
    labels: None,
    workers: list[Worker],
    worker_env: dict[str, str],
    tmp_path: Path,
    receiver: Receiver,
) -> None:
    """Group-only statements reach group members only; a retraction is a tombstone; a
    member leaving the group gets tombstones; every endpoint's stream has exactly the
    values, and ends in exactly the states, that the same member's pull feed gives."""
    acme, globex, initech = make_party("acme"), make_party("globex"), make_party("initech")
    group = make_group("trusted", acme, globex)
    start_worker(workers, worker_env, tmp_path)
    subs = {
        p.slug: subscribe(p, receiver.url(f"/{p.slug}"), start="beginning")
        for p in (globex, initech)
    }
    now = int(time.time())
    public, secret_value, retracted = pdq(), pdq(), pdq()
    acme.submit(
        acme.statement("pdq", public, iat=now - 50),
        acme.statement("pdq", secret_value, audience=f"group:{group.slug}", iat=now - 50),
        acme.statement("pdq", retracted, iat=now - 50),
    )
    acme.submit(acme.statement("pdq", retracted, op="retract", iat=now - 40))
    from members.services import sharing_group_set_members

    sharing_group_set_members(group=group, members=[acme.member], actor="test")
    acme.submit(acme.statement("pdq", pdq(), iat=now - 30))  # a last change for everyone

    for party in (globex, initech):
        path, hook_secret = f"/{party.slug}", subs[party.slug][1]
        pulled = pull(party)
        wait_for(
            lambda p=path, s=hook_secret, want=pulled: (
                final(delivered(receiver, p, s)) == final(want)
            ),
            WAIT,
            f"{party.slug}'s endpoint to converge with its pull feed",
        )
        pushed = delivered(receiver, path, hook_secret)
        assert {k[:2] for k in keys(pushed)} == {k[:2] for k in keys(pulled)}

    initech_bodies = b"".join(r.body for r in receiver.at("/initech"))
    assert secret_value.encode() not in initech_bodies
    globex_final = final(delivered(receiver, "/globex", subs["globex"][1]))
    assert globex_final[("pdq", secret_value)]["deleted"] is True  # left the group
    assert globex_final[("pdq", retracted)]["deleted"] is True
    assert final(delivered(receiver, "/initech", subs["initech"][1]))[("pdq", retracted)]["deleted"]
