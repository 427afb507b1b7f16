"""The pytest fixtures of real services, registered for every test package by
``tests/conftest.py``: a private redis-server and this process's Celery app pointed at it,
an HTTP receiver, the default label taxonomy put back, a live forum."""

from __future__ import annotations

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
