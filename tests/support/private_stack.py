"""gunicorn in production mode on a private PostgreSQL cluster, for tests that restart
the database under load: the cluster (``tests.support.postgres``) gets a fresh database,
migrated by ``manage.py migrate``; members and their signing keys are made with the
admin's management commands, in subprocesses pointed at that database."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client import jws
from tests.support.postgres import PostgresServer, private_postgres
from tests.support.processes import (
    PUBLIC_HOST,
    ROOT,
    production_env,
    start_gunicorn,
    stop_gunicorn,
)

# What the TLS-terminating proxy adds: the host the server answers to, and HTTPS.
PROXY_HEADERS = {"Host": PUBLIC_HOST, "X-Forwarded-Proto": "https"}


@dataclass
class StackMember:
    """A member of the private stack: slug, API key and signing key."""

    slug: str
    api_key: str
    private_key: Ed25519PrivateKey = field(repr=False)

    def statement(self, signal_type: str, value: str, **claims: Any) -> str:
        body: dict[str, Any] = {
            "iss": self.slug,
            "iat": int(time.time()),
            "jti": uuid.uuid4().hex,
            "op": "assert",
            "signal_type": signal_type,
            "value": value,
            "labels": ["recruitment"],
            "tlp": "green",
            "audience": "forum",
            **claims,
        }
        kid = jws.jwk_thumbprint(jws.public_key_x(self.private_key.public_key()))
        return jws.sign_compact(body, self.private_key, kid)

    def headers(self) -> dict[str, str]:
        return {**PROXY_HEADERS, "Authorization": f"Bearer {self.api_key}"}


@dataclass
class PrivateStack:
    """The private cluster, the database's URL, gunicorn's master and base URL."""

    server: PostgresServer
    env: dict[str, str]
    gunicorn: subprocess.Popen[bytes]
    base: str

    def manage(self, *args: str) -> dict[str, Any]:
        """``manage.py ARGS`` against the private database; its JSON last line."""
        return manage(self.env, *args)

    def member(self, slug: str) -> StackMember:
        api_key = self.manage("create_member", slug, "--name", slug.title())["api_key"]
        private_key = Ed25519PrivateKey.generate()
        self.manage("register_signing_key", slug, jws.public_key_x(private_key.public_key()))
        return StackMember(slug, api_key, private_key)

    def workers(self) -> set[int]:
        """The pids of gunicorn's worker processes (children of the master)."""
        return children(self.gunicorn.pid)

    def client(self, member: StackMember, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers=member.headers(), timeout=timeout)


def manage(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}


def children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name (field 2) is in parentheses and may hold spaces.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
    return found


@contextlib.contextmanager
def private_stack(workers: int = 2, **env: str) -> Iterator[PrivateStack]:
    """A private cluster with a migrated database ``cordiale`` and gunicorn serving it
    (production settings, no Redis: the cache in memory, tasks in process)."""
    with private_postgres("cordiale-outage") as server:
        url = server.createdb("cordiale")
        process_env = production_env(DATABASE_URL=url, PYTHONPATH=str(ROOT), **env)
        manage(process_env, "migrate", "--verbosity", "0")
        proc, base = start_gunicorn(process_env, workers=workers)
        try:
            yield PrivateStack(server=server, env=process_env, gunicorn=proc, base=base)
        finally:
            stop_gunicorn(proc)
