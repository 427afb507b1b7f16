"""The ``cordiale`` command end to end against a live forum, each command a real process.

One member generates a key (registered by the admin's management command), submits a CSV
with one bad row; another member syncs a verified replica, verifies it offline and finds
the hash. Interrupted submits and syncs are killed for real in the middle of a request
the server received, and resume without duplicates.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from pathlib import Path

import pytest

from exchange import selectors
from exchange.models import Statement
from tests.factories import pdq
from tests.support.live_server import LiveForum, LiveMember, ServerGate

HEADER = "signal_type,value,labels,tlp,audience\n"
MD5 = "D41D8CD98F00B204E9800998ECF8427E"


def replica_rows(state: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of a replica's data tables, in a stable order."""
    with sqlite3.connect(state / "replica.sqlite3") as db:
        return {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall())
            for table in ("signals", "statements", "opinions")
        }


def next_second() -> None:
    """Wait for the next Unix second: statements of one member on one signal order by iat."""
    time.sleep(1 - time.time() % 1 + 0.01)


def submit_fixture(forum: LiveForum, tmp_path: Path) -> tuple[LiveMember, LiveMember, str]:
    """acme submits a PDQ hash and an MD5 (and one bad row); globex can read them."""
    acme = forum.member("acme", tmp_path)
    globex = forum.member("globex", tmp_path)
    pdq_value = pdq()
    data = tmp_path / "hashes.csv"
    data.write_text(
        HEADER
        + f"pdq,{pdq_value.upper()},recruitment|glorification,green,forum\n"
        + "pdq,not-a-hash,recruitment,green,forum\n"
        + f"md5,{MD5},graphic-violence,amber,forum\n"
    )
    run = forum.cli(acme, "submit", str(data))
    assert run.returncode == 1, run.stderr
    assert run.last == {"accepted": 2, "duplicate": 0, "stale": 0, "rejected": 1}
    rejected = (tmp_path / "hashes.csv.rejected.csv").read_text().splitlines()
    assert rejected[0].endswith(",code,detail")
    assert rejected[1].startswith("pdq,not-a-hash,") and ",invalid_value," in rejected[1]
    assert len(rejected) == 2
    return acme, globex, pdq_value


@pytest.mark.slow
def test_submit_sync_verify_and_tamper(forum: LiveForum, tmp_path: Path) -> None:
    """A bad row fails alone; the other member's replica verifies; a tampered one names it."""
    _acme, globex, pdq_value = submit_fixture(forum, tmp_path)
    assert Statement.objects.filter(member__slug="acme").count() == 2

    state = tmp_path / "globex-state"
    sync = forum.cli(globex, "sync", "--state", str(state))
    assert sync.returncode == 0, sync.stderr
    assert sync.last["signals"] == 2
    assert sync.last["changes"] >= 2
    verify = forum.cli(globex, "verify", "--state", str(state))
    assert verify.returncode == 0, verify.stderr
    assert verify.last == {"verified": 2, "failed": 0}

    # Someone with write access to the replica rewrites a label in the signed payload.
    with sqlite3.connect(state / "replica.sqlite3") as db:
        (token, jti) = db.execute(
            "SELECT jws, jti FROM statements WHERE signal_type = 'pdq' AND value = ?",
            (pdq_value,),
        ).fetchone()
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["labels"] = ["recruitment"]
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        db.execute(
            "UPDATE statements SET jws = ?, labels = ? WHERE jti = ?",
            (f"{header}.{forged}.{signature}", json.dumps(["recruitment"]), jti),
        )
    verify = forum.cli(globex, "verify", "--state", str(state))
    assert verify.returncode == 1
    assert verify.last == {"verified": 1, "failed": 1}
    assert f"failed: pdq:{pdq_value} by acme" in verify.stderr
    assert jti in verify.stderr and "bad_signature" in verify.stderr


@pytest.mark.slow
def test_match_finds_a_submitted_pdq_hash(forum: LiveForum, tmp_path: Path) -> None:
    """``cordiale match pdq:<hash>`` finds acme's hash for globex, and a near one too."""
    _acme, globex, pdq_value = submit_fixture(forum, tmp_path)
    near = f"{int(pdq_value, 16) ^ 0b1011:064x}"  # three bits away
    run = forum.cli(globex, "match", f"pdq:{pdq_value}", f"pdq:{near}", f"md5:{MD5}")
    assert run.returncode == 0, run.stderr
    assert run.last == {"queries": 3, "matched": 3}
    answers = [json.loads(line) for line in run.stdout.strip().splitlines()[:-1]]
    assert [a["matches"][0]["distance"] for a in answers] == [0, 3, 0]
    assert {a["matches"][0]["signal"]["value"] for a in answers[:2]} == {pdq_value}
    miss = forum.cli(globex, "match", f"pdq:{int(pdq_value, 16) ^ (2**200 - 1):064x}")
    assert miss.returncode == 0, miss.stderr
    assert miss.last == {"queries": 1, "matched": 0}


