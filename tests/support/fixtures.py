"""The pytest fixtures of real services, registered for every test package by
``tests/conftest.py``: a private redis-server and this process's Celery app pointed at it,
an HTTP receiver, the default label taxonomy put back, a live forum, Celery tasks run in
process, and DNS answers a test chooses."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.labels import default_labels_restore
from tests.support.live_server import LiveForum
from tests.support.receivers import Receiver
from tests.support.redis import RedisServer, celery_broker


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server, killed after the test."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def broker(redis_server: RedisServer) -> Iterator[RedisServer]:
    """Point this process's Celery app (on-commit fan-out, sweeps) at the private Redis."""
    with celery_broker(redis_server.url):
        yield redis_server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP receiver on 127.0.0.1 recording every POST, answering 204."""
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def labels() -> None:
    """Transactional tests truncate tables; put the seeded taxonomy back."""
    default_labels_restore()


@pytest.fixture
def forum(live_server: Any) -> Iterator[LiveForum]:
    """A live forum on a fresh (transactional) test database with the seeded labels."""
    default_labels_restore()
    yield LiveForum(live_server.url)


@pytest.fixture
def tasks_in_process() -> Iterator[None]:
    """Celery tasks (deliveries, retries) run in this process as they are published."""
    from forum.celery import app

    saved = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = saved


@pytest.fixture
def resolve(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """DNS is outside the system: names in the returned dict resolve to the address it
    gives (IPv4 or IPv6); other names resolve as usual."""
    answers: dict[str, str] = {}
    real = socket.getaddrinfo

    def fake(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            address = answers[host]
            if ":" in address:
                return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    yield answers
