"""The backup and restore drill (deploy/README.md, "Backup and restore"), run for real.

A private PostgreSQL cluster holds the forum; gunicorn serves it (Celery tasks in
process, so webhook deliveries leave from the web process after each commit). Members
submit and follow the feed, a webhook receiver records deliveries; ``pg_dump`` is taken;
more is written (cursors issued after the dump); the dump is restored into a new
database and a new gunicorn serves it; more is written again. Then: the restored forum
serves the feed it had at dump time, cursors issued before the dump keep working,
cursors issued after it get ``resync_required`` whatever their format, ``cordiale sync``
and the threatexchange extension resync by themselves (the replica ends equal to a fresh
one), webhook deliveries resume from the dump with nothing skipped, and the audit chain
verifies.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from threatexchange.signal_type.pdq.signal import PdqSignal

from exchange.client import base64url
from exchange.client.api import CordialeClient, CordialeError
from exchange.client.threatexchange import (
    CordialeCheckpoint,
    CordialeCollabConfig,
    CordialeCredentials,
    CordialeSignalExchangeAPI,
)
from tests.factories import pdq
from tests.support.live_server import CliRun, LiveMember, cordiale_command, run
from tests.support.postgres import PostgresServer, private_postgres
from tests.support.processes import ROOT, start_gunicorn, stop_gunicorn, wait_for
from tests.support.receivers import Receiver

pytestmark = pytest.mark.slow


def server_env(database_url: str) -> dict[str, str]:
    """A forum process on ``database_url``: test settings, no Redis (tasks in process)."""
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="forum.test_settings",
        DATABASE_URL=database_url,
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        CORDIALE_WEBHOOK_ALLOW_PRIVATE="true",
    )
    return env


def manage(env: dict[str, str], *args: str) -> dict[str, Any]:
    """``python manage.py ARGS`` against the drill's database; its JSON last line."""
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


class Drill:
    """The forum being drilled: its database, its web server, its members."""

    def __init__(self, server: PostgresServer, tmp: Path) -> None:
        self.server = server
        self.tmp = tmp
        self.env = server_env(server.createdb("forum"))
        manage(self.env, "migrate", "--no-input")
        self.proc, self.url = start_gunicorn(self.env, workers=1)
        self.members = {slug: self.member(slug) for slug in ("acme", "globex")}

    def member(self, slug: str) -> LiveMember:
        api_key = manage(self.env, "create_member", slug, "--name", slug.title())["api_key"]
        key_path = self.tmp / f"{slug}.pem"
        keygen = run(cordiale_command("keygen", "--out", str(key_path)))
        assert keygen.returncode == 0, keygen.stderr
        kid = manage(self.env, "register_signing_key", slug, keygen.last["public_jwk"]["x"])
        return LiveMember(slug, api_key, key_path, kid["kid"], self.url)

    def serve(self, database_url: str) -> None:
        """Point the web server at another database (the restored one)."""
        stop_gunicorn(self.proc)
        self.env = server_env(database_url)
        self.proc, self.url = start_gunicorn(self.env, workers=1)
        for member in self.members.values():
            member.url = self.url

    def cli(self, slug: str, *args: str) -> CliRun:
        return run(cordiale_command(*args), self.members[slug].env())

    def submit(self, values: list[str], *, op: str = "assert") -> None:
        if op == "retract":
            for value in values:
                done = self.cli("acme", "retract", "pdq", value)
                assert done.returncode == 0, done.stderr
            return
        data = self.tmp / "rows.csv"
        rows = "".join(f"pdq,{v},recruitment,green,forum\n" for v in values)
        data.write_text("signal_type,value,labels,tlp,audience\n" + rows)
        done = self.cli("acme", "submit", str(data))
        assert done.returncode == 0, done.stderr
        assert done.last["accepted"] == len(values), done.last

    def client(self, slug: str = "globex") -> CordialeClient:
        return CordialeClient(self.url, self.members[slug].api_key)

    def read(self, cursor: str | None) -> tuple[list[dict[str, Any]], str]:
        """The feed from ``cursor`` to its end, as globex: the changes and the last cursor."""
        changes: list[dict[str, Any]] = []
        with self.client() as client:
            for page in client.iter_changes(cursor, limit=3):
                changes += page["changes"]
                cursor = page["cursor"]
        assert cursor is not None
        return changes, cursor

    def resync_asked(self, cursor: str) -> bool:
        with self.client() as client:
            try:
                client.changes(cursor)
            except CordialeError as exc:
                assert exc.status == 410, exc
                return exc.code == "resync_required"
        return False

    def close(self) -> None:
        stop_gunicorn(self.proc)


@pytest.fixture
def drill(tmp_path: Path) -> Iterator[Drill]:
    with private_postgres("cordiale-drill") as server:
        forum = Drill(server, tmp_path)
        try:
            yield forum
        finally:
            forum.close()


def values_of(changes: list[dict[str, Any]]) -> set[str]:
    return {c["value"] for c in changes}


