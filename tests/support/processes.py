"""Real processes for integration tests and benchmarks: a Celery worker, gunicorn, the
``deploy/bin`` entrypoints in production mode, each started in its own session and
stopped here; free ports and polling for the moment they are ready."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "deploy" / "bin"
PUBLIC_HOST = "exchange.forum.example"


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a process's output (production logging), other lines skipped."""
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


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

    def json_lines(self) -> list[dict[str, Any]]:
        return json_lines(self.log.read_text(errors="replace"))

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


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a production process: no debug, a real secret and forum key,
    one host name."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CORDIALE_", "CELERY_", "GUNICORN_", "PROMETHEUS_"))
        and k not in {"DATABASE_URL", "REDIS_URL", "PYTEST_CURRENT_TEST"}
    }
    # The scripts run `python`, `gunicorn` and `celery` from PATH, as in the image.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        DJANGO_SETTINGS_MODULE="forum.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_DEBUG="false",
        DJANGO_ALLOWED_HOSTS=PUBLIC_HOST,
        # The test run's throwaway forum key (forum/test_settings.py made it).
        CORDIALE_FORUM_KEY_FILE=os.environ["CORDIALE_FORUM_KEY_FILE"],
        PYTHONUNBUFFERED="1",
    )
    # ... and its match index snapshot directory (forum/test_settings.py), not the host's.
    if "CORDIALE_MATCH_INDEX_DIR" in os.environ:
        env["CORDIALE_MATCH_INDEX_DIR"] = os.environ["CORDIALE_MATCH_INDEX_DIR"]
    env.update(overrides)
    return env


class Process:
    """A started process in its own session, its output in a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        return json_lines(self.output())

    def wait_for(self, predicate: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"exited ({self.popen.returncode}) before {what}:\n{self.output()[-4000:]}"
                )
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}:\n{self.output()[-4000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._out.close()


def http_get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 (our local server)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def start_gunicorn(
    env: Mapping[str, str], *, workers: int = 2, extra: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``gunicorn forum.wsgi:application`` and wait until /healthz answers 200;
    returns the master process (in its own process group) and the base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "forum.wsgi:application"),
            *("-w", str(workers), "-b", f"127.0.0.1:{port}"),
            *("--timeout", "300", "--log-level", "warning", *extra),
        ],
        cwd=ROOT,
        env=dict(env),
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with code {proc.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_gunicorn(proc)
    raise RuntimeError("gunicorn did not answer /healthz within 60 s")


def stop_gunicorn(proc: subprocess.Popen[bytes]) -> None:
    """Stop the master and its workers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def celery_worker_env(redis_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a test's Celery worker: this environment, the test settings,
    the committed test database, the private Redis, private webhook addresses allowed."""
    from tests.support.database import database_url

    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "forum.test_settings",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "CORDIALE_WEBHOOK_ALLOW_PRIVATE": "true",
        **overrides,
    }
