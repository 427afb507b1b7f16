"""Real parts for integration tests and benchmarks: a Redis server, a Celery worker
process and an HTTP receiver on 127.0.0.1, each started and stopped here."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def database_url() -> str:
    """The URL of the database Django uses in this process (the test database)."""
    from django.db import connection

    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@contextlib.contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Point this process's Celery app (on-commit fan-out, sweeps) at ``url``, not eager."""
    from forum.celery import app

    saved = (app.conf.broker_url, app.conf.task_always_eager)

    def repoint(url: str, eager: bool) -> None:
        if app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None
        app.conf.broker_url, app.conf.task_always_eager = url, eager

    repoint(url, False)
    try:
        yield
    finally:
        repoint(*saved)


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


@dataclass
class Worker:
    """``celery -A forum worker -B`` in its own process group, logging to a file."""

    env: dict[str, str]
    log: Path
    concurrency: int = 2
    beat: bool = True
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        name = f"test-{os.getpid()}-{time.monotonic_ns()}@%h"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "forum",
            "worker",
            "-l",
            "info",
            "-P",
            "prefork",
            "-c",
            str(self.concurrency),
            "-n",
            name,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        if self.beat:
            command += ["-B", "-s", str(self.log.with_suffix(".beat"))]
        self.log.write_bytes(b"")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=out, stderr=out, start_new_session=True
            )
        wait_for(lambda: b" ready." in self.log.read_bytes() or self._died(), 60, "the worker")
        assert not self._died(), self.log.read_text()[-3000:]

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    client: tuple[str, int] = ("", 0)  # the sender's address: one per TCP connection

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A threaded HTTP server recording every POST; ``fail_until`` (a ``time.monotonic``
    instant) makes it answer 500, ``delay`` makes it answer late; with ``tls`` (a server
    context) it speaks HTTPS."""

    requests: list[Received] = field(default_factory=list)
    fail_until: float = 0.0
    delay: float = 0.0
    on_request: Callable[[Received], None] | None = None
    tls: ssl.SSLContext | None = None

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                item = Received(self.path, headers, body, time.time(), self.client_address)
                failing = time.monotonic() < receiver.fail_until
                with receiver.lock:
                    receiver.requests.append(item)
                if receiver.on_request is not None:
                    receiver.on_request(item)
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(500 if failing else 204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TricklingReceiver:
    """A receiver that reads each request, then answers one byte of its status line every
    ``interval`` seconds, for as long as it runs: every read the sender makes gets data
    before a per-read timeout could fire. Records when each request arrived."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.arrivals: list[float] = []
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._server.getsockname()[1]}{path}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            self.arrivals.append(time.time())
            answer = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n"
            try:
                while not self._stop.is_set():
                    for byte in answer:
                        if self._stop.wait(self.interval):
                            return
                        conn.sendall(bytes([byte]))
                    answer = b"x-slow: " + b"y" * 64 + b"\r\n"  # headers that never end
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._server.close()