@pytest.mark.slow
def test_interrupted_submit_resumes_without_duplicates(
    forum: LiveForum, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while the server holds its second batch, a re-run completes the file once.

    The first batch is confirmed (not sent again); the held batch commits on the server
    after the client died and comes back ``duplicate``; the rest is sent fresh.
    """
    import exchange.apis

    acme = forum.member("acme", tmp_path)
    values = [pdq() for _ in range(5)]
    data = tmp_path / "five.csv"
    data.write_text(HEADER + "".join(f"pdq,{v},recruitment,green,forum\n" for v in values))
    gate = ServerGate(exchange.apis.statement_submit, hold_call=2)
    monkeypatch.setattr(exchange.apis, "statement_submit", gate)

    process = forum.popen(acme, "submit", str(data), "--batch-size", "2")
    try:
        assert gate.entered.wait(timeout=60), "the second batch never reached the server"
        process.kill()
        process.wait(timeout=30)
    finally:
        gate.release()
    assert process.returncode != 0
    progress = (tmp_path / "five.csv.progress.jsonl").read_text().splitlines()
    assert sum("results" in json.loads(line) for line in progress) == 1  # batch 1 confirmed

    # The held batch is committed by the server thread once released.
    def stored() -> int:
        return Statement.objects.filter(member__slug="acme").count()

    for _ in range(100):
        if stored() == 4:
            break
        gate.entered.wait(0.05)
    assert stored() == 4

    run = forum.cli(acme, "submit", str(data), "--batch-size", "2")
    assert run.returncode == 0, run.stderr
    assert run.last == {"accepted": 3, "duplicate": 2, "stale": 0, "rejected": 0}
    assert "2 rows confirmed by an earlier run" in run.stderr
    assert stored() == 5
    assert sorted(Statement.objects.values_list("jti", flat=True)) == sorted(
        set(Statement.objects.values_list("jti", flat=True))
    )
    assert gate.calls == 4  # batch 1, the held batch 2, then batches 2 and 3 of the re-run


@pytest.mark.slow
def test_interrupted_sync_resumes_to_the_same_replica(
    forum: LiveForum, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while asking for its third page, a sync resumes from its cursor and ends
    with exactly the replica a fresh full sync builds: nothing lost, nothing twice."""
    acme = forum.member("acme", tmp_path)
    globex = forum.member("globex", tmp_path)
    values = [pdq() for _ in range(6)]
    data = tmp_path / "six.csv"
    data.write_text(HEADER + "".join(f"pdq,{v},recruitment,green,forum\n" for v in values))
    assert forum.cli(acme, "submit", str(data)).returncode == 0
    next_second()  # a retraction signed in the assertion's second would be stale
    retract = forum.cli(acme, "retract", "pdq", values[0])
    assert retract.returncode == 0, retract.stderr
    assert retract.last["status"] == "accepted"
    opinion = forum.cli(globex, "opinion", "pdq", values[1], "--category", "negative")
    assert opinion.returncode == 0, opinion.stderr

    gate = ServerGate(selectors.feed_page, hold_call=3)
    monkeypatch.setattr(selectors, "feed_page", gate)
    state = tmp_path / "interrupted"
    process = forum.popen(globex, "sync", "--state", str(state), "--limit", "2")
    try:
        assert gate.entered.wait(timeout=60), "the sync never asked for a third page"
        process.kill()
        process.wait(timeout=30)
    finally:
        gate.release()
    with sqlite3.connect(state / "replica.sqlite3") as db:
        (applied,) = db.execute("SELECT count(*) FROM signals").fetchone()
    assert applied == 4  # two pages of two

    resumed = forum.cli(globex, "sync", "--state", str(state), "--limit", "2")
    assert resumed.returncode == 0, resumed.stderr
    fresh_state = tmp_path / "fresh"
    fresh = forum.cli(globex, "sync", "--state", str(fresh_state))
    assert fresh.returncode == 0, fresh.stderr
    assert resumed.last["changes"] < fresh.last["changes"]  # it did not start over
    assert resumed.last["signals"] == fresh.last["signals"] == 5
    assert replica_rows(state) == replica_rows(fresh_state)
    rows = replica_rows(fresh_state)
    assert ("pdq", values[0], 1) in [row[:3] for row in rows["signals"]]  # the tombstone
    assert any(row[1] == values[1] and row[3] == 1 for row in rows["opinions"])  # negative
    assert forum.cli(globex, "verify", "--state", str(state)).last == {
        "verified": 5,
        "failed": 0,
    }