def live(changes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last snapshot of every signal, live ones only."""
    last = {c["value"]: c for c in changes}
    return {v: c for v, c in last.items() if not c["deleted"]}


def without_anchor(cursor: str) -> str:
    data = orjson.loads(base64url.decode(cursor))
    data.pop("f")
    return base64url.encode(orjson.dumps(data))


def replica_state(state: Path) -> dict[str, list[tuple[object, ...]]]:
    """A replica's live signals, their statements and opinions, in a stable order."""
    with sqlite3.connect(state / "replica.sqlite3") as db:
        return {
            "signals": sorted(
                db.execute("SELECT signal_type, value FROM signals WHERE deleted = 0")
            ),
            "statements": sorted(db.execute("SELECT * FROM statements")),
            "opinions": sorted(db.execute("SELECT * FROM opinions")),
        }


def delivered(receiver: Receiver, since: int = 0) -> list[tuple[str, str]]:
    """(webhook-id, value) of every change the receiver got, from request ``since`` on."""
    with receiver.lock:
        requests = receiver.requests[since:]
    return [
        (r.headers["webhook-id"], c["value"])
        for r in requests
        if r.payload.get("type") == "changes"
        for c in r.payload["changes"]
    ]


def test_backup_and_restore_drill(drill: Drill, tmp_path: Path) -> None:
    """pg_dump, more writes, pg_restore into a new database: same feed, old cursors work,
    post-dump cursors get resync_required, clients resync by themselves, webhooks resume
    without a gap, the audit chain verifies."""
    receiver = Receiver()
    try:
        with drill.client() as client:
            client.create_webhook(receiver.url())
        kept = [pdq() for _ in range(4)]
        drill.submit(kept)
        wait_for(lambda: values_of_pairs(delivered(receiver)) >= set(kept), 30, "deliveries")
        at_dump, pre = drill.read(None)
        assert set(kept) <= values_of(at_dump)
        replica = tmp_path / "replica"
        assert drill.cli("globex", "sync", "--state", str(replica)).returncode == 0
        dump = drill.server.dump("forum")

        # After the dump: history the restore will lose.
        lost = [pdq() for _ in range(3)]
        drill.submit(lost)
        drill.submit(kept[:1], op="retract")
        _, post = drill.read(pre)
        synced = drill.cli("globex", "sync", "--state", str(replica))
        assert synced.returncode == 0, synced.stderr
        checkpoint = CordialeCheckpoint(post, 0, int(time.time()))
        assert not checkpoint.is_stale()
        wait_for(lambda: values_of_pairs(delivered(receiver)) >= set(lost), 30, "deliveries")
        before_restore = len(receiver.requests)
        ids_before = {message_id for message_id, _ in delivered(receiver)}

        drill.serve(drill.server.restore(dump, "forum_restored"))
        assert manage(drill.env, "verify_audit")["ok"] is True
        restored, _ = drill.read(None)
        assert live(restored) == live(at_dump)
        assert drill.read(pre) == ([], pre)
        assert drill.resync_asked(post)
        assert drill.resync_asked(without_anchor(post))

        # New history on the restored forum takes the lost positions, and more.
        new = [pdq() for _ in range(6)]
        drill.submit(new)
        assert drill.resync_asked(post)
        after_pre, _ = drill.read(pre)
        assert values_of(after_pre) == set(new)
        now, _ = drill.read(None)
        assert set(live(now)) == set(kept + new)

        # The member's tools resync by themselves.
        resynced = drill.cli("globex", "sync", "--state", str(replica))
        assert resynced.returncode == 0, resynced.stderr
        assert resynced.last["resynced"] == {"removed": len(lost)}
        assert resynced.last["signals"] == len(kept + new)
        fresh = tmp_path / "fresh"
        assert drill.cli("globex", "sync", "--state", str(fresh)).returncode == 0
        assert replica_state(replica) == replica_state(fresh)
        again = drill.cli("globex", "sync", "--state", str(replica))
        assert again.returncode == 0 and "resynced" not in again.last
        assert drill.cli("globex", "verify", "--state", str(replica)).last["failed"] == 0

        collab = CordialeCollabConfig(name="forum", server_url=drill.url)
        api = CordialeSignalExchangeAPI.for_collab(
            collab, CordialeCredentials(drill.members["globex"].api_key)
        )
        deltas = list(api.fetch_iter([PdqSignal], checkpoint))
        assert [d.updates for d in deltas] == [{}]
        assert deltas[-1].checkpoint.is_stale()
        refetched = {
            k[1] for d in api.fetch_iter([PdqSignal], None) for k, v in d.updates.items() if v
        }
        assert refetched == set(kept + new)

        # Webhooks resume from the endpoint's cursor in the dump: every change since then,
        # under new webhook-ids (a receiver dropping repeated ids drops none of them).
        wait_for(
            lambda: values_of_pairs(delivered(receiver, before_restore)) >= set(new),
            30,
            "deliveries after the restore",
        )
        after = delivered(receiver, before_restore)
        assert not {message_id for message_id, _ in after} & ids_before
        assert manage(drill.env, "verify_audit")["ok"] is True
    finally:
        receiver.close()


def values_of_pairs(pairs: list[tuple[str, str]]) -> set[str]:
    return {value for _, value in pairs}
