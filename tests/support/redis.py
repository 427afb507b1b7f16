"""A private redis-server for a test or a benchmark, and this process's Celery app
pointed at it: the only place that starts one."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.processes import free_port, wait_for


class RedisServer:
    """A private redis-server (no persistence) that a test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, 10, "redis-server to start")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@contextlib.contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Point this process's Celery app (on-commit fan-out, sweeps) at ``url``, not eager."""
    from forum.celery import app

    saved = (app.conf.broker_url, app.conf.task_always_eager)

    def repoint(url: str, eager: bool) -> None:
        from kombu import pools

        if app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None
        # kombu keeps connection and producer pools per broker in module globals; one
        # closed above must not be handed out again ("Acquire on closed pool").
        pools.reset()
        app.conf.broker_url, app.conf.task_always_eager = url, eager

    repoint(url, False)
    try:
        yield
    finally:
        repoint(*saved)
