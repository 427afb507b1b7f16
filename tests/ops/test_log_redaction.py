"""Queried signal values never reach the logs of the real web processes.

``deploy/bin/web`` (gunicorn with ``deploy/gunicorn.conf.py``) and ``manage.py
runserver`` run in production mode (JSON log lines) on a migrated SQLite database with
one member. A member looks values up, sets an opinion, pages the feed with a cursor and
sends a request line gunicorn cannot parse; every line either process writes is
searched for the values, raw and percent-encoded. Each run uses fresh random values,
so none can be in a log by chance.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.processes import BIN, PUBLIC_HOST, ROOT, Process, free_port, production_env

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Secrets:
    pdq: str
    md5: str
    url: str
    cursor: str
    raw_line_value: str

    def forms(self) -> list[str]:
        """Every spelling in which a value could leak into a log line."""
        values = [self.pdq, self.md5, self.url, self.cursor, self.raw_line_value]
        # The random part of the URL alone, should the URL be cut or re-encoded.
        values.append(self.url.rsplit("/", 1)[1].split("?")[0])
        return values + [quote(v, safe="") for v in values]


@dataclass
class Site:
    env: dict[str, str]
    api_key: str
    tmp: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    tmp = tmp_path_factory.mktemp("log-redaction")
    env = production_env(
        DATABASE_URL=f"sqlite:///{tmp / 'cordiale.sqlite3'}",
        CORDIALE_DB_WAIT="5",
    )
    migrate = subprocess.run(
        [str(BIN / "migrate")], env=env, capture_output=True, text=True, timeout=180
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    created = subprocess.run(
        [sys.executable, "manage.py", "create_member", "logcheck", "--name", "Log check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    api_key = json.loads(created.stdout.strip().splitlines()[-1])["api_key"]
    return Site(env=env, api_key=api_key, tmp=tmp)


def fresh_values() -> Secrets:
    return Secrets(
        pdq=secrets.token_hex(32),
        md5=secrets.token_hex(16),
        url=f"https://leak.example/{secrets.token_hex(12)}?id={secrets.token_hex(6)}",
        cursor=secrets.token_urlsafe(24),
        raw_line_value=secrets.token_hex(32),
    )


def _call(base: str, method: str, path: str, api_key: str | None, body: bytes | None = None) -> int:
    headers = {"Host": PUBLIC_HOST, "X-Forwarded-Proto": "https"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(  # noqa: S310 (our local server)
        base + path, data=body, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _query_everything(base: str, api_key: str, v: Secrets) -> None:
    """The requests whose paths or query strings carry values, with their answers."""
    assert _call(base, "GET", f"/api/v1/signals/pdq/{v.pdq}", api_key) == 404
    assert _call(base, "GET", f"/api/v1/signals/url/{quote(v.url, safe='')}", api_key) == 404
    # Unauthenticated: Django logs the 401 with the path too.
    assert _call(base, "GET", f"/api/v1/signals/md5/{v.md5}", None) == 401
    opinion = json.dumps({"category": "negative"}).encode()
    assert _call(base, "PUT", f"/api/v1/opinions/md5/{v.md5}", api_key, opinion) == 404
    assert _call(base, "GET", f"/api/v1/changes?cursor={v.cursor}&limit=5", api_key) == 400


def _wait_until_up(proc: Process, base: str) -> None:
    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    proc.wait_for(up, "/healthz 200", 90)


def _assert_no_value(proc: Process, v: Secrets) -> None:
    output = proc.output()
    for form in v.forms():
        assert form not in output, f"{form!r} is in the log:\n{output[-4000:]}"


@pytest.fixture
def gunicorn(site: Site) -> Iterator[tuple[Process, str]]:
    port = free_port()
    proc = Process(
        [str(BIN / "web")],
        {**site.env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"},
        site.tmp / f"web-{port}.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, base)
        yield proc, base
    finally:
        proc.stop()


def test_gunicorn_logs_no_queried_value(gunicorn: tuple[Process, str], site: Site) -> None:
    """Through gunicorn, neither the access log, nor Django's 4xx warnings, nor
    gunicorn's complaint about an unparsable request line show a value; the lines are
    there, with ``<redacted>`` in its place."""
    proc, base = gunicorn
    v = fresh_values()
    _query_everything(base, site.api_key, v)
    # A request line without an HTTP version: gunicorn answers 400 and logs the line.
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(f"GET /api/v1/signals/pdq/{v.raw_line_value}\r\n\r\n".encode())
        assert raw.recv(1024).startswith(b"HTTP/1.1 400")

    lookup = proc.wait_for(
        lambda: next(
            (
                line
                for line in proc.json_lines()
                if line.get("logger") == "gunicorn.access" and line.get("method") == "PUT"
            ),
            None,
        ),
        "the access line of the last API request",
    )
    assert lookup["path"] == "/api/v1/opinions/md5/<redacted>"
    proc.wait_for(lambda: "Invalid request" in proc.output(), "gunicorn's invalid request line")
    messages = [line.get("message", "") for line in proc.json_lines()]
    assert "Not Found: /api/v1/signals/pdq/<redacted>" in messages, messages
    _assert_no_value(proc, v)


def test_runserver_logs_no_queried_value(site: Site) -> None:
    """``manage.py runserver`` logs each request line (``django.server``) and Django's
    4xx warnings: the values and the cursor are redacted in both."""
    port = free_port()
    proc = Process(
        [
            sys.executable,
            "manage.py",
            "runserver",
            "--noreload",
            "--skip-checks",
            f"127.0.0.1:{port}",
        ],
        site.env,
        site.tmp / f"runserver-{port}.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, base)
        v = fresh_values()
        _query_everything(base, site.api_key, v)
        proc.wait_for(
            lambda: "/api/v1/changes?cursor=<redacted>&limit=<redacted>" in proc.output(),
            "runserver's line for the feed request, redacted",
        )
        proc.wait_for(
            lambda: "/api/v1/opinions/md5/<redacted>" in proc.output(),
            "runserver's line for the opinion request, redacted",
        )
    finally:
        proc.stop()
    _assert_no_value(proc, v)
