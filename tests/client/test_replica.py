"""The SQLite replica: verified storage, atomic pages, resuming, offline re-verification."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from exchange.client.api import CordialeClient
from exchange.client.cli import main
from exchange.client.replica import Replica
from tests.client.fakes import (
    FORUM_URL,
    MD5,
    PDQ,
    FakeForum,
    forum_jwk,
    jwk_for,
    receipt_for,
    snapshot,
)

KEY = Ed25519PrivateKey.generate()
JWKS = {"keys": [jwk_for(KEY, "acme"), forum_jwk()]}


def test_apply_page_stores_verified_snapshots_and_the_cursor(tmp_path: Path) -> None:
    """A page of verified snapshots is stored verbatim with its opinions, and its cursor is kept."""
    md5_snapshot = snapshot(KEY)
    with Replica(tmp_path) as replica:
        result = replica.apply_page(
            {
                "changes": [md5_snapshot, snapshot(KEY, signal_type="pdq", value=PDQ)],
                "cursor": "c1",
                "has_more": False,
            },
            JWKS,
        )
        assert result.changes == 2 and result.refused == []
        assert replica.cursor == "c1" and replica.count_signals() == 2
        stored = replica.signal("md5", MD5)
        assert stored is not None and stored["deleted"] is False
        assert stored["statements"] == md5_snapshot["statements"]  # verbatim
        assert replica.execute("SELECT positive FROM opinions WHERE value = ?", (MD5,)) == [(1,)]


def test_a_tombstone_deletes_and_the_last_snapshot_wins(tmp_path: Path) -> None:
    """A tombstone deletes the signal and its statements; of two snapshots of one signal on a page,
    the last is kept."""
    with Replica(tmp_path) as replica:
        replica.apply_page({"changes": [snapshot(KEY)], "cursor": "1"}, JWKS)
        tombstone = {"signal_type": "md5", "value": MD5, "deleted": True, "statements": []}
        replica.apply_page({"changes": [tombstone], "cursor": "2"}, JWKS)
        assert replica.count_signals() == 0
        assert replica.execute("SELECT COUNT(*) FROM statements") == [(0,)]
        replica.apply_page({"changes": [snapshot(KEY), snapshot(KEY)], "cursor": "3"}, JWKS)
        assert replica.count_signals() == 1
        assert replica.execute("SELECT COUNT(*) FROM statements") == [(1,)]


def test_statements_that_fail_verification_are_refused_and_reported(tmp_path: Path) -> None:
    """A snapshot signed by an unknown key or with a claim that differs from the signed one is
    refused with its reason, and nothing of it is stored."""
    forged = snapshot(Ed25519PrivateKey.generate())  # a key the JWKS does not know
    tampered = snapshot(KEY, signal_type="pdq", value=PDQ)
    tampered["statements"][0]["labels"] = ["harmless"]
    with Replica(tmp_path) as replica:
        result = replica.apply_page({"changes": [forged, tampered], "cursor": "1"}, JWKS)
        assert [r.reason.split(":")[0] for r in result.refused] == [  # type: ignore[union-attr]
            "unknown_key",
            "claim_mismatch",
        ]
        assert replica.execute("SELECT COUNT(*) FROM statements") == [(0,)]
        assert replica.count_signals() == 0


def test_an_interrupted_page_changes_nothing(tmp_path: Path) -> None:
    """Snapshots and cursor are one transaction: a crash mid-page keeps the old cursor."""
    with Replica(tmp_path) as replica:
        replica.apply_page({"changes": [snapshot(KEY)], "cursor": "1"}, JWKS)
        broken = {"signal_type": "pdq"}  # no value: fails after the first snapshot is written
        page = {"changes": [snapshot(KEY, signal_type="pdq", value=PDQ), broken], "cursor": "2"}
        with pytest.raises(KeyError):
            replica.apply_page(page, JWKS)
        assert replica.cursor == "1" and replica.count_signals() == 1


def test_sync_resumes_from_the_stored_cursor_and_refetches_jwks(tmp_path: Path) -> None:
    """A second sync continues where the first stopped; an unknown kid refetches the JWKS."""
    forum = FakeForum()
    forum.keys = [jwk_for(KEY, "acme")]
    forum.add_page([snapshot(KEY)], has_more=True)
    forum.add_page([snapshot(KEY, signal_type="pdq", value=PDQ)], has_more=False)
    client = CordialeClient(FORUM_URL, "k", transport=forum.transport())
    with Replica(tmp_path) as replica:
        first = replica.sync(client)
        assert (first.changes, first.pages, first.cursor) == (2, 2, "2")
        new_key = Ed25519PrivateKey.generate()
        forum.keys.append(jwk_for(new_key, "globex"))
        forum.add_page([snapshot(new_key, member="globex", value="1" * 32)], has_more=False)
        calls_before = forum.jwks_calls
        second = replica.sync(client)
        assert second.changes == 1 and second.refused == []
        assert replica.count_signals() == 3
        assert forum.jwks_calls == calls_before + 1
    cursors = [r.url.params.get("cursor") for r in forum.requests if r.url.path.endswith("changes")]
    assert cursors == [None, "1", "2"]


def test_verify_names_a_tampered_statement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Editing a stored statement makes `cordiale verify` fail and name it."""
    with Replica(tmp_path) as replica:
        replica.apply_page(
            {
                "changes": [snapshot(KEY), snapshot(KEY, signal_type="pdq", value=PDQ)],
                "cursor": "1",
            },
            JWKS,
        )
        assert all(r.ok for r in replica.verify_all())
        replica.execute(
            "UPDATE statements SET labels = ? WHERE signal_type = 'pdq'", ('["harmless"]',)
        )
    assert main(["verify", "--state", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1] == '{"verified": 1, "failed": 1}'
    assert f"pdq:{PDQ} by acme" in err and "claim_mismatch: labels" in err


def test_verify_without_a_replica_is_a_usage_error(tmp_path: Path) -> None:
    """``verify`` on a state directory without a replica exits 2."""
    assert main(["verify", "--state", str(tmp_path / "none")]) == 2


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_replica_directory_and_files_are_private(tmp_path: Path) -> None:
    """The state directory is created 0700 and the SQLite files (database, WAL, shared
    memory) 0600, whatever the umask: the replica holds what other members shared."""
    state = tmp_path / "state"
    old_umask = os.umask(0o022)
    try:
        with Replica(state) as replica:
            replica.apply_page({"changes": [snapshot(KEY)], "cursor": "1"}, JWKS)
            files = sorted(state.iterdir())
            assert {f.name for f in files} >= {"replica.sqlite3", "replica.sqlite3-wal"}
            assert _mode(state) == 0o700
            assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        os.umask(old_umask)


def test_a_looser_existing_replica_is_tightened(tmp_path: Path) -> None:
    """A replica made world-readable (by an older client or by hand) is made private again
    when it is next opened."""
    state = tmp_path / "state"
    with Replica(state) as replica:
        replica.apply_page({"changes": [snapshot(KEY)], "cursor": "1"}, JWKS)
    state.chmod(0o755)
    for path in state.iterdir():
        path.chmod(0o644)
    with Replica(state) as replica:
        assert replica.count_signals() == 1
        assert _mode(state) == 0o700
        assert {f.name: _mode(f) for f in state.iterdir()} == {
            f.name: 0o600 for f in state.iterdir()
        }


def test_a_replica_from_before_receipts_is_fetched_again(tmp_path: Path) -> None:
    """Statements stored without their receipts can no longer be verified: opening such a
    replica empties it and forgets the cursor, so the next sync fetches everything anew."""
    with Replica(tmp_path) as replica:
        replica.apply_page({"changes": [snapshot(KEY)], "cursor": "5"}, JWKS)
        replica.execute("ALTER TABLE statements DROP COLUMN receipt")
    with Replica(tmp_path) as replica:
        assert replica.cursor is None and replica.count_signals() == 0
        assert replica.execute("SELECT COUNT(*) FROM statements") == [(0,)]
        replica.apply_page({"changes": [snapshot(KEY)], "cursor": "1"}, JWKS)
        assert [r.ok for r in replica.verify_all()] == [True]


def test_sync_refetches_the_jwks_for_a_receipt_by_a_new_forum_key(tmp_path: Path) -> None:
    """The forum rotating its key while we sync: a receipt naming a forum kid we do not know
    makes the sync fetch the JWKS again, and the statement verifies."""
    new_forum_key = Ed25519PrivateKey.generate()
    forum = FakeForum()
    forum.keys = [jwk_for(KEY, "acme")]
    fresh = snapshot(KEY)
    statement = fresh["statements"][0]
    statement["receipt"] = receipt_for(
        statement["jws"], received_at=statement["iat"], forum_key=new_forum_key
    )
    forum.add_page([fresh], has_more=False)
    answer_changes = forum.handle

    def rotate_then_answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/changes"):  # after the sync's first JWKS fetch
            forum.forum_keys = [forum_jwk(status="retired"), forum_jwk(new_forum_key)]
        return answer_changes(request)

    forum.handle = rotate_then_answer  # type: ignore[method-assign]
    client = CordialeClient(FORUM_URL, "k", transport=forum.transport())
    with Replica(tmp_path) as replica:
        outcome = replica.sync(client)
        assert outcome.refused == [] and forum.jwks_calls == 2
        assert replica.count_signals() == 1
