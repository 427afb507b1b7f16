"""HTTP receivers on 127.0.0.1 standing in for members' webhook endpoints: one that
records every POST (and can fail, answer late or speak TLS), one that trickles its
answer byte by byte."""

from __future__ import annotations

import json
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    client: tuple[str, int] = ("", 0)  # the sender's address: one per TCP connection
    status: int = 0  # what the receiver answered

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A threaded HTTP server recording every POST; ``fail_until`` (a ``time.monotonic``
    instant) makes it answer 500, ``fail_ratio`` makes it answer 500 to that share of
    requests at random, ``delay`` makes it answer late; with ``tls`` (a server context) it
    speaks HTTPS. ``port`` 0 picks a free one; a receiver closed and made again on the
    same port (sharing ``requests``) is a member's server that was down for a while."""

    requests: list[Received] = field(default_factory=list)
    fail_until: float = 0.0
    fail_ratio: float = 0.0
    delay: float = 0.0
    on_request: Callable[[Received], None] | None = None
    tls: ssl.SSLContext | None = None
    port: int = 0

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
                failing = failing or random.random() < receiver.fail_ratio
                item.status = 500 if failing else 204
                with receiver.lock:
                    receiver.requests.append(item)
                if receiver.on_request is not None:
                    receiver.on_request(item)
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(item.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
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
