"""A real forum for member-side tests: pytest-django's live server on the test database.

The ``forum`` fixture (``tests/support/fixtures.py``) serves the test database over HTTP
on 127.0.0.1 (a thread of the test process; each request in its own thread), so the
``cordiale`` and ``threatexchange`` commands run as real subprocesses against it. Members
and keys are made through the management commands an admin would use, so what the tests
exercise is the documented onboarding path::

    def test_something(forum: LiveForum, tmp_path: Path) -> None:
        acme = forum.member("acme", tmp_path)          # member, API key, registered key
        run = forum.cli(acme, "submit", "hashes.csv")  # python -m exchange.client ...
        assert run.returncode == 0, run.stderr
        assert run.last == {"accepted": 1, ...}

``ServerGate`` holds one server-side call open until the test releases it, which lets a
test kill a client in the middle of a request the server really received.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management import call_command

from tests.support.processes import ROOT


@dataclass
class LiveMember:
    """A member as its engineers hold it: slug, API key and PEM private key file."""

    slug: str
    api_key: str
    key_path: Path
    kid: str
    url: str

    def env(self) -> dict[str, str]:
        """The environment the ``cordiale`` command reads."""
        return {
            "CORDIALE_URL": self.url,
            "CORDIALE_API_KEY": self.api_key,
            "CORDIALE_SIGNING_KEY": str(self.key_path),
        }


@dataclass
class CliRun:
    """A finished command: exit status, output, and the JSON last line of stdout."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def last(self) -> Any:
        lines = self.stdout.strip().splitlines()
        assert lines, f"no output; stderr: {self.stderr}"
        return json.loads(lines[-1])


def client_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a member's machine: no server settings, the project importable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CORDIALE_", "TX_", "DATABASE_URL"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def run(args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> CliRun:
    completed = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=client_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return CliRun(completed.returncode, completed.stdout, completed.stderr)


def cordiale_command(*args: str) -> list[str]:
    return ["-m", "exchange.client", *args]


def manage(command: str, *args: str) -> dict[str, Any]:
    """Run a management command in the test process; return its JSON last line."""
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    result: dict[str, Any] = json.loads(out.getvalue().strip().splitlines()[-1])
    return result


class LiveForum:
    """The live server and the admin's tools to populate it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def member(self, slug: str, directory: Path) -> LiveMember:
        """An active member with an all-scope API key and a key made by ``cordiale keygen``."""
        api_key = manage("create_member", slug, "--name", slug.title())["api_key"]
        key_path = directory / f"{slug}.pem"
        keygen = run(cordiale_command("keygen", "--out", str(key_path)))
        assert keygen.returncode == 0, keygen.stderr
        x = keygen.last["public_jwk"]["x"]
        kid = manage("register_signing_key", slug, x)["kid"]
        assert kid == keygen.last["kid"]
        return LiveMember(slug, api_key, key_path, kid, self.url)

    def cli(self, member: LiveMember, *args: str, cwd: Path = ROOT) -> CliRun:
        """``cordiale ARGS`` as ``member``, in a subprocess."""
        return run(cordiale_command(*args), member.env(), cwd=cwd)

    def popen(self, member: LiveMember, *args: str) -> subprocess.Popen[str]:
        """``cordiale ARGS`` as ``member``, started and left running."""
        return subprocess.Popen(
            [sys.executable, *cordiale_command(*args)],
            cwd=ROOT,
            env=client_env(member.env()),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


class ServerGate:
    """Wrap a server-side function so that its ``hold_call``-th call (from 1) waits.

    ``entered`` is set once that call has arrived; it then waits for ``release()`` before
    running the real function, so the request completes (and commits) on the server even
    when the client that sent it is gone.
    """

    def __init__(self, real: Callable[..., Any], hold_call: int) -> None:
        self.real = real
        self.hold_call = hold_call
        self.calls = 0
        self.entered = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.calls += 1
            number = self.calls
        if number == self.hold_call:
            self.entered.set()
            self._released.wait(timeout=60)
        return self.real(*args, **kwargs)

    def release(self) -> None:
        self._released.set()
